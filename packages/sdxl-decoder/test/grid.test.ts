// pisces_vector_grid_channels (a deviation from SDXL, off by default): the vectors' grid as extra
// input channels. Against diffusers' UNet with the extra channels built by torch from the same
// weights (tools/reference/unet_grid_reference.py).
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { unetGridFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { resolveUNetConfig, UNet2DConditionModel } from "../src/index.js";

describe("vector grid conditioning", () => {
  it("equals diffusers' UNet fed torch's 1x1-convolved, upsampled grid beside the latents (1e-4)", () => {
    const dir = unetGridFixtures();
    const r = T.loadSafetensors(join(dir, "reference.safetensors"));
    const unet = UNet2DConditionModel.fromPretrained(join(dir, "unet"));
    try {
      expect(unet.conv_in.weight.shape).toEqual([32, 7, 3, 3]);
      const pred = T.noGrad(
        () =>
          unet.forward({
            sample: r.get("sample"),
            timestep: r.get("timestep"),
            encoderHiddenStates: r.get("context"),
            addedCondKwargs: { textEmbeds: r.get("text_embeds"), timeIds: r.get("time_ids") },
          }).sample,
      );
      expect(T.scope(() => pred.sub(r.get("pred")).abs().max().item())).toBeLessThan(1e-4);
      // not a square number of vectors: a clear error
      expect(() =>
        T.noGrad(() =>
          unet.forward({
            sample: r.get("sample"),
            timestep: 10,
            encoderHiddenStates: r.get("context").narrow(1, 0, 15),
            addedCondKwargs: { textEmbeds: r.get("text_embeds"), timeIds: r.get("time_ids") },
          }),
        ),
      ).toThrow(/square number of vectors, got 15/);
    } finally {
      unet.dispose();
    }
  });

  it("reads sample_size (the decoder's default image size is it x the VAE factor)", () => {
    expect(resolveUNetConfig({ sample_size: 16 }).sampleSize).toBe(16);
    expect(resolveUNetConfig({}).sampleSize).toBeNull();
    expect(resolveUNetConfig({ sample_size: null } as never).sampleSize).toBeNull();
  });

  it("is off by default: SDXL's UNet has no vector_grid_proj", () => {
    expect(resolveUNetConfig({}).vectorGridChannels).toBe(0);
    expect(() => resolveUNetConfig({ pisces_vector_grid_channels: -1 })).toThrow(/pisces_vector_grid_channels/);
  });
});
