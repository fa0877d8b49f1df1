// The addon's fused RMSNorm (float32 CPU inference over the last dimension) against libtorch's
// rms_norm; where autograd needs the graph, or for other dtypes, the automatic path is rms_norm.
import { describe, expect, it } from "vitest";
import { rmsNormWith } from "../src/functional.js";
import * as T from "../src/index.js";

/** torch.allclose's measure: max(|a - b| - rtol |b|), which must stay <= atol. Summing 4096 squares
 * in another order moves the result by about 1e-6 relative, so an absolute bound alone fails on the
 * larger outputs (seen: 1.05e-5 on values near 10). */
const excess = (a: T.Tensor, b: T.Tensor, rtol = 1e-5) => a.sub(b).abs().sub(b.abs().mul(rtol)).max().item();

describe("fused rmsNorm", () => {
  for (const [shape, withWeight, eps] of [
    [[1, 1, 576], true, 1e-5],
    [[3, 7, 100], false, 1e-6],
    [[2, 4096], true, null],
  ] as const) {
    it(`${JSON.stringify(shape)}${withWeight ? " with weight" : ""}, eps ${eps ?? "default"} equals rms_norm`, () => {
      T.scope(() => {
        T.manualSeed(shape.length * 1000 + (shape[shape.length - 1] as number));
        const x = T.randn([...shape]).mul(3);
        const w = withWeight ? T.randn([shape[shape.length - 1] as number]) : null;
        const reference = rmsNormWith("aten", x, w, eps);
        const fused = rmsNormWith("fused", x, w, eps);
        expect(fused.shape).toEqual([...shape]);
        expect(excess(fused, reference)).toBeLessThanOrEqual(1e-5);
        const auto = T.noGrad(() => T.rmsNorm(x, [shape[shape.length - 1] as number], w, eps));
        expect(excess(auto, reference)).toBeLessThanOrEqual(1e-5);
      });
    });
  }

  it("a non-contiguous input gives the same as its contiguous copy", () => {
    T.scope(() => {
      const x = T.randn([6, 32]).transpose(0, 1); // (32, 6), strided
      const w = T.randn([6]);
      expect(
        rmsNormWith("fused", x, w, 1e-5)
          .sub(rmsNormWith("aten", x.contiguous(), w, 1e-5))
          .abs()
          .max()
          .item(),
      ).toBeLessThanOrEqual(1e-5);
    });
  });

  it("keeps autograd: gradients flow through the automatic path", () => {
    T.scope(() => {
      const x = T.randn([2, 16], { requiresGrad: true });
      const w = T.randn([16], { requiresGrad: true });
      T.rmsNorm(x, [16], w, 1e-5).pow(2).sum().backward();
      expect(x.grad!.shape).toEqual([2, 16]);
      expect(w.grad!.abs().sum().item()).toBeGreaterThan(0);
    });
  });

  it("refuses the forced path for other dtypes", () => {
    expect(() => rmsNormWith("fused", T.ones([2, 4], { dtype: "float64" }), null)).toThrow(/fused rmsNorm needs a float32 CPU input/);
  });
});
