// The writers: a JSONL manifest of Pisces records beside PNGs, and WebDataset shards, from disjoint
// train and held-out seeds; the PNGs decode to the renders exactly.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { extract } from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { randomScene, renderScene, SPLIT_SEED, writeManifest, writeShards } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-shapes-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("writers", () => {
  it("a manifest of generation, captioning and chat records whose PNGs decode to the renders", async () => {
    const path = await writeManifest(join(work, "m"), { split: "train", count: 5, kinds: ["generation", "captioning", "chat"], captions: "detailed" });
    const records = readFileSync(path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(records).toHaveLength(15);
    expect(records.map((r) => r.task).slice(0, 3)).toEqual(["generation", "captioning", "chat"]);
    expect(records[0].caption).toMatch(/ at the /);
    expect(records[2].messages[0].content[0]).toEqual({ type: "image" });
    expect(records[2].images).toEqual([records[0].image]);
    const { data, info } = await sharp(join(work, "m", records[0].image))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([64, 64, 3]);
    expect(Buffer.from(renderScene(randomScene(records[0].scene))).equals(data)).toBe(true);
  });

  it("WebDataset shards: one sample per record (key.png + key.json), shards of the size asked; held-out seeds never meet train seeds", async () => {
    const paths = await writeShards(join(work, "s"), { split: "heldout", count: 5, kinds: ["generation"] }, 2);
    expect(paths.map((p) => p.split("/").pop())).toEqual(["heldout-000000.tar", "heldout-000001.tar", "heldout-000002.tar"]);
    expect(readdirSync(join(work, "s")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    const names: string[] = [];
    for (const p of paths) {
      const x = extract();
      const done = (async () => {
        for await (const entry of x) {
          names.push(entry.header.name);
          entry.resume();
        }
      })();
      x.end(readFileSync(p));
      await done;
    }
    expect(names).toHaveLength(10);
    expect(names[0]).toBe(`${String(SPLIT_SEED.heldout).padStart(10, "0")}.png`);
    expect(names[1]).toBe(`${String(SPLIT_SEED.heldout).padStart(10, "0")}.json`);
  });
});
