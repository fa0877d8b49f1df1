// The memory contract (tensor-cuda README, "Writing a model"): each public entry point called
// outside any scope leaves exactly its outputs live, and 1,000 calls keep live tensors and RSS flat.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import {
  AutoencoderKL,
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  EulerDiscreteScheduler,
  NoiseSchedule,
  resolveAutoencoderKLConfig,
  resolveUNetConfig,
  SdxlDecoder,
  UNet2DConditionModel,
} from "../src/index.js";

const unet = new UNet2DConditionModel(
  resolveUNetConfig({
    block_out_channels: [8, 16],
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
    layers_per_block: 1,
    attention_head_dim: 2,
    cross_attention_dim: 8,
    norm_num_groups: 4,
    addition_embed_type: "text_time",
    addition_time_embed_dim: 4,
    projection_class_embeddings_input_dim: 32,
  }),
).eval();
const vae = new AutoencoderKL(
  resolveAutoencoderKLConfig({
    block_out_channels: [8, 8],
    down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    layers_per_block: 1,
    norm_num_groups: 4,
  }),
).eval();
const decoder = new SdxlDecoder(unet, vae, new EulerDiscreteScheduler());
const keep = <X extends T.Tensor>(t: X) => T.keep(t);
const sample = keep(T.randn([2, 4, 8, 8]));
const context = keep(T.randn([2, 3, 8]));
const added = { textEmbeds: keep(T.randn([2, 8])), timeIds: keep(T.randn([2, 6])) };
const pixels = keep(T.randn([1, 3, 16, 16]));
const latents = keep(T.randn([1, 4, 8, 8]));
const cond = keep(T.randn([1, 3, 8]));
const timesteps = keep(T.tensor([10n, 500n]));

/** A 3-step run of one scheduler (reused: setTimesteps frees the multistep state of the last run). */
function schedulerLoop(s: { setTimesteps(n: number): void; timesteps: number[]; step(o: T.Tensor, t: number, s: T.Tensor): object }) {
  return () => {
    s.setTimesteps(3);
    return s.timesteps.map((t) => s.step(sample, t, sample));
  };
}

describe("memory contract", () => {
  const entryPoints: [string, () => unknown, number][] = [
    ["UNet2DConditionModel.forward (autograd on)", () => unet.forward({ sample, timestep: 10, encoderHiddenStates: context, addedCondKwargs: added }), 300],
    ["AutoencoderKL.encode", () => T.noGrad(() => vae.encode(pixels)), 1000],
    ["AutoencoderKL.decode", () => T.noGrad(() => vae.decode(latents)), 1000],
    ["EulerDiscreteScheduler.step", schedulerLoop(new EulerDiscreteScheduler()), 1000],
    ["DDIMScheduler.step", schedulerLoop(new DDIMScheduler()), 1000],
    ["DPMSolverMultistepScheduler.step", schedulerLoop(new DPMSolverMultistepScheduler()), 1000],
    [
      "NoiseSchedule.addNoise / target",
      () => {
        const n = new NoiseSchedule({ prediction_type: "v_prediction" });
        return [n.addNoise(sample, sample, timesteps), n.target(sample, sample, timesteps)];
      },
      1000,
    ],
    ["SdxlDecoder.decode (guided, 2 steps)", () => decoder.decode(cond, { steps: 2, height: 16, width: 16, seed: 1 }), 100],
  ];
  for (const [name, call, calls] of entryPoints)
    it(name, async () => {
      await expectMemoryContract(T, expect, call, calls);
    });

  it("an abandoned denoising loop frees its state", async () => {
    const before = T.memoryStats().liveTensors;
    const loop = decoder.decodeSteps(cond, { steps: 4, height: 16, width: 16, seed: 1 });
    await loop.next();
    await loop.return(undefined as never);
    expect(T.memoryStats().liveTensors).toBe(before);
  });
});
