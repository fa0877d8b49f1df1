// Memory: tensors are released deterministically; long training loops keep the live-tensor count
// and the process RSS flat.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { devices } from "./helpers.js";

describe("memory", () => {
  it("dispose, using and double dispose", () => {
    const before = T.memoryStats().liveTensors;
    const a = T.ones([1000]);
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    expect(T.memoryStats().liveBytes).toBeGreaterThanOrEqual(4000);
    a.dispose();
    a.dispose();
    expect(a.isDisposed).toBe(true);
    expect(T.memoryStats().liveTensors).toBe(before);
    expect(() => a.add(1)).toThrow(/disposed/);
    {
      using b = T.zeros([10]);
      expect(b.sum().item()).toBe(0);
    }
    // `b` and the temporary sum: only the sum is left (it was not in a scope).
    expect(T.memoryStats().liveTensors).toBe(before + 1);
  });

  it("scope frees intermediates and keeps what it returns", () => {
    const before = T.memoryStats().liveTensors;
    const { y, parts } = T.scope(() => {
      const x = T.randn([4, 4]);
      const y = x.matmul(x).relu().sum(1);
      const parts = y.split(2);
      return { y, parts: [parts[0]] };
    });
    expect(T.memoryStats().liveTensors).toBe(before + 2);
    expect(y.shape).toEqual([4]);
    expect(parts[0]!.shape).toEqual([2]);
    y.dispose();
    parts[0]!.dispose();
    expect(T.memoryStats().liveTensors).toBe(before);
  });

  it("nested scopes pass returned tensors outwards, and keep() escapes all scopes", () => {
    const before = T.memoryStats().liveTensors;
    let kept: T.Tensor | undefined;
    const outer = T.scope(() => {
      const inner = T.scope(() => {
        kept = T.keep(T.ones([2]));
        T.ones([3]);
        return T.ones([4]);
      });
      expect(inner.isDisposed).toBe(false);
      return 42;
    });
    expect(outer).toBe(42);
    expect(kept!.isDisposed).toBe(false);
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    kept!.dispose();
  });

  it("scopeAsync tracks tensors across awaits, and frees on error too", async () => {
    const before = T.memoryStats().liveTensors;
    const result = await T.scopeAsync(async () => {
      const a = T.ones([8]);
      await new Promise((r) => setTimeout(r, 5));
      const b = a.mul(2);
      await Promise.resolve();
      return b.sum();
    });
    expect(result.item()).toBe(16);
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    result.dispose();
    await expect(
      T.scopeAsync(async () => {
        T.ones([8]);
        await Promise.resolve();
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(T.memoryStats().liveTensors).toBe(before);
    expect(() => T.scope(() => Promise.resolve(1))).toThrow(/use scopeAsync/);
  });

  it("the garbage collector frees forgotten tensors (FinalizationRegistry safety net)", async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, "vitest.config.ts runs the tests with --expose-gc").toBeTypeOf("function");
    if (!gc) return;
    const before = T.memoryStats().liveTensors;
    (() => {
      for (let i = 0; i < 100; i++) T.ones([100]);
    })();
    expect(T.memoryStats().liveTensors).toBe(before + 100);
    for (let i = 0; i < 5 && T.memoryStats().liveTensors > before; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(T.memoryStats().liveTensors).toBeLessThanOrEqual(before); // earlier forgotten tensors may go too
  });

  for (const device of devices) {
    it(`10,000 training steps keep live tensors and RSS flat (${device})`, () => {
      class Mlp extends T.nn.Module {
        fc1 = new T.nn.Linear(32, 64);
        fc2 = new T.nn.Linear(64, 8);
        forward(x: T.Tensor) {
          return this.fc2.forward(T.silu(this.fc1.forward(x)));
        }
      }
      const model = new Mlp().to(device);
      const opt = new T.optim.AdamW(model.parameters(), { lr: 1e-3 });
      const x = T.randn([16, 32], { device });
      const y = T.randn([16, 8], { device });
      const step = () =>
        T.scope(() => {
          opt.zeroGrad();
          const loss = T.mseLoss(model.forward(x), y);
          loss.backward();
          opt.step();
        });
      for (let i = 0; i < 500; i++) step(); // warm-up: optimizer state, allocator caches, JIT
      const live = T.memoryStats().liveTensors;
      const bytes = T.memoryStats().liveBytes;
      const rss = process.memoryUsage().rss;
      for (let i = 0; i < 10_000; i++) step();
      expect(T.memoryStats().liveTensors).toBe(live);
      expect(T.memoryStats().liveBytes).toBe(bytes);
      const growth = (process.memoryUsage().rss - rss) / 2 ** 20;
      expect(growth, `RSS grew ${growth.toFixed(1)} MiB`).toBeLessThan(32);
      model.dispose();
      opt.dispose();
    });
  }
});

describe("T.inference", () => {
  it("frees everything but the result, with grad off, sync and async, inside and outside scopes", async () => {
    const w = T.ones([4, 4]).requiresGrad_(true);
    const before = T.memoryStats().liveTensors;
    const y = T.inference(() => {
      expect(T.isGradEnabled()).toBe(false);
      return w.matmul(w).relu().sum(0);
    });
    expect(T.isGradEnabled()).toBe(true);
    expect(y.requiresGrad).toBe(false);
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    y.dispose();
    const z = await T.inference(async () => {
      const a = w.mul(2);
      await new Promise((r) => setTimeout(r, 1));
      const b = a.add(1).mul(3); // made after an await: tracked too
      return { b };
    });
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    expect(T.scope(() => z.b.sum().item())).toBe(16 * 9);
    z.b.dispose();
    T.scope(() => {
      const inner = T.inference(() => w.add(1).mul(2));
      expect(T.memoryStats().liveTensors).toBe(before + 1);
      return inner;
    }).dispose();
    expect(() =>
      T.inference(() => {
        w.add(1);
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(T.isGradEnabled()).toBe(true);
    expect(T.memoryStats().liveTensors).toBe(before);
  });
});
