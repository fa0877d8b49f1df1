// UNet2DConditionModel against diffusers on a tiny random SDXL-style UNet written by
// save_pretrained (text_time addition embedding, two resolutions, transformer_layers_per_block
// [1, 2], linear projection, cross-attention width 24): output within 1e-4 (float32).
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { fixtures, referenceFixtures } from "./helpers.js";
import { UNet2DConditionModel } from "../src/index.js";

beforeAll(() => {
  referenceFixtures();
});
const maxAbsDiff = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item());

describe("UNet2DConditionModel matches diffusers", () => {
  it("loads the folder written by save_pretrained and predicts the same noise (<= 1e-4)", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(fixtures, "unet_reference.safetensors"));
        const unet = UNet2DConditionModel.fromPretrained(join(fixtures, "unet"));
        const input = {
          sample: ref.get("sample"),
          encoderHiddenStates: ref.get("context"),
          addedCondKwargs: { textEmbeds: ref.get("text_embeds"), timeIds: ref.get("time_ids") },
        };
        const y = unet.forward({ ...input, timestep: 523 }).sample;
        expect(y.shape).toEqual([2, 4, 16, 16]);
        expect(maxAbsDiff(y, ref.get("out_t523"))).toBeLessThanOrEqual(1e-4);
        const y2 = unet.forward({ ...input, timestep: T.tensor([999, 1]) }).sample;
        expect(maxAbsDiff(y2, ref.get("out_t999_1"))).toBeLessThanOrEqual(1e-4);
      }),
    );
  });

  it("rejects bad conditioning and sizes clearly", () => {
    const unet = UNet2DConditionModel.fromPretrained(join(fixtures, "unet"));
    const ok = {
      sample: T.zeros([1, 4, 16, 16]),
      timestep: 1,
      encoderHiddenStates: T.zeros([1, 5, 24]),
      addedCondKwargs: { textEmbeds: T.zeros([1, 24]), timeIds: T.zeros([1, 6]) },
    };
    expect(() => unet.forward({ ...ok, encoderHiddenStates: T.zeros([1, 5, 32]) })).toThrow(/encoderHiddenStates must be \(1, tokens, 24\)/);
    expect(() => unet.forward({ ...ok, sample: T.zeros([1, 4, 15, 16]) })).toThrow(/multiples of 2, got 15x16/);
    expect(() => unet.forward({ ...ok, addedCondKwargs: undefined })).toThrow(/pass addedCondKwargs/);
    expect(() => unet.forward({ ...ok, addedCondKwargs: { textEmbeds: T.zeros([1, 20]), timeIds: T.zeros([1, 6]) } })).toThrow(/must be 72 wide, got 68/);
  });
});
