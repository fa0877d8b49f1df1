// Training data: JSONL manifests of Pisces records ({"task": "captioning" | "generation", "image":
// "relative/path.png", "caption": ...} or {"task": "chat", "messages": [...], "images": [...]}),
// mixed by weight. Every choice comes from one seeded generator whose state, with each manifest's
// epoch and position, is the loader's position: saved in checkpoints, so a resumed run reads
// exactly the records the uninterrupted run would have read.
import { createReadStream, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { PiscesRecord } from "@pisces/model";
import { extract as tarExtract } from "tar-stream";

/** A small, fast generator with a 32-bit state that serializes as one number (mulberry32). */
export class SeededRandom {
  constructor(public state: number) {
    this.state = state >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export interface DataPosition {
  random: number;
  manifests: { epoch: number; index: number }[];
}

export class DataError extends Error {
  override name = "DataError";
}

const MAX_MANIFEST_BYTES = 1 << 30;

/** Reads a JSONL manifest; image paths become absolute (relative to the manifest). Lines that are not JSON objects are kept as bad lines. */
export function readManifest(path: string): { records: (PiscesRecord | { bad: string })[] } {
  let text: string;
  try {
    const buffer = readFileSync(path);
    if (buffer.length > MAX_MANIFEST_BYTES) throw new DataError(`${path} is larger than 1 GiB: split it into several manifests`);
    text = buffer.toString("utf8");
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(`cannot read the manifest ${path}: ${(e as Error).message}`);
  }
  const base = dirname(resolve(path));
  const at = (p: unknown) => (typeof p === "string" && !isAbsolute(p) ? resolve(base, p) : p);
  const records = text
    .split("\n")
    .map((line, i) => [line.trim(), i + 1] as const)
    .filter(([line]) => line.length > 0)
    .map(([line, n]) => {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        return { bad: `${path}:${n}: not JSON` };
      }
      if (!json || typeof json !== "object" || Array.isArray(json)) return { bad: `${path}:${n}: not a JSON object` };
      const r = json as Record<string, unknown>;
      if (r.image !== undefined) r.image = at(r.image);
      if (Array.isArray(r.images)) r.images = r.images.map(at);
      return r as unknown as PiscesRecord;
    });
  if (records.length === 0) throw new DataError(`${path} holds no records`);
  return { records };
}

/** WebDataset's brace notation: "shard-{000..012}.tar" -> shard-000.tar ... shard-012.tar (zero-padded as written). */
export function expandShardPattern(pattern: string): string[] {
  const m = /\{(\d+)\.\.(\d+)\}/.exec(pattern);
  if (!m) return [pattern];
  const [lo, hi] = [Number(m[1]), Number(m[2])];
  if (hi < lo) throw new DataError(`${pattern}: the range {${m[1]}..${m[2]}} is empty`);
  if (hi - lo >= 1_000_000) throw new DataError(`${pattern}: more than a million shards`);
  const width = m[1]!.length;
  const out: string[] = [];
  for (let i = lo; i <= hi; i++)
    out.push(...expandShardPattern(pattern.slice(0, m.index) + String(i).padStart(width, "0") + pattern.slice(m.index + m[0].length)));
  return out;
}

/** One data source as the recipe names it: a JSONL manifest, or WebDataset tar shards. */
export type DataSource =
  | { manifest: string; weight: number }
  | { shards: readonly string[]; weight: number; task: "captioning" | "generation"; shuffleBuffer: number };

type Drawn = { record: PiscesRecord | { bad: string }; source: string };

const IMAGE_EXTENSIONS = new Set(["png", "jpg", "jpeg", "webp"]);
/** A member larger than this is refused (a hostile or broken tar could claim any size). */
export const MAX_SHARD_MEMBER_BYTES = 256 * 1024 * 1024;

/**
 * WebDataset shards read as a stream (tar-stream): members grouped into samples by key (the path
 * up to the first dot of the file name: `k.png` + `k.json` or `k.txt`), shuffled through a buffer
 * of `shuffleBuffer` samples, shards in a seeded order per epoch. Every choice comes from a
 * generator seeded by (seed, source, epoch), so the position is (epoch, samples emitted): a resume
 * re-reads the epoch up to there (tar reading only; images are decoded later, by the trainer).
 * A corrupt or truncated shard yields one bad record and the stream goes on with the next shard.
 */
class ShardSource {
  private iterator: AsyncGenerator<Drawn> | null = null;

  constructor(
    private readonly spec: Extract<DataSource, { shards: readonly string[] }>,
    private readonly seed: number,
    private readonly shuffle: boolean,
    private readonly sourceIndex: number,
    readonly position: { epoch: number; index: number },
  ) {}

  async next(): Promise<Drawn> {
    if (!this.iterator) {
      this.iterator = this.epoch(this.position.epoch);
      for (let i = 0; i < this.position.index; i++) if ((await this.iterator.next()).done) break; // replay to the saved position
    }
    for (;;) {
      const r = await this.iterator.next();
      if (!r.done) {
        this.position.index++;
        return r.value;
      }
      this.position.epoch++;
      this.position.index = 0;
      this.iterator = this.epoch(this.position.epoch);
    }
  }

  private async *epoch(epoch: number): AsyncGenerator<Drawn> {
    const rng = new SeededRandom((this.seed * 1_000_003 + this.sourceIndex * 7_919 + epoch * 104_729 + 17) >>> 0);
    const order = this.spec.shards.map((_, i) => i);
    if (this.shuffle)
      for (let j = order.length - 1; j > 0; j--) {
        const k = Math.floor(rng.next() * (j + 1));
        [order[j], order[k]] = [order[k]!, order[j]!];
      }
    const size = this.shuffle ? this.spec.shuffleBuffer : 1;
    const buffer: Drawn[] = [];
    let any = false;
    for (const i of order)
      for await (const sample of this.samples(this.spec.shards[i]!)) {
        any = true;
        buffer.push(sample);
        if (buffer.length >= size) yield this.take(buffer, rng);
      }
    while (buffer.length) yield this.take(buffer, rng);
    if (!any) throw new DataError(`the shards ${this.spec.shards.slice(0, 3).join(", ")}${this.spec.shards.length > 3 ? ", ..." : ""} hold no samples`);
  }

  private take(buffer: Drawn[], rng: SeededRandom): Drawn {
    const j = Math.floor(rng.next() * buffer.length);
    const out = buffer[j]!;
    buffer[j] = buffer[buffer.length - 1]!;
    buffer.pop();
    return out;
  }

  /** The samples of one shard, in file order; a read error ends the shard with one bad record. */
  private async *samples(path: string): AsyncGenerator<Drawn> {
    const extract = tarExtract();
    const file = createReadStream(path);
    file.on("error", (e) => extract.destroy(e));
    file.pipe(extract);
    let key: string | null = null;
    let parts: Map<string, Buffer> = new Map();
    let n = 0;
    const where = (k: string) => `${path} sample ${k}`;
    const assemble = (k: string, members: Map<string, Buffer>): Drawn => {
      n++;
      const source = where(k);
      const imageExt = [...members.keys()].find((e) => IMAGE_EXTENSIONS.has(e));
      let meta: Record<string, unknown> = {};
      const json = members.get("json");
      if (json) {
        try {
          const parsed = JSON.parse(json.toString("utf8")) as unknown;
          if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { record: { bad: `${source}: ${k}.json is not a JSON object` }, source };
          meta = parsed as Record<string, unknown>;
        } catch {
          return { record: { bad: `${source}: ${k}.json is not JSON` }, source };
        }
      }
      const txt = members.get("txt")?.toString("utf8").trim();
      const caption = typeof meta.caption === "string" ? meta.caption : txt;
      if (!imageExt) return { record: { bad: `${source}: no image (${[...members.keys()].join(", ")})` }, source };
      const image = members.get(imageExt)!;
      // a chat sample's image is the conversation's first image
      const record = meta.task === "chat" ? { ...meta, images: [image] } : { task: this.spec.task, ...meta, caption, image };
      return { record: record as unknown as PiscesRecord, source };
    };
    try {
      for await (const entry of extract) {
        const header = entry.header;
        if (header.type !== "file") {
          entry.resume();
          continue;
        }
        if ((header.size ?? 0) > MAX_SHARD_MEMBER_BYTES) {
          entry.resume();
          yield { record: { bad: `${path}: ${header.name} is ${header.size} bytes, more than ${MAX_SHARD_MEMBER_BYTES}` }, source: path };
          continue;
        }
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        const base = header.name.split("/").pop()!;
        const dot = base.indexOf(".");
        if (dot <= 0) continue; // no extension: not a sample member
        const k = header.name.slice(0, header.name.length - base.length + dot);
        const ext = base.slice(dot + 1).toLowerCase();
        if (key !== null && k !== key) {
          yield assemble(key, parts);
          parts = new Map();
        }
        key = k;
        parts.set(ext, Buffer.concat(chunks));
      }
      if (key !== null) yield assemble(key, parts);
    } catch (e) {
      yield { record: { bad: `${path}: corrupt shard after ${n} samples (${(e as Error).message})` }, source: path };
    } finally {
      file.destroy();
    }
  }
}

/** Draws records from the sources by weight; a manifest is read in a per-epoch order, shards as a shuffled stream. */
export class RecordStream {
  private readonly manifests: (
    | { kind: "manifest"; records: (PiscesRecord | { bad: string })[]; weight: number; order: number[] }
    | { kind: "shards"; weight: number; reader: ShardSource }
  )[];
  private random: SeededRandom;
  private positions: { epoch: number; index: number }[];

  constructor(
    sources: readonly DataSource[],
    private readonly seed: number,
    private readonly shuffle: boolean,
    position?: DataPosition,
  ) {
    this.positions = position?.manifests.map((p) => ({ ...p })) ?? sources.map(() => ({ epoch: 0, index: 0 }));
    if (this.positions.length !== sources.length)
      throw new DataError(`the checkpoint's data position lists ${this.positions.length} sources but the recipe has ${sources.length}`);
    this.manifests = sources.map((s, i) =>
      "manifest" in s
        ? { kind: "manifest" as const, ...readManifest(s.manifest), weight: s.weight, order: [] }
        : { kind: "shards" as const, weight: s.weight, reader: new ShardSource(s, seed, shuffle, i, this.positions[i]!) },
    );
    this.random = new SeededRandom(position?.random ?? seed);
    this.manifests.forEach((m, i) => {
      if (m.kind === "manifest") m.order = this.orderFor(i, this.positions[i]!.epoch);
    });
  }

  /** The order of manifest i in an epoch: a seeded permutation, or file order. */
  private orderFor(i: number, epoch: number): number[] {
    const m = this.manifests[i]!;
    const n = m.kind === "manifest" ? m.records.length : 0;
    const order = Array.from({ length: n }, (_, j) => j);
    if (!this.shuffle) return order;
    const rng = new SeededRandom((this.seed * 1_000_003 + i * 7_919 + epoch * 104_729) >>> 0);
    for (let j = n - 1; j > 0; j--) {
      const k = Math.floor(rng.next() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    return order;
  }

  /** The next record (or bad record) and where it came from. */
  async next(): Promise<Drawn> {
    const total = this.manifests.reduce((s, m) => s + m.weight, 0);
    let pick = 0;
    if (this.manifests.length > 1) {
      let x = this.random.next() * total;
      while (pick < this.manifests.length - 1 && x >= this.manifests[pick]!.weight) x -= this.manifests[pick++]!.weight;
    }
    const m = this.manifests[pick]!;
    if (m.kind === "shards") return m.reader.next();
    const pos = this.positions[pick]!;
    if (pos.index >= m.order.length) {
      pos.epoch++;
      pos.index = 0;
      m.order = this.orderFor(pick, pos.epoch);
    }
    const j = m.order[pos.index++]!;
    return { record: m.records[j]!, source: `manifest ${pick} record ${j}` };
  }

  get position(): DataPosition {
    return { random: this.random.state, manifests: this.positions.map((p) => ({ ...p })) };
  }
}

/** A record's image as the trainers take it: a path (manifests) or encoded bytes (shards). */
export function isImage(image: unknown): image is string | Uint8Array {
  return typeof image === "string" || image instanceof Uint8Array;
}
