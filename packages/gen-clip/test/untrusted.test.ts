// Regression corpus for untrusted CLIP configs and processor settings (issue 10).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../tools/test-support/errors.js";
import { ClipConfigError, ClipImageProcessor, ClipVisionModel, resolveClipVisionConfig } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-clip-untrusted-"));
const vision = { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 8, patch_size: 4 };

describe("CLIP vision checkpoints", () => {
  const cases: [string, unknown, RegExp][] = [
    ["num_hidden_layers = 1e9", { ...vision, num_hidden_layers: 1e9 }, /num_hidden_layers = 1000000000 is out of range \(1 to 1024\)/],
    ["model_type bert", { ...vision, model_type: "bert" }, /model_type = "bert" is not supported \(supported: clip_vision_model, clip\)/],
    ["layer_norm_eps negative", { ...vision, layer_norm_eps: -1 }, /layer_norm_eps = -1 is out of range/],
    [
      "nested vision_config with a bad head count",
      { model_type: "clip", vision_config: { ...vision, num_attention_heads: 3 } },
      /hidden_size must be divisible by num_attention_heads/,
    ],
  ];
  for (const [name, config, message] of cases)
    it(name, () => {
      const dir = mkdtempSync(join(work, "m-"));
      writeFileSync(join(dir, "config.json"), JSON.stringify(config));
      T.saveSafetensors(join(dir, "model.safetensors"), { "vision_model.post_layernorm.weight": T.zeros([8]) });
      const e = errorOf(() => ClipVisionModel.fromPretrained(dir));
      expect(e).toBeInstanceOf(ClipConfigError);
      expect(e.message).toMatch(message);
      expect(e.message).toContain(join(dir, "config.json"));
    });
});

describe("CLIP unknown keys", () => {
  it("are reported", () => {
    const dir = mkdtempSync(join(work, "u-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...vision, my_flag: 1 }));
    T.saveSafetensors(join(dir, "model.safetensors"), new ClipVisionModel(resolveClipVisionConfig(vision)).stateDict());
    expect(ClipVisionModel.fromPretrained(dir).unknownConfigKeys).toEqual(["my_flag"]);
  });
});

describe("CLIP image processor settings", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["crop_size 0x0", { crop_size: { height: 0, width: 0 } }, /crop_size.height = 0 is out of range/],
    ["image_mean [0.5]", { image_mean: [0.5] }, /image_mean must have 3 entries/],
    ["image_std 'x'", { image_std: "x" }, /image_std must be a list of finite numbers/],
    ["shortest_edge 1e9", { size: { shortest_edge: 1e9 } }, /size.shortest_edge = 1000000000 is out of range/],
    ["do_center_crop as a string", { do_center_crop: "no" }, /do_center_crop must be true or false/],
  ];
  for (const [name, config, message] of cases)
    it(name, () => expect(errorOf(() => new ClipImageProcessor(config, "preprocessor_config.json")).message).toMatch(message));
});
