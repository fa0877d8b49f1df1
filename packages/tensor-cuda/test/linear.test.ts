// The few-row linear kernel (the addon's path for float32 products of up to 16 rows on the CPU)
// against its reference, at::linear; the automatic choice never applies where autograd needs the graph.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { linearWith } from "../src/functional.js";

describe("few-row linear kernel", () => {
  // widths with remainders: output rows not a multiple of the 4-row tile, inputs not of the 8 lanes
  for (const [rows, bias, out, width] of [
    [1, false, 9000, 96],
    [1, true, 577, 100],
    [3, true, 1538, 576],
    [8, true, 9000, 96],
    [16, false, 130, 1537],
  ] as const) {
    it(`${rows} row(s) x ${width} -> ${out}${bias ? " with bias" : ""} equal at::linear`, () => {
      T.scope(() => {
        const x = T.randn([rows, 1, width]);
        const w = T.randn([out, width]);
        const b = bias ? T.randn([out]) : null;
        const reference = linearWith("aten", x, w, b);
        const fast = linearWith("few-row", x, w, b);
        expect(fast.shape).toEqual([rows, 1, out]);
        const scale = reference.abs().max().item();
        expect(fast.sub(reference).abs().max().item() / scale).toBeLessThanOrEqual(1e-6);
        // the automatic path (no grad, few rows) gives the same values
        expect(
          T.noGrad(() => T.linear(x, w, b))
            .sub(reference)
            .abs()
            .max()
            .item() / scale,
        ).toBeLessThanOrEqual(1e-6);
      });
    });
  }

  it("keeps autograd: with requiresGrad the automatic path is at::linear and gradients flow", () => {
    T.scope(() => {
      const x = T.randn([1, 64], { dtype: "float32" });
      const w = T.randn([8192, 64], { requiresGrad: true });
      T.linear(x, w).sum().backward();
      expect(w.grad!.shape).toEqual([8192, 64]);
      expect(
        w
          .grad!.sub(x.expand([8192, 64]))
          .abs()
          .max()
          .item(),
      ).toBe(0);
    });
  });

  it("refuses the forced path for other dtypes", () => {
    expect(() => linearWith("few-row", T.ones([1, 4], { dtype: "float64" }), T.ones([8, 4], { dtype: "float64" }))).toThrow(/needs float32 CPU tensors/);
  });
});
