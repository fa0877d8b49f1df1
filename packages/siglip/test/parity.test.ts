// Parity with transformers on tiny random SigLIP checkpoints: every hidden state, the pooled
// output and the image-text logits within 1e-4 (float32).
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { SiglipModel, SiglipVisionModel } from "../src/index.js";
import { maxAbsDiff, referenceFixtures } from "./helpers.js";

let dir: string;
beforeAll(() => {
  dir = referenceFixtures();
});

describe("SigLIP matches transformers", () => {
  it("SiglipVisionModel: every hidden state, last hidden state and pooled output", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(dir, "siglip_vision", "reference.safetensors"));
        const model = SiglipVisionModel.fromPretrained(join(dir, "siglip_vision", "model"));
        const out = model.forward({ pixelValues: ref.get("pixel_values"), outputHiddenStates: true });
        expect(out.hiddenStates!.length).toBe(3);
        out.hiddenStates!.forEach((h, i) => {
          expect(maxAbsDiff(h, ref.get(`hidden_states.${i}`)), `layer ${i}`).toBeLessThanOrEqual(1e-4);
        });
        expect(maxAbsDiff(out.lastHiddenState, ref.get("last_hidden_state"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(out.poolerOutput!, ref.get("pooler_output"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(model.imageFeatures(ref.get("pixel_values"), -2), ref.get("hidden_states.1"))).toBeLessThanOrEqual(1e-4);
      }),
    );
  });

  it("SiglipModel: text hidden states, embeddings and image-text logits", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(dir, "siglip", "reference.safetensors"));
        const model = SiglipModel.fromPretrained(join(dir, "siglip", "model"));
        const out = model.forward({ inputIds: ref.get("input_ids"), pixelValues: ref.get("pixel_values"), outputHiddenStates: true });
        out.textOutput.hiddenStates!.forEach((h, i) => {
          expect(maxAbsDiff(h, ref.get(`text_hidden_states.${i}`)), `text layer ${i}`).toBeLessThanOrEqual(1e-4);
        });
        expect(maxAbsDiff(out.textOutput.lastHiddenState, ref.get("text_last_hidden_state"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(out.imageEmbeds, ref.get("image_embeds"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(out.textEmbeds, ref.get("text_embeds"))).toBeLessThanOrEqual(1e-4);
        expect(out.logitsPerImage.shape).toEqual([3, 2]);
        expect(maxAbsDiff(out.logitsPerImage, ref.get("logits_per_image"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(out.logitsPerText, ref.get("logits_per_text"))).toBeLessThanOrEqual(1e-4);
      }),
    );
  });

  it("loads the vision tower alone from a full SiglipModel checkpoint", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(dir, "siglip", "reference.safetensors"));
        const full = SiglipModel.fromPretrained(join(dir, "siglip", "model"));
        const vision = SiglipVisionModel.fromPretrained(join(dir, "siglip", "model"));
        const px = ref.get("pixel_values");
        expect(maxAbsDiff(vision.forward({ pixelValues: px }).poolerOutput!, full.getImageFeatures(px))).toBe(0);
      }),
    );
  });

  it("rejects bad input with clear errors", () => {
    const model = SiglipVisionModel.fromPretrained(join(dir, "siglip_vision", "model"));
    expect(() => model.forward({ pixelValues: T.zeros([1, 3, 31, 32]) })).toThrow(/pixelValues must be \(batch, 3, 32, 32\), got \[1,3,31,32\]/);
    expect(() => model.imageFeatures(T.zeros([1, 3, 32, 32]), 7)).toThrow(/featureLayer 7 is out of range/);
    const full = SiglipModel.fromPretrained(join(dir, "siglip", "model"));
    expect(() => full.getTextFeatures(T.tensor([[1, 200]]))).toThrow(/token id 200 is out of range for a vocabulary of 64/);
    expect(() => SiglipModel.fromPretrained(join(dir, "siglip_vision", "model"))).toThrow(/not a SiglipModel checkpoint/);
  });
});
