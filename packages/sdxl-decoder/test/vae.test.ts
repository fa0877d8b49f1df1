// AutoencoderKL against diffusers on a tiny random SDXL-style VAE saved by save_pretrained:
// encoder mean and std, and decoder output, within 1e-4 (float32).
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { fixtures, referenceFixtures } from "./helpers.js";
import { AutoencoderKL } from "../src/index.js";

beforeAll(() => {
  referenceFixtures();
});
const maxAbsDiff = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item());

describe("AutoencoderKL matches diffusers", () => {
  it("loads the folder written by save_pretrained, encodes and decodes (<= 1e-4)", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(fixtures, "vae_reference.safetensors"));
        const vae = AutoencoderKL.fromPretrained(join(fixtures, "vae"));
        expect(vae.config.scalingFactor).toBe(0.13025);
        expect(vae.downsampleFactor).toBe(4);
        const dist = vae.encode(ref.get("pixels"));
        expect(dist.mean.shape).toEqual([2, 4, 8, 8]);
        expect(maxAbsDiff(dist.mean, ref.get("mean"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(dist.std, ref.get("std"))).toBeLessThanOrEqual(1e-4);
        const decoded = vae.decode(ref.get("latents"));
        expect(decoded.shape).toEqual([2, 3, 32, 32]);
        expect(maxAbsDiff(decoded, ref.get("decoded"))).toBeLessThanOrEqual(1e-4);
        const g1 = new T.Generator({ seed: 3 });
        const g2 = new T.Generator({ seed: 3 });
        expect(dist.sample(g1).equal(dist.sample(g2))).toBe(true);
      }),
    );
  });

  it("rejects bad shapes and folders clearly", () => {
    const vae = AutoencoderKL.fromPretrained(join(fixtures, "vae"));
    expect(() => vae.encode(T.zeros([1, 3, 30, 32]))).toThrow(/multiples of 4, got 30x32/);
    expect(() => vae.decode(T.zeros([1, 3, 8, 8]))).toThrow(/latents must be \(batch, 4, h, w\)/);
    expect(() => AutoencoderKL.fromPretrained(fixtures)).toThrow(/no config.json/);
  });
});
