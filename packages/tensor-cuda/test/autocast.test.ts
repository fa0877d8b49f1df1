// autocast: libtorch's autocast through the addon. Inside, linear and matmul run in bfloat16 (the
// hand-written few-row kernel steps aside), parameters and their gradients stay float32; outside,
// nothing changed; regions nest and restore.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";

describe("autocast", () => {
  it("runs linear in bfloat16 on CPU as casting the inputs would, with float32 master weights and gradients", () => {
    T.manualSeed(3);
    const lin = new T.nn.Linear(16, 8);
    const x = T.randn([4, 16]);
    const y = T.autocast({ deviceType: "cpu" }, () => lin.forward(x));
    expect(y.dtype).toBe("bfloat16");
    const manual = T.linear(x.bfloat16(), lin.weight.bfloat16(), lin.bias!.bfloat16());
    expect(T.scope(() => y.float().sub(manual.float()).abs().max().item())).toBe(0);
    // 2 rows would take the few-row float32 kernel outside autocast; inside, the dispatcher casts
    expect(T.autocast({ deviceType: "cpu" }, () => T.noGrad(() => lin.forward(x.narrow(0, 0, 2)))).dtype).toBe("bfloat16");
    expect(lin.forward(x).dtype).toBe("float32"); // outside: unchanged
    const loss = T.autocast({ deviceType: "cpu" }, () => T.mseLoss(lin.forward(x), T.zeros([4, 8])));
    expect(loss.dtype).toBe("float32"); // losses stay float32 under autocast
    loss.backward();
    expect(lin.weight.dtype).toBe("float32");
    expect(lin.weight.grad!.dtype).toBe("float32");
    lin.dispose();
  });

  it("nests, turns off inside with enabled: false, restores after errors, refuses async functions", () => {
    const a = T.randn([3, 3]);
    T.autocast({ deviceType: "cpu" }, () => {
      expect(a.matmul(a).dtype).toBe("bfloat16");
      T.autocast({ deviceType: "cpu", enabled: false }, () => expect(a.matmul(a).dtype).toBe("float32"));
      expect(a.matmul(a).dtype).toBe("bfloat16");
    });
    expect(() =>
      T.autocast({ deviceType: "cpu" }, () => {
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(a.matmul(a).dtype).toBe("float32");
    expect(() => T.autocast({ deviceType: "cpu" }, async () => 1)).toThrow(/synchronous/);
    expect(a.matmul(a).dtype).toBe("float32");
  });
});
