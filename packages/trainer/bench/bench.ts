// `pnpm bench` for @pisces/trainer: one Pisces stage step and one decoder step on the small Pisces
// of @pisces/sampler's bench (an LLM of SmolLM2-135M's shape, ViT-B/16 encoders, the small
// SDXL-shaped UNet), float32, CPU, against the PyTorch reference loop (tools/reference/
// pisces_train_bench.py) in the same run. Writes bench/RESULTS.md.
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { bestTime } from "../../../tools/bench/timing.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
T.setNumThreads(threads);
const folder = join(root, "tools", "reference", "out", "pisces-bench", "model");
const py = process.env.PYTHON ?? "python3";
if (!existsSync(join(folder, "complete")))
  execFileSync(py, [join(root, "tools", "reference", "pisces_bench.py"), String(threads), folder], { stdio: "inherit" });
const python = () =>
  JSON.parse(
    execFileSync(py, [join(root, "tools", "reference", "pisces_train_bench.py"), String(threads), folder], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop()!,
  ) as { torch: string; sequence: number; pisces_step_s: number; decoder_step_s: number };

const model = PiscesForConditionalGeneration.fromPretrained(folder);
const image = join(folder, "..", "bench-image.png");
const caption = "a red circle to the left of a blue square";
const batch = await model.processor!.call([
  { task: "captioning", image, caption },
  { task: "generation", image, caption },
]);
for (const t of Object.values(batch)) if (t) T.keep(t);
const params = model.parameters();
const optimizer = new T.optim.AdamW(params, { lr: 2e-5 });
model.train();
const piscesStep = () => {
  T.scope(() => model.forward(batch).loss.backward());
  T.optim.clipGradNorm(params, 1);
  optimizer.step();
  model.zeroGrad();
};
const unet = model.decoder!.unet;
unet.train();
const uparams = unet.parameters();
const uopt = new T.optim.AdamW(uparams, { lr: 1e-4 });
const g = new T.Generator({ seed: 0 });
const [latents, noise] = [T.keep(T.randn([2, 4, 32, 32], { generator: g })), T.keep(T.randn([2, 4, 32, 32], { generator: g }))];
const vectors = T.keep(T.randn([2, 64, 768], { generator: g }));
const timesteps = T.keep(T.tensor([100n, 700n]));
const timeIds = T.keep(
  T.tensor([[256, 256, 0, 0, 256, 256]], { dtype: "float32" })
    .expand([2, 6])
    .contiguous(),
);
const decoderStep = () => {
  T.scope(() => {
    const pred = unet.forward({
      sample: latents.add(noise),
      timestep: timesteps,
      encoderHiddenStates: vectors,
      addedCondKwargs: { textEmbeds: vectors.mean(1), timeIds },
    }).sample;
    T.mseLoss(pred, noise).backward();
  });
  T.optim.clipGradNorm(uparams, 1);
  uopt.step();
  unet.zeroGrad();
};

piscesStep();
decoderStep();
const ours = { pisces: Infinity, decoder: Infinity };
let theirs = python();
for (let round = 0; round < 2; round++) {
  ours.pisces = Math.min(ours.pisces, bestTime(piscesStep, 3));
  ours.decoder = Math.min(ours.decoder, bestTime(decoderStep, 3));
  const p = python();
  theirs = { ...p, pisces_step_s: Math.min(theirs.pisces_step_s, p.pisces_step_s), decoder_step_s: Math.min(theirs.decoder_step_s, p.decoder_step_s) };
}
const tokens = 2 * batch.inputIds.size(1);
const rows: [string, number, number][] = [
  [`Pisces stage step: 2 samples, ${batch.inputIds.size(1)} positions each (tokens/s)`, tokens / ours.pisces, tokens / theirs.pisces_step_s],
  ["decoder step: UNet at batch 2, 256x256 (images/s)", 2 / ours.decoder, 2 / theirs.decoder_step_s],
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [
  `| training, float32, CPU | @pisces/trainer | PyTorch ${theirs.torch} loop | ratio (>1: ours faster) | goal |`,
  "|---|---|---|---|---|",
  ...rows.map(([name, a, b]) => `| ${name} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a / b).toFixed(2)} | >= 1.0 |`),
].join("\n");
console.log(`\nMachine: ${machine}\n\n${table}\n`);
if (!process.env.BENCH_NO_WRITE)
  writeFileSync(
    join(here, "RESULTS.md"),
    `# @pisces/trainer benchmark\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}.\nMachine: ${machine}. libtorch ${T.libtorchVersion()} (CPU), Node ${process.version}.\n` +
      "The small Pisces of @pisces/sampler's bench (random weights). A step is forward + backward + gradient clipping + AdamW; " +
      "the Pisces step runs both frozen encoders under no-grad each time (no feature cache), as the reference does. " +
      "Best of 2 rounds alternating with the Python process.\n\n" +
      `${table}\n`,
  );
model.dispose();
