// Regression corpus for untrusted SigLIP configs and processor settings (issue 10).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../tools/test-support/errors.js";
import { resolveSiglipVisionConfig, SiglipConfigError, SiglipImageProcessor, SiglipModel, SiglipVisionModel } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-siglip-untrusted-"));
const vision = { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 8, patch_size: 4 };

function folder(config: unknown, weights: Record<string, T.Tensor> = { "vision_model.post_layernorm.weight": T.zeros([8]) }): string {
  const dir = mkdtempSync(join(work, "m-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  T.saveSafetensors(join(dir, "model.safetensors"), weights);
  return dir;
}

describe("SigLIP checkpoints", () => {
  const cases: [string, unknown, RegExp][] = [
    ["num_hidden_layers = 1e9", { ...vision, num_hidden_layers: 1e9 }, /num_hidden_layers = 1000000000 is out of range \(1 to 1024\)/],
    ["model_type bert", { ...vision, model_type: "bert" }, /model_type = "bert" is not supported \(supported: siglip, siglip_vision_model\)/],
    [
      "nested model_type bert",
      { model_type: "siglip", vision_config: { ...vision, model_type: "bert" } },
      /vision_config.model_type = "bert" is not supported/,
    ],
    ["layer_norm_eps 0", { ...vision, layer_norm_eps: 0 }, /layer_norm_eps = 0 is out of range/],
    ["layer_norm_eps as a string", { ...vision, layer_norm_eps: "1e-6" }, /layer_norm_eps must be a finite number/],
    ["vision_use_head as a string", { ...vision, vision_use_head: "false" }, /vision_use_head must be true or false/],
  ];
  for (const [name, config, message] of cases)
    it(name, () => {
      const dir = folder(config);
      const e = errorOf(() => SiglipVisionModel.fromPretrained(dir));
      expect(e).toBeInstanceOf(SiglipConfigError);
      expect(e.message).toMatch(message);
      expect(e.message).toContain(join(dir, "config.json"));
    });
  it("a layer count the weights do not have fails after a bounded build", () => {
    const e = errorOf(() => SiglipVisionModel.fromPretrained(folder({ ...vision, num_hidden_layers: 1000 })));
    expect(e.message).toMatch(/describes a model with more than 257 tensors/);
  });
  it("one prefixed key in an unprefixed checkpoint says which prefix, instead of every weight missing", () => {
    const dir = folder(vision, { "vision_model.post_layernorm.weight": T.zeros([8]), "post_layernorm.bias": T.zeros([8]) });
    expect(errorOf(() => SiglipVisionModel.fromPretrained(dir)).message).toMatch(
      /mixes keys with and without the 'vision_model.' prefix \(1 with, e.g. 'vision_model.post_layernorm.weight'; 1 without/,
    );
  });
  it("reports config keys it does not use (top level and nested)", () => {
    const dir = folder(
      { model_type: "siglip", my_flag: 1, vision_config: { ...vision, new_vision_knob: true } },
      Object.fromEntries(new SiglipVisionModel(resolveSiglipVisionConfig(vision)).stateDict()),
    );
    expect(SiglipVisionModel.fromPretrained(dir).unknownConfigKeys).toEqual(["my_flag", "vision_config.new_vision_knob"]);
  });
  it("a SiglipModel needs both towers", () => {
    expect(errorOf(() => SiglipModel.fromPretrained(folder(vision))).message).toMatch(/no text_config: not a SiglipModel checkpoint/);
  });
});

describe("SigLIP image processor settings", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["image_mean with one entry", { image_mean: [0.5] }, /image_mean must have 3 entries \(got 1\)/],
    ["image_std as a string", { image_std: "x" }, /image_std must be a list of finite numbers/],
    ["image_std zero", { image_std: [0.5, 0, 0.5] }, /image_std holds 0, out of range/],
    ["size 0x0", { size: { height: 0, width: 0 } }, /size.height = 0 is out of range/],
    ["resample 9", { resample: 9 }, /resample = 9 is out of range \(0 to 5\)/],
  ];
  for (const [name, config, message] of cases)
    it(name, () => expect(errorOf(() => new SiglipImageProcessor(config, "preprocessor_config.json")).message).toMatch(message));
});
