// Parity with transformers on tiny random CLIPVisionModels (quick_gelu and gelu): every hidden
// state and the pooled output within 1e-4; the gen-CLIP pooled vectors equal torch's avg_pool2d.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipVisionModel, GenClipEncoder, gridToTokens, poolTokens, tokensToGrid } from "../src/index.js";
import { maxAbsDiff, referenceFixtures } from "./helpers.js";

let dir: string;
beforeAll(() => {
  dir = referenceFixtures();
});

describe.each(["clip_quick", "clip_gelu"])("CLIPVisionModel '%s' matches transformers", (name) => {
  it("every hidden state, last hidden state and pooled output (<= 1e-4)", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(dir, name, "reference.safetensors"));
        const model = ClipVisionModel.fromPretrained(join(dir, name, "model"));
        const out = model.forward({ pixelValues: ref.get("pixel_values"), outputHiddenStates: true });
        expect(out.hiddenStates!.length).toBe(4);
        out.hiddenStates!.forEach((h, i) => {
          expect(maxAbsDiff(h, ref.get(`hidden_states.${i}`)), `layer ${i}`).toBeLessThanOrEqual(1e-4);
        });
        expect(maxAbsDiff(out.lastHiddenState, ref.get("last_hidden_state"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(out.poolerOutput, ref.get("pooler_output"))).toBeLessThanOrEqual(1e-4);
      }),
    );
  });

  it("gen-CLIP vectors equal torch's avg_pool2d of the same grid", () => {
    T.noGrad(() =>
      T.scope(() => {
        const ref = T.loadSafetensors(join(dir, name, "reference.safetensors"));
        const clip = ClipVisionModel.fromPretrained(join(dir, name, "model"));
        for (const [layer, k] of [
          [-2, 4],
          [-1, 2],
          [-1, 1],
        ] as const) {
          const enc = new GenClipEncoder(clip, { kernel: k, featureLayer: layer });
          const v = enc.encode(ref.get("pixel_values"));
          expect(v.shape).toEqual([2, (8 / k) ** 2, 32]);
          expect(enc.numTokens).toBe((8 / k) ** 2);
          expect(maxAbsDiff(v, ref.get(`pooled.layer${layer}.k${k}`)), `layer ${layer} k ${k}`).toBeLessThanOrEqual(1e-4);
        }
      }),
    );
  });
});

describe("gen-CLIP pooling helpers", () => {
  it("pools a 32x32 grid to 64 vectors and round-trips grids", () => {
    T.scope(() => {
      const tokens = T.randn([2, 1024, 8]);
      expect(poolTokens(tokens, 4).shape).toEqual([2, 64, 8]);
      expect(poolTokens(T.randn([1, 729, 4]), 3).shape).toEqual([1, 81, 4]);
      expect(poolTokens(T.randn([1, 729, 4]), 9).shape).toEqual([1, 9, 4]);
      const grid = tokensToGrid(tokens);
      expect(grid.shape).toEqual([2, 8, 32, 32]);
      expect(gridToTokens(grid).equal(tokens)).toBe(true);
      // the mean of the first 4x4 window
      const first = tokens.reshape([2, 32, 32, 8]).slice(1, 0, 4).slice(2, 0, 4).mean([1, 2]);
      expect(maxAbsDiff(poolTokens(tokens, 4).select(1, 0), first)).toBeLessThanOrEqual(1e-6);
      expect(() => poolTokens(T.randn([1, 30, 4]), 2)).toThrow(/do not form a square grid/);
      expect(() => poolTokens(T.randn([1, 729, 4]), 4)).toThrow(/27x27 grid cannot be pooled with kernel 4/);
    });
  });
});
