// Errors: libtorch failures become JS errors with libtorch's message; the process lives on.
// Also: the addon loads and works in worker_threads (the demo server runs models in a worker).
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";

describe("errors", () => {
  it("shape mismatches throw a TorchError carrying libtorch's message", () => {
    let error: unknown;
    try {
      T.ones([2, 3]).matmul(T.ones([2, 3]));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(T.TorchError);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/);
    // the process is fine afterwards
    expect(T.ones([2]).add(1).tolist()).toEqual([2, 2]);
  });

  it("bad arguments name the operator and the argument", () => {
    expect(() => T.ones([2]).to("float12" as T.DType)).toThrow();
    expect(() => T.ones([2, 2]).reshape([3] as number[])).toThrow(/shape '\[3\]' is invalid for input of size 4/);
    expect(() => T.ones([2]).reshape("x" as unknown as number[])).toThrow(/expected the shape as an array of integers/);
    expect(() => T.zeros([-1])).toThrow(/non-negative integers/);
    expect(() => T.tensor([[1, 2], [3]])).toThrow(/ragged nested array/);
    expect(() => T.tensor(["a"] as unknown as number[])).toThrow(/expected numbers/);
    expect(() => T.tensor(new Float32Array(3), { shape: [2, 2] })).toThrow(/holds 12 bytes but shape \[2, 2\]/);
    expect(() => T.ones([2]).item()).toThrow(/item\(\): the tensor has 2 elements/);
    expect(() => T.tensor([1.5]).toArray().length).not.toThrow();
    expect(() => T.embedding(T.tensor([5]), T.ones([3, 2]))).toThrow(/index out of range/);
    expect(() => T.ones([2]).to("cuda:7")).toThrow(T.TorchError);
  });

  it("out-of-memory is an OutOfMemoryError, and the process lives on", () => {
    let error: unknown;
    try {
      T.empty([2 ** 62 / 4]); // 2^62 bytes: no allocator can give that
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(T.OutOfMemoryError);
    expect((error as Error).message).toMatch(/can't allocate memory: you tried to allocate 4611686018427387904 bytes/);
    expect(T.ones([3]).sum().item()).toBe(3);
  });

  it("loadStateDict names every missing, unexpected and mis-shaped key", () => {
    class Net extends T.nn.Module {
      a = new T.nn.Linear(2, 3);
      b = new T.nn.LayerNorm(3);
    }
    const net = new Net();
    const dict = new Map<string, T.Tensor>([
      ["a.weight", T.zeros([3, 2])],
      ["a.bias", T.zeros([4])],
      ["b.weight", T.zeros([3])],
      ["c.extra", T.zeros([1])],
    ]);
    let error: unknown;
    try {
      net.loadStateDict(dict);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(T.StateDictError);
    const e = error as T.StateDictError;
    expect(e.missing).toEqual(["b.bias"]);
    expect(e.unexpected).toEqual(["c.extra"]);
    expect(e.mismatched).toEqual([{ key: "a.bias", expected: [3], got: [4] }]);
    expect(e.message).toMatch(/missing keys: b.bias; unexpected keys: c.extra; shape mismatch: a.bias expects \[3\] but got \[4\]/);
  });
});

describe("worker_threads", () => {
  it("loads the addon in two workers at once and computes there", async () => {
    const script = fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url));
    const run = (n: number) =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(`import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(script)}); });`, {
          eval: true,
          workerData: { n },
        });
        w.once("message", resolve);
        w.once("error", reject);
      });
    const [a, b] = await Promise.all([run(3), run(4)]);
    expect(a).toBe(3 * 3 * 2); // sum of ones(3, 3) * 2
    expect(b).toBe(4 * 4 * 2);
    // the main thread's tensors are unaffected
    expect(T.ones([2]).sum().item()).toBe(2);
  });
});
