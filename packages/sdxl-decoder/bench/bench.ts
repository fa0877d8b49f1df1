// `pnpm bench` for @pisces/sdxl-decoder: a small SDXL-shaped UNet forward at batch 2 (CFG) and a
// VAE decode at 256x256, float32 on CPU, random weights, against diffusers (SDPA attention) in the
// same run (tools/reference/sdxl_bench.py). Writes bench/RESULTS.md.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { AutoencoderKL, resolveAutoencoderKLConfig, resolveUNetConfig, UNet2DConditionModel } from "../src/index.js";
import { bestTime } from "../../../tools/bench/timing.js";

const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
T.setNumThreads(threads);

// SDXL's block layout, narrowed: cross-attention width 1024 (a gen-CLIP width).
const unetJson = {
  in_channels: 4,
  out_channels: 4,
  down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
  block_out_channels: [64, 128, 256],
  layers_per_block: 2,
  attention_head_dim: [1, 2, 4],
  transformer_layers_per_block: [1, 2, 2],
  cross_attention_dim: 1024,
  use_linear_projection: true,
  addition_embed_type: "text_time",
  addition_time_embed_dim: 256,
  projection_class_embeddings_input_dim: 1024 + 6 * 256,
  norm_num_groups: 32,
};
const vaeJson = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  block_out_channels: [32, 64, 128, 128],
  layers_per_block: 2,
  latent_channels: 4,
  norm_num_groups: 32,
};

const python = () =>
  JSON.parse(
    execFileSync(
      process.env.PYTHON ?? "python3",
      [join(here, "..", "..", "..", "tools", "reference", "sdxl_bench.py"), String(threads), JSON.stringify(unetJson), JSON.stringify(vaeJson)],
      {
        encoding: "utf8",
      },
    ),
  ) as { diffusers: string; unet_s: number; vae_s: number };

T.manualSeed(0);
const unet = new UNet2DConditionModel(resolveUNetConfig(unetJson)).eval();
const vae = new AutoencoderKL(resolveAutoencoderKLConfig(vaeJson)).eval();
const sample = T.randn([2, 4, 32, 32]);
const context = T.randn([2, 64, 1024]);
const cond = {
  textEmbeds: T.randn([2, 1024]),
  timeIds: T.tensor(
    [
      [256, 256, 0, 0, 256, 256],
      [256, 256, 0, 0, 256, 256],
    ],
    { dtype: "float32" },
  ),
};
const latents = T.randn([1, 4, 32, 32]);
const runUnet = () => T.noGrad(() => T.scope(() => void unet.forward({ sample, timestep: 500, encoderHiddenStates: context, addedCondKwargs: cond })));
const runVae = () => T.noGrad(() => T.scope(() => void vae.decode(latents)));
runUnet();
runVae();
const ours = { unet: Infinity, vae: Infinity };
let theirs = { diffusers: "", unet_s: Infinity, vae_s: Infinity };
for (let round = 0; round < 2; round++) {
  ours.unet = Math.min(ours.unet, bestTime(runUnet, 5));
  ours.vae = Math.min(ours.vae, bestTime(runVae, 3));
  const p = python();
  theirs = { diffusers: p.diffusers, unet_s: Math.min(theirs.unet_s, p.unet_s), vae_s: Math.min(theirs.vae_s, p.vae_s) };
}
const rows: [string, number, number][] = [
  ["UNet forward, batch 2 (CFG), 32x32 latents (ms)", ours.unet * 1000, theirs.unet_s * 1000],
  ["VAE decode, 256x256 (ms)", ours.vae * 1000, theirs.vae_s * 1000],
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [
  `| small SDXL-shaped, float32, CPU | @pisces/sdxl-decoder | diffusers ${theirs.diffusers} | speed ratio (diffusers time / ours) | goal |`,
  "|---|---|---|---|---|",
  ...rows.map(([name, a, b]) => `| ${name} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(2)} | >= 1.0 |`),
].join("\n");
console.log(`\nMachine: ${machine}\n\n${table}\n`);
if (!process.env.BENCH_NO_WRITE)
  writeFileSync(
    join(here, "RESULTS.md"),
    `# @pisces/sdxl-decoder benchmark\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}.\nMachine: ${machine}. libtorch ${T.libtorchVersion()} (CPU), Node ${process.version}.\n` +
      "Random weights; UNet block_out_channels [64, 128, 256] with SDXL's block types, cross-attention width 1024, 64 context vectors; " +
      "VAE block_out_channels [32, 64, 128, 128]. Best of 2 rounds alternating with the Python process.\n\n" +
      `${table}\n`,
  );
