// The timing loop shared by the @pisces/siglip and @pisces/gen-clip benchmarks. The tensor library
// is passed in (tools/ has no dependencies of its own).
import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bestTime, bestTimeAsync } from "./timing.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** What the loop needs of @pisces/tensor-cuda (structural, so tools/ needs no dependency). */
interface Tensor {
  dispose(): void;
}
interface TensorLib<X extends Tensor> {
  setNumThreads(n: number): void;
  randn(shape: number[]): X;
  noGrad<X>(fn: () => X): X;
  scope<X>(fn: () => X): X;
  libtorchVersion(): string;
}

export interface VisionBench<X extends Tensor> {
  kind: "siglip" | "clip";
  title: string;
  makeModel: () => (pixelValues: X) => void;
  makeProcessor: () => (files: string[], resampling: "exact" | "fast") => Promise<{ pixelValues: Tensor }>;
  resultsPath: string;
}

export async function runVisionBench<X extends Tensor>(T: TensorLib<X>, b: VisionBench<X>): Promise<void> {
  const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
  T.setNumThreads(threads);
  const imageDir = join(repoRoot, "tools", "reference", "out", "vision", "images");
  const files = readdirSync(imageDir)
    .filter((f) => f.endsWith(".png") || f.endsWith(".jpg"))
    .sort()
    .map((f) => join(imageDir, f));
  if (files.length === 0) throw new Error(`no test images in ${imageDir}: run the vision tests (or python3 tools/reference/vision_reference.py) first`);
  const py = () =>
    JSON.parse(execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "vision_bench.py"), b.kind, String(threads), imageDir], { encoding: "utf8" })) as {
      transformers: string;
      b1_s: number;
      b8_s: number;
      preprocess_s_per_image: number;
    };
  const forward = b.makeModel();
  const processor = b.makeProcessor();
  const ours = { b1: Infinity, b8: Infinity, pre: Infinity, preFast: Infinity };
  let theirs = { transformers: "", b1_s: Infinity, b8_s: Infinity, preprocess_s_per_image: Infinity };
  for (let round = 0; round < 2; round++) {
    for (const batch of [1, 8] as const) {
      const px = T.randn([batch, 3, 224, 224]);
      T.noGrad(() => T.scope(() => forward(px)));
      const t = bestTime(() => T.noGrad(() => T.scope(() => forward(px))), batch === 8 ? 3 : 5);
      ours[batch === 1 ? "b1" : "b8"] = Math.min(ours[batch === 1 ? "b1" : "b8"], t);
      px.dispose();
    }
    await processor(files, "exact").then((r) => r.pixelValues.dispose());
    ours.pre = Math.min(ours.pre, (await bestTimeAsync(async () => (await processor(files, "exact")).pixelValues.dispose(), 3)) / files.length);
    ours.preFast = Math.min(ours.preFast, (await bestTimeAsync(async () => (await processor(files, "fast")).pixelValues.dispose(), 3)) / files.length);
    const p = py();
    theirs = { transformers: p.transformers, b1_s: Math.min(theirs.b1_s, p.b1_s), b8_s: Math.min(theirs.b8_s, p.b8_s), preprocess_s_per_image: Math.min(theirs.preprocess_s_per_image, p.preprocess_s_per_image) };
  }
  const rows: [string, number, number, string][] = [
    ["encoder, batch 1 (images/s)", 1 / ours.b1, 1 / theirs.b1_s, ">= 1.0"],
    ["encoder, batch 8 (images/s)", 8 / ours.b8, 8 / theirs.b8_s, ">= 1.0"],
    [`preprocessing, ${files.length} files, exact resize (images/s)`, 1 / ours.pre, 1 / theirs.preprocess_s_per_image, ">= 3.0"],
    [`preprocessing, ${files.length} files, resampling "fast" (images/s)`, 1 / ours.preFast, 1 / theirs.preprocess_s_per_image, ">= 3.0"],
  ];
  const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
  const table = [
    `| ${b.title} | ours | transformers ${theirs.transformers} | ratio (ours / transformers) | goal |`,
    "|---|---|---|---|---|",
    ...rows.map(([name, a, c, goal]) => `| ${name} | ${a.toFixed(1)} | ${c.toFixed(1)} | ${(a / c).toFixed(2)} | ${goal} |`),
  ].join("\n");
  console.log(`\nMachine: ${machine}\n\n${table}\n`);
  if (!process.env.BENCH_NO_WRITE)
    writeFileSync(
      b.resultsPath,
      `# Benchmark\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}.\nMachine: ${machine}. libtorch ${T.libtorchVersion()} (CPU), Node ${process.version}.\n` +
        "Random weights; transformers with eager attention; preprocessing from image files (decode, EXIF, resize, normalize; our files decoded concurrently on libuv's threads), " +
        "transformers' Pillow-backend processor (torchvision cannot be installed beside the CPU torch here). Best of 2 rounds alternating with the Python process.\n\n" +
        `${table}\n`,
    );
}
