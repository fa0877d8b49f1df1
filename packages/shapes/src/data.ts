// Training and held-out data of the shapes world in the formats @pisces/trainer reads: a JSONL
// manifest of Pisces records beside PNG images, or WebDataset tar shards (key.png + key.json).
// Scenes are drawn from seeds; the train and held-out splits use disjoint seed ranges, so no
// held-out scene is ever trained on.
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { pack } from "tar-stream";
import { detailedCaption, questions, shortCaption } from "./text.js";
import { COLORS, DEFAULT_CANVAS, Random, randomScene, renderScene, type Scene, SHAPES } from "./world.js";

/** Seeds of the splits: train from 0, held-out from 1e9 (disjoint for any practical size). */
export const SPLIT_SEED = { train: 0, heldout: 1_000_000_000 } as const;
export type Split = keyof typeof SPLIT_SEED;

export type CaptionKind = "short" | "detailed";
export type RecordKind = "captioning" | "generation" | "chat";

export interface DatasetOptions {
  split: Split;
  /** Scenes (one image each). */
  count: number;
  /** Records made per scene (default: one generation and one captioning record with short captions). */
  kinds?: readonly RecordKind[];
  captions?: CaptionKind;
  canvas?: number;
  /** Offset into the split's seeds (to write a dataset in parts). */
  offset?: number;
}

export interface ShapesSample {
  key: string;
  seed: number;
  scene: Scene;
  png: Buffer;
  records: Record<string, unknown>[];
}

export async function encodePng(scene: Scene): Promise<Buffer> {
  return sharp(Buffer.from(renderScene(scene)), { raw: { width: scene.canvas, height: scene.canvas, channels: 3 } })
    .png()
    .toBuffer();
}

/** The samples of a split, scene by scene: the scene, its PNG and its records (image paths left to the writer). */
export async function* samples(options: DatasetOptions): AsyncGenerator<ShapesSample> {
  const kinds = options.kinds ?? ["generation", "captioning"];
  const canvas = options.canvas ?? DEFAULT_CANVAS;
  for (let i = 0; i < options.count; i++) {
    const seed = SPLIT_SEED[options.split] + (options.offset ?? 0) + i;
    const scene = randomScene(seed, { canvas });
    const rng = new Random(seed ^ 0x5bd1e995);
    const caption = () => (options.captions === "detailed" ? detailedCaption(scene) : shortCaption(scene, rng));
    const records: Record<string, unknown>[] = [];
    for (const kind of kinds) {
      if (kind === "generation" || kind === "captioning") records.push({ task: kind, caption: caption() });
      else {
        const qa = questions(scene, rng, { colors: COLORS, shapes: SHAPES });
        const { question, answer, type } = rng.pick(qa);
        records.push({
          task: "chat",
          question_type: type,
          messages: [
            {
              role: "user",
              content: [{ type: "image" }, { type: "text", text: question }],
            },
            { role: "assistant", content: answer },
          ],
        });
      }
    }
    yield { key: String(seed).padStart(10, "0"), seed, scene, png: await encodePng(scene), records };
  }
}

const withImage = (r: Record<string, unknown>, image: string) => (r.task === "chat" ? { ...r, images: [image] } : { ...r, image });

/** Writes dir/images/<seed>.png and dir/<name>.jsonl (records with relative image paths); returns the manifest path. */
export async function writeManifest(dir: string, options: DatasetOptions, name: string = options.split): Promise<string> {
  mkdirSync(join(dir, "images"), { recursive: true });
  const lines: string[] = [];
  for await (const s of samples(options)) {
    const image = `images/${s.key}.png`;
    writeFileSync(join(dir, image), s.png);
    for (const r of s.records) lines.push(JSON.stringify({ ...withImage(r, image), scene: s.seed }));
  }
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(`${path}.tmp`, `${lines.join("\n")}\n`);
  renameSync(`${path}.tmp`, path);
  return path;
}

/**
 * Writes WebDataset shards dir/<name>-000000.tar ... of `perShard` scenes: one sample per record,
 * key.png + key.json (the key is the scene's seed, with _N appended when a scene has several
 * records). Returns the shard paths.
 */
export async function writeShards(dir: string, options: DatasetOptions, perShard = 1000, name: string = options.split): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  let current: ReturnType<typeof pack> | null = null;
  let chunks: Buffer[] = [];
  let inShard = 0;
  const close = async () => {
    if (!current) return;
    current.finalize();
    for await (const c of current) chunks.push(c as Buffer);
    const path = join(dir, `${name}-${String(paths.length).padStart(6, "0")}.tar`);
    writeFileSync(`${path}.tmp`, Buffer.concat(chunks));
    renameSync(`${path}.tmp`, path);
    paths.push(path);
    current = null;
    chunks = [];
    inShard = 0;
  };
  for await (const s of samples(options)) {
    if (!current) current = pack();
    s.records.forEach((r, j) => {
      const key = s.records.length > 1 ? `${s.key}_${j}` : s.key;
      current!.entry({ name: `${key}.png` }, s.png);
      current!.entry({ name: `${key}.json` }, Buffer.from(JSON.stringify({ ...r, scene: s.seed })));
    });
    if (++inShard >= perShard) await close();
  }
  await close();
  return paths;
}
