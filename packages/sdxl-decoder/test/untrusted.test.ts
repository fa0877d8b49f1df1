// Regression corpus for untrusted diffusers configs (issue 10): sizes that would build millions
// of modules, and keys that change diffusers' output or that diffusers refuses, each a clear
// error naming the key (never silently loaded into a different model).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../tools/test-support/errors.js";
import {
  AutoencoderKL,
  DDIMScheduler,
  EulerDiscreteScheduler,
  resolveAutoencoderKLConfig,
  resolveUNetConfig,
  SdxlDecoder,
  UNet2DConditionModel,
  UNetConfigError,
  VaeConfigError,
} from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-sdxl-untrusted-"));
const unet = {
  block_out_channels: [32, 64],
  down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
  up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
  layers_per_block: 1,
  attention_head_dim: 2,
  cross_attention_dim: 16,
  norm_num_groups: 8,
};

describe("UNet config.json", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["layers_per_block = 1e6", { layers_per_block: 1e6 }, /layers_per_block = 1000000 is out of range \(1 to 64\)/],
    [
      "transformer_layers_per_block = 1e6",
      { transformer_layers_per_block: 1e6 },
      /transformer_layers_per_block holds 1000000: entries must be integers from 1 to 64/,
    ],
    ["center_input_sample", { center_input_sample: true }, /center_input_sample = true is not supported \(input centering is not implemented\)/],
    ["mid_block_scale_factor", { mid_block_scale_factor: 2 }, /mid_block_scale_factor = 2 is not supported/],
    ["timestep_post_act", { timestep_post_act: "silu" }, /timestep_post_act = "silu" is not supported/],
    ["time_embedding_act_fn", { time_embedding_act_fn: "gelu" }, /time_embedding_act_fn = "gelu" is not supported/],
    ["mid_block_type null", { mid_block_type: null }, /mid_block_type = null \(a UNet without a mid block\) is not supported/],
    ["resnet_time_scale_shift", { resnet_time_scale_shift: "scale_shift" }, /resnet_time_scale_shift = "scale_shift" is not supported/],
    ["conv_in_kernel", { conv_in_kernel: 5 }, /conv_in_kernel = 5 is not supported/],
    ["only_cross_attention", { only_cross_attention: true }, /only_cross_attention = true is not supported/],
    ["an unknown key", { new_diffusers_feature: 1 }, /unknown keys new_diffusers_feature/],
    ["norm_eps 0", { norm_eps: 0 }, /norm_eps = 0 is out of range/],
    ["flip_sin_to_cos as a string", { flip_sin_to_cos: "true" }, /flip_sin_to_cos must be true or false/],
    ["too many blocks", { block_out_channels: new Array(100).fill(32) }, /block_out_channels must be a list of integers/],
  ];
  for (const [name, edit, message] of cases)
    it(name, () => {
      const e = errorOf(() => resolveUNetConfig({ ...unet, ...edit }, "unet/config.json"));
      expect(e).toBeInstanceOf(UNetConfigError);
      expect(e.message).toMatch(/^unet\/config.json: /);
      expect(e.message).toMatch(message);
    });
  it("the defaults diffusers writes are accepted", () => {
    const written = {
      ...unet,
      center_input_sample: false,
      mid_block_scale_factor: 1,
      timestep_post_act: null,
      time_embedding_act_fn: null,
      mid_block_type: "UNetMidBlock2DCrossAttn",
      resnet_time_scale_shift: "default",
      conv_in_kernel: 3,
      conv_out_kernel: 3,
      only_cross_attention: false,
      _class_name: "UNet2DConditionModel",
      sample_size: 32,
    };
    expect(resolveUNetConfig(written).layersPerBlock).toBe(1);
  });
  it("a layer count the weights do not have fails after a bounded build", () => {
    const dir = mkdtempSync(join(work, "unet-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...unet, layers_per_block: 64, transformer_layers_per_block: 64 }));
    T.saveSafetensors(join(dir, "diffusion_pytorch_model.safetensors"), { "conv_in.weight": T.zeros([32, 4, 3, 3]) });
    const e = errorOf(() => UNet2DConditionModel.fromPretrained(dir));
    expect(e).toBeInstanceOf(T.ConfigError);
    expect(e.message).toMatch(/describes a model with more than 257 tensors/);
  });
});

describe("VAE and scheduler configs", () => {
  it("refuses what changes the output and bad values", () => {
    expect(errorOf(() => resolveAutoencoderKLConfig({ shift_factor: 0.1 }, "vae/config.json")).message).toMatch(/shift_factor = 0.1 is not supported/);
    expect(errorOf(() => resolveAutoencoderKLConfig({ layers_per_block: 1e6 })).message).toMatch(/layers_per_block = 1000000 is out of range/);
    expect(errorOf(() => resolveAutoencoderKLConfig({ scaling_factor: -1 }))).toBeInstanceOf(VaeConfigError);
    expect(errorOf(() => resolveAutoencoderKLConfig({ block_out_channels: [32], up_block_types: ["AttnUpDecoderBlock2D"] })).message).toMatch(
      /up_block_types holds "AttnUpDecoderBlock2D"/,
    );
    expect(errorOf(() => new EulerDiscreteScheduler({ num_train_timesteps: 1e9 })).message).toMatch(/num_train_timesteps = 1000000000 is out of range/);
    expect(errorOf(() => new EulerDiscreteScheduler({ beta_end: Number.NaN })).message).toMatch(/beta_end must be a finite number/);
    expect(errorOf(() => new EulerDiscreteScheduler({ trained_betas: [0.1, 0.2] })).message).toMatch(/trained_betas = \[0.1,0.2\] is not supported/);
    expect(errorOf(() => new EulerDiscreteScheduler({ timestep_type: "continuous" })).message).toMatch(/timestep_type = "continuous" is not supported/);
  });
  it("schedulers report config keys they do not read", () => {
    expect(new EulerDiscreteScheduler({ beta_schedule: "scaled_linear", clip_sample: false, new_knob: 1 }).unknownConfigKeys).toEqual([
      "clip_sample",
      "new_knob",
    ]);
    expect(new DDIMScheduler({ clip_sample: false, set_alpha_to_one: false }).unknownConfigKeys).toEqual([]);
  });
  it("a decoder folder whose parts are not folders or whose scheduler config is not an object", () => {
    const dir = mkdtempSync(join(work, "decoder-"));
    for (const p of ["unet", "vae", "scheduler"]) mkdirSync(join(dir, p));
    writeFileSync(join(dir, "scheduler", "scheduler_config.json"), "[]");
    expect(errorOf(() => SdxlDecoder.fromPretrained(dir)).message).toMatch(/unet: no config.json/);
    expect(errorOf(() => AutoencoderKL.fromPretrained(join(dir, "missing"))).message).toMatch(/no such diffusers AutoencoderKL folder/);
  });
});
