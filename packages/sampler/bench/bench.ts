// `pnpm bench` for @pisces/model + @pisces/sampler: a small Pisces (an LLM of SmolLM2-135M's shape,
// ViT-B/16-shaped encoders, sdxl-decoder's small SDXL-shaped UNet and VAE), random weights, float32,
// CPU, against the PyTorch reference of the same design (tools/reference/pisces_bench.py, which also
// makes the folder both sides load) in the same run. Writes bench/RESULTS.md.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { EulerDiscreteScheduler } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { bestTime, bestTimeAsync } from "../../../tools/bench/timing.js";
import { generateImages } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
T.setNumThreads(threads);
const folder = join(root, "tools", "reference", "out", "pisces-bench", "model");
const python = () =>
  JSON.parse(
    execFileSync(process.env.PYTHON ?? "python3", [join(root, "tools", "reference", "pisces_bench.py"), String(threads), folder], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop()!,
  ) as { torch: string; vectors_s: number; step_s: number; t2i_s: number; i2t_tok_s: number };

const first = python(); // makes the folder on the first run
const model = PiscesForConditionalGeneration.fromPretrained(folder);
const decoder = model.decoder!;
const caption = "a red circle to the left of a blue square";
const N_TOKENS = 32;

const vectors = () => {
  const r = model.generateImageEmbeddings({ captions: [caption], guidanceScale: 3 });
  r.conditional.dispose();
  r.unconditional?.dispose();
};
const c = T.keep(T.randn([1, 64, 768]));
const u = T.keep(T.randn([1, 64, 768]));
const lat = T.keep(T.randn([1, 4, 32, 32]));
const timeIds = T.keep(
  T.tensor([[256, 256, 0, 0, 256, 256]], { dtype: "float32" })
    .expand([2, 6])
    .contiguous(),
);
const scheduler = EulerDiscreteScheduler.fromConfig(JSON.parse(model.folderFiles.get("decoder/scheduler/scheduler_config.json")!.toString("utf8")));
// one guided step as the decoder loop runs it: scale, UNet at batch 2, guidance, Euler step
const step = () =>
  T.noGrad(() =>
    T.scope(() => {
      scheduler.setTimesteps(1);
      const t = scheduler.timesteps[0]!;
      const latents = lat.mul(scheduler.initNoiseSigma);
      const x = scheduler.scaleModelInput(T.cat([latents, latents]), t);
      const eps = decoder.unet.forward({
        sample: x,
        timestep: t,
        encoderHiddenStates: T.cat([u, c]),
        addedCondKwargs: { textEmbeds: T.cat([u.mean(1), c.mean(1)]), timeIds },
      }).sample;
      const [eu, ec] = eps.chunk(2) as [T.Tensor, T.Tensor];
      void scheduler.step(eu.add(ec.sub(eu).mul(3)), t, latents).prevSample;
    }),
  );
const t2i = () => generateImages(model, { prompts: caption, steps: 20, width: 256, height: 256, seed: 0 });
const processor = model.processor!;
const pixels = T.keep((await processor.siglipProcessor.preprocess(join(folder, "..", "bench-image.png"))).pixelValues);
const prompt = processor.captioningPrompt();
const input = {
  inputIds: T.keep(T.tensor([prompt.inputIds])),
  attentionMask: T.keep(T.ones([1, prompt.inputIds.length], { dtype: "int64" })),
  understandingMask: T.keep(T.tensor([prompt.understanding])),
  understandingPixelValues: pixels,
};
const i2t = () => {
  let n = 0;
  for (const _ of model.textSteps(input, { maxNewTokens: N_TOKENS, eosTokenId: null })) n++;
  if (n !== N_TOKENS) throw new Error(`generated ${n} tokens`);
};

vectors();
step();
await t2i();
i2t();
const ours = { vectors: Infinity, step: Infinity, t2i: Infinity, i2t: Infinity };
let theirs = first;
for (let round = 0; round < 2; round++) {
  ours.vectors = Math.min(ours.vectors, bestTime(vectors, 3));
  ours.step = Math.min(ours.step, bestTime(step, 3));
  ours.t2i = Math.min(ours.t2i, await bestTimeAsync(t2i, 2));
  ours.i2t = Math.min(ours.i2t, bestTime(i2t, 3));
  const p = python();
  theirs = {
    torch: p.torch,
    vectors_s: Math.min(theirs.vectors_s, p.vectors_s),
    step_s: Math.min(theirs.step_s, p.step_s),
    t2i_s: Math.min(theirs.t2i_s, p.t2i_s),
    i2t_tok_s: Math.max(theirs.i2t_tok_s, p.i2t_tok_s),
  };
}
const ourTokS = N_TOKENS / ours.i2t;
const rows: [string, string, string, number][] = [
  ["64 vectors with CFG (2 rows, KV cache) (ms)", (ours.vectors * 1000).toFixed(0), (theirs.vectors_s * 1000).toFixed(0), theirs.vectors_s / ours.vectors],
  ["one guided denoising step, 256x256 (ms)", (ours.step * 1000).toFixed(1), (theirs.step_s * 1000).toFixed(1), theirs.step_s / ours.step],
  ["text to image, 256x256, 20 steps, end to end (s)", ours.t2i.toFixed(2), theirs.t2i_s.toFixed(2), theirs.t2i_s / ours.t2i],
  ["image to text, SigLIP + prefill + 32 greedy tokens (tokens/s)", ourTokS.toFixed(1), theirs.i2t_tok_s.toFixed(1), ourTokS / theirs.i2t_tok_s],
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [
  `| small Pisces, float32, CPU | @pisces/model + sampler | PyTorch ${theirs.torch} reference | ratio (>1: ours faster) | goal |`,
  "|---|---|---|---|---|",
  ...rows.map(([name, a, b, r]) => `| ${name} | ${a} | ${b} | ${r.toFixed(2)} | >= 1.0 |`),
].join("\n");
console.log(`\nMachine: ${machine}\n\n${table}\n`);
if (!process.env.BENCH_NO_WRITE)
  writeFileSync(
    join(here, "RESULTS.md"),
    `# @pisces/model + @pisces/sampler benchmark\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}.\nMachine: ${machine}. libtorch ${T.libtorchVersion()} (CPU), Node ${process.version}.\n` +
      "Random weights. LLM: SmolLM2-135M's shape (30 layers, width 576, 9 heads / 3 KV heads, vocab 49,152, tied). SigLIP ViT-B/16 at 224 px " +
      "(196 tokens); gen-CLIP ViT-B/16 at 512 px (32x32 grid, k = 4: 64 vectors, width 768). UNet block_out_channels [64, 128, 256] with SDXL's " +
      "block types, cross-attention width 768; VAE [32, 64, 128, 128]. The Python side is tools/reference/pisces_reference.py (transformers' " +
      "LlamaForCausalLM with its dynamic cache, diffusers' UNet / VAE / Euler). Ours includes PNG encoding in text to image. " +
      "Best of 2 rounds alternating with the Python process.\n\n" +
      `${table}\n`,
  );
model.dispose();
