// The row-parallel linear (a custom path for few-row float32 products on the CPU) against its
// reference, at::linear, forward; and the automatic choice never applies where autograd needs the graph.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { linearWith } from "../src/functional.js";

describe("row-parallel linear", () => {
  for (const [rows, bias] of [
    [1, false],
    [1, true],
    [8, true],
    [16, false],
  ] as const) {
    it(`${rows} row(s)${bias ? " with bias" : ""} equal at::linear`, () => {
      T.scope(() => {
        const x = T.randn([rows, 1, 96]);
        const w = T.randn([9000, 96]);
        const b = bias ? T.randn([9000]) : null;
        const reference = linearWith("aten", x, w, b);
        const fast = linearWith("row-parallel", x, w, b);
        expect(fast.shape).toEqual([rows, 1, 9000]);
        const scale = reference.abs().max().item();
        expect(fast.sub(reference).abs().max().item() / scale).toBeLessThanOrEqual(1e-6);
        // the automatic path (no grad, few rows, wide output) gives the same values
        expect(T.noGrad(() => T.linear(x, w, b)).sub(reference).abs().max().item() / scale).toBeLessThanOrEqual(1e-6);
      });
    });
  }

  it("keeps autograd: with requiresGrad the automatic path is at::linear and gradients flow", () => {
    T.scope(() => {
      const x = T.randn([1, 64], { dtype: "float32" });
      const w = T.randn([8192, 64], { requiresGrad: true });
      T.linear(x, w).sum().backward();
      expect(w.grad!.shape).toEqual([8192, 64]);
      expect(w.grad!.sub(x.expand([8192, 64])).abs().max().item()).toBe(0);
    });
  });

  it("refuses the forced path for other dtypes", () => {
    expect(() => linearWith("row-parallel", T.ones([1, 4], { dtype: "float64" }), T.ones([8, 4], { dtype: "float64" }))).toThrow(/needs float32 CPU tensors/);
  });
});
