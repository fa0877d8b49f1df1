// WebDataset tar shards: samples grouped by key, a seeded shuffle buffer, positions that resume
// exactly, a corrupt shard and a corrupt image skipped and counted, and a Pisces stage trained
// from shards that resumes bit-exactly.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { expandShardPattern, readRecipe, RecordStream, type TrainEvent, trainPisces } from "../src/index.js";
import { piscesReference, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-shards-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Writes a tar of `members` (name -> bytes) with tar-stream's packer. */
async function writeTar(path: string, members: [string, Buffer][]): Promise<void> {
  const p = pack();
  for (const [name, data] of members) p.entry({ name, size: data.length }, data);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  writeFileSync(path, Buffer.concat(chunks));
}

const reference = () => {
  const ref = piscesReference("tied_k2");
  const info = JSON.parse(readFileSync(join(ref, "reference.json"), "utf8")) as { records: { task: string; image: string; caption: string }[] };
  return info.records.map((r) => ({ ...r, bytes: readFileSync(join(ref, r.image)) }));
};

/** shard-0 and shard-1 hold samples s0..s5 (the reference's four generation/captioning images, cycled); shard-2 is cut short. */
async function makeShards(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const recs = reference();
  const sample = (i: number): [string, Buffer][] => {
    const r = recs[i % recs.length]!;
    return [
      [`s${i}.png`, r.bytes],
      [`s${i}.json`, Buffer.from(JSON.stringify({ caption: r.caption, task: "generation" }))],
    ];
  };
  await writeTar(join(dir, "shard-0.tar"), [0, 1, 2].flatMap(sample));
  // s5's image is not an image; s4 has a caption as .txt
  const r4 = recs[0]!;
  await writeTar(join(dir, "shard-1.tar"), [
    ...sample(3),
    [`s4.png`, r4.bytes],
    [`s4.txt`, Buffer.from(r4.caption)],
    [`s5.png`, Buffer.from("not a png at all")],
    [`s5.json`, Buffer.from(JSON.stringify({ caption: "a red circle" }))],
  ]);
  const whole = await (async () => {
    const p = join(dir, "tmp.tar");
    await writeTar(p, [6, 7].flatMap(sample));
    return readFileSync(p);
  })();
  rmSync(join(dir, "tmp.tar"));
  writeFileSync(join(dir, "shard-2.tar"), whole.subarray(0, 700)); // cut inside s6's image
}

async function drain(stream: RecordStream, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const { record, source } = await stream.next();
    out.push("bad" in record ? `bad:${source}` : source.split(" sample ").pop()!);
  }
  return out;
}

describe("WebDataset shards", () => {
  it("expands brace ranges as written, zero-padded", () => {
    expect(expandShardPattern("a/shard-{000..002}.tar")).toEqual(["a/shard-000.tar", "a/shard-001.tar", "a/shard-002.tar"]);
    expect(expandShardPattern("x-{8..10}.tar")).toEqual(["x-8.tar", "x-9.tar", "x-10.tar"]);
    expect(expandShardPattern("plain.tar")).toEqual(["plain.tar"]);
    expect(() => expandShardPattern("x-{3..1}.tar")).toThrow(/empty/);
  });

  it("groups members by key, shuffles through a seeded buffer, and resumes from a position exactly", async () => {
    const dir = join(work, "stream");
    await makeShards(dir);
    const shards = [0, 1, 2].map((i) => join(dir, `shard-${i}.tar`));
    const source = { shards, weight: 1, task: "generation" as const, shuffleBuffer: 3 };
    const inOrder = await drain(new RecordStream([source], 7, false), 8);
    // file order, one bad record for the cut shard (s6 is lost with it), then the next epoch
    expect(inOrder.slice(0, 6)).toEqual(["s0", "s1", "s2", "s3", "s4", "s5"]);
    expect(inOrder[6]).toMatch(/^bad:.*shard-2\.tar/);
    expect(inOrder[7]).toBe("s0");
    const a = new RecordStream([source], 7, true);
    const first = await drain(a, 20);
    expect(await drain(new RecordStream([source], 7, true), 20)).toEqual(first); // deterministic
    expect(first.slice(0, 7).sort()).not.toEqual(first.slice(0, 7)); // shuffled
    const b = new RecordStream([source], 7, true);
    await drain(b, 9);
    const resumed = new RecordStream([source], 7, true, b.position);
    expect(await drain(resumed, 11)).toEqual(first.slice(9));
    // sample contents: image bytes and the caption from .json or .txt
    const c = new RecordStream([source], 7, false);
    const s0 = (await c.next()).record as { task: string; caption: string; image: Uint8Array };
    expect(s0.task).toBe("generation");
    expect(s0.image).toBeInstanceOf(Uint8Array);
    for (let i = 0; i < 3; i++) await c.next();
    const s4 = (await c.next()).record as { caption: string };
    expect(s4.caption).toBe(reference()[0]!.caption);
  });

  it("a Pisces stage trains from shards: the corrupt shard and image are skipped and counted, and a resume is bit-exact", async () => {
    const dir = join(work, "train");
    await makeShards(join(dir, "shards"));
    const settings = {
      data: [{ shards: join(dir, "shards", "shard-{0..2}.tar"), shuffle_buffer: 4 }],
      tasks: ["generation" as const],
      max_steps: 6,
      save_every: 2,
      global_batch_size: 2,
      shuffle: true,
      seed: 4,
      max_skipped_fraction: 0.5,
    };
    const whole = writeRecipe(join(dir, "whole"), settings);
    const warnings: string[] = [];
    const events: TrainEvent[] = [];
    for await (const e of trainPisces(readRecipe(whole), { warn: (m) => warnings.push(m) })) events.push(e);
    const steps = events.flatMap((e) => (e.type === "step" ? [e] : []));
    expect(steps).toHaveLength(6);
    expect(steps[5]!.skipped).toBeGreaterThanOrEqual(2);
    expect(warnings.join("\n")).toMatch(/shard-2\.tar: corrupt shard after \d+ samples/);
    expect(warnings.join("\n")).toMatch(/shard-1\.tar sample s5/);
    const parted = writeRecipe(join(dir, "parted"), settings);
    for await (const e of trainPisces(readRecipe(parted))) if (e.type === "step" && e.step === 3) break;
    for await (const _ of trainPisces(readRecipe(parted), { resume: true })) {
    }
    expect(readFileSync(join(dir, "parted", "run", "metrics.jsonl"), "utf8")).toBe(readFileSync(join(dir, "whole", "run", "metrics.jsonl"), "utf8"));
  });
});
