// Training pieces against their definitions: the forward process and the epsilon / v targets.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { NoiseSchedule } from "../src/index.js";

describe("NoiseSchedule", () => {
  it("noises and builds targets as x_t = sqrt(a) x0 + sqrt(1 - a) eps and v = sqrt(a) eps - sqrt(1 - a) x0", () => {
    T.scope(() => {
      const s = new NoiseSchedule({ beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012, prediction_type: "v_prediction" });
      const x0 = T.randn([2, 4, 3, 3]);
      const eps = T.randn([2, 4, 3, 3]);
      const t = T.tensor([0, 999]);
      const a = [s.alphasCumprod[0]!, s.alphasCumprod[999]!];
      const xt = s.addNoise(x0, eps, t);
      const v = s.target(x0, eps, t);
      for (let b = 0; b < 2; b++) {
        const expectX = x0
          .select(0, b)
          .mul(Math.sqrt(a[b]!))
          .add(eps.select(0, b).mul(Math.sqrt(1 - a[b]!)));
        const expectV = eps
          .select(0, b)
          .mul(Math.sqrt(a[b]!))
          .sub(x0.select(0, b).mul(Math.sqrt(1 - a[b]!)));
        expect(xt.select(0, b).sub(expectX).abs().max().item()).toBeLessThanOrEqual(1e-6);
        expect(v.select(0, b).sub(expectV).abs().max().item()).toBeLessThanOrEqual(1e-6);
      }
      expect(s.alphasCumprod[0]!).toBeCloseTo(1 - 0.00085, 6);
      expect(new NoiseSchedule().target(x0, eps, t).equal(eps)).toBe(true);
      const ts = s.sampleTimesteps(1000, { generator: new T.Generator({ seed: 1 }) });
      expect(ts.min().item()).toBeGreaterThanOrEqual(0);
      expect(ts.max().item()).toBeLessThan(1000);
    });
  });
});
