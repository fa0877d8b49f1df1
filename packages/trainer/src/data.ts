// Training data: JSONL manifests of Pisces records ({"task": "captioning" | "generation", "image":
// "relative/path.png", "caption": ...} or {"task": "chat", "messages": [...], "images": [...]}),
// mixed by weight. Every choice comes from one seeded generator whose state, with each manifest's
// epoch and position, is the loader's position: saved in checkpoints, so a resumed run reads
// exactly the records the uninterrupted run would have read.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { PiscesRecord } from "@pisces/model";

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

/** Draws records from the manifests by weight; each manifest is read in a per-epoch order. */
export class RecordStream {
  private readonly manifests: { records: (PiscesRecord | { bad: string })[]; weight: number; order: number[] }[];
  private random: SeededRandom;
  private positions: { epoch: number; index: number }[];

  constructor(
    sources: readonly { manifest: string; weight: number }[],
    private readonly seed: number,
    private readonly shuffle: boolean,
    position?: DataPosition,
  ) {
    this.manifests = sources.map((s) => ({ ...readManifest(s.manifest), weight: s.weight, order: [] }));
    this.random = new SeededRandom(position?.random ?? seed);
    this.positions = position?.manifests.map((p) => ({ ...p })) ?? this.manifests.map(() => ({ epoch: 0, index: 0 }));
    if (this.positions.length !== this.manifests.length)
      throw new DataError(`the checkpoint's data position lists ${this.positions.length} manifests but the recipe has ${this.manifests.length}`);
    this.manifests.forEach((m, i) => {
      m.order = this.orderFor(i, this.positions[i]!.epoch);
    });
  }

  /** The order of manifest i in an epoch: a seeded permutation, or file order. */
  private orderFor(i: number, epoch: number): number[] {
    const n = this.manifests[i]!.records.length;
    const order = Array.from({ length: n }, (_, j) => j);
    if (!this.shuffle) return order;
    const rng = new SeededRandom((this.seed * 1_000_003 + i * 7_919 + epoch * 104_729) >>> 0);
    for (let j = n - 1; j > 0; j--) {
      const k = Math.floor(rng.next() * (j + 1));
      [order[j], order[k]] = [order[k]!, order[j]!];
    }
    return order;
  }

  /** The next record (or bad line) and where it came from. */
  next(): { record: PiscesRecord | { bad: string }; source: string } {
    const total = this.manifests.reduce((s, m) => s + m.weight, 0);
    let pick = 0;
    if (this.manifests.length > 1) {
      let x = this.random.next() * total;
      while (pick < this.manifests.length - 1 && x >= this.manifests[pick]!.weight) x -= this.manifests[pick++]!.weight;
    }
    const m = this.manifests[pick]!;
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
