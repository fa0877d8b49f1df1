// ClipModel (both towers) against transformers' CLIPModel on tiny random weights
// (tools/reference/clip_reference.py): the text tower's states and pooled output, both
// embeddings, the logits and the contrastive loss, from the same ids, mask and pixels.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clipFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { ClipConfigError, ClipModel, ClipVisionModel, resolveClipConfig } from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";

let dir: string;
let ref: T.SafetensorsReader;
let model: ClipModel;
beforeAll(() => {
  dir = clipFixtures();
  ref = T.loadSafetensors(join(dir, "reference.safetensors"));
  model = ClipModel.fromPretrained(join(dir, "model"));
});
afterAll(() => model?.dispose());

describe("ClipModel", () => {
  it("equals transformers' CLIPModel: text states, pooled output, embeddings, logits, loss (1e-5)", () => {
    T.scope(() => {
      const input = { inputIds: ref.get("input_ids"), attentionMask: ref.get("attention_mask"), pixelValues: ref.get("pixel_values") };
      const text = model.text_model.forward(input);
      // padded positions attend only to real tokens before them, as transformers' causal mask does
      expect(maxAbsDiff(text.lastHiddenState, ref.get("text_last_hidden_state"))).toBeLessThan(1e-5);
      expect(maxAbsDiff(text.poolerOutput, ref.get("text_pooler_output"))).toBeLessThan(1e-5);
      const o = model.forward({ ...input, returnLoss: true });
      expect(maxAbsDiff(o.textEmbeds, ref.get("text_embeds"))).toBeLessThan(1e-5);
      expect(maxAbsDiff(o.imageEmbeds, ref.get("image_embeds"))).toBeLessThan(1e-5);
      expect(maxAbsDiff(o.logitsPerImage, ref.get("logits_per_image"))).toBeLessThan(1e-4); // scaled by exp(2.66) = 14.3
      expect(Math.abs(o.loss!.item() - ref.get("loss").item())).toBeLessThan(1e-5);
    });
  });

  it("the same folder loads as a vision tower alone (the gen_clip/ part of a Pisces folder)", () => {
    const vision = ClipVisionModel.fromPretrained(join(dir, "model"));
    try {
      T.scope(() => {
        const a = vision.forward({ pixelValues: ref.get("pixel_values") }).poolerOutput;
        const b = model.vision_model.forward(ref.get("pixel_values")).poolerOutput;
        expect(maxAbsDiff(a, b)).toBe(0);
      });
    } finally {
      vision.dispose();
    }
  });

  it("refuses a config without a text tower, and longer inputs than its positions", () => {
    expect(() => resolveClipConfig({ model_type: "clip", vision_config: {} }, "x/config.json")).toThrow(ClipConfigError);
    expect(() => resolveClipConfig({ model_type: "clip", vision_config: {} }, "x/config.json")).toThrow(/text_config is missing/);
    T.scope(() => {
      expect(() => model.text_model.forward({ inputIds: T.zeros([1, 17], { dtype: "int64" }) })).toThrow(/17 tokens exceed max_position_embeddings 16/);
    });
  });
});
