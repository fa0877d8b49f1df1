// Activation checkpointing: the same gradients as the plain backward (the segments run the same
// operations again, in float64 here), nothing kept once the backward has run.
import { afterEach, describe, expect, it } from "vitest";
import { pendingCheckpoints } from "../src/checkpoint.js";
import * as T from "../src/index.js";
import { flat } from "./helpers.js";

const gen = () => new T.Generator({ seed: 7 });
const param = (shape: number[], g: T.Generator) => T.keep(T.randn(shape, { dtype: "float64", generator: g }).mul(0.5).requiresGrad_(true));

/** A block of an MLP with a residual: x + W2 tanh(W1 x + b). */
function block(x: T.Tensor, w1: T.Tensor, b: T.Tensor, w2: T.Tensor): T.Tensor {
  return x.add(T.linear(T.linear(x, w1, b).tanh(), w2, null));
}

interface Net {
  scale: T.Tensor;
  layers: [T.Tensor, T.Tensor, T.Tensor][];
  all: T.Tensor[];
}

function net(): Net {
  const g = gen();
  const scale = param([6], g);
  const layers = Array.from({ length: 3 }, () => [param([8, 6], g), param([8], g), param([6, 8], g)] as [T.Tensor, T.Tensor, T.Tensor]);
  return { scale, layers, all: [scale, ...layers.flat()] };
}

/** loss and every parameter's gradient, with the blocks checkpointed or not. */
function gradsOf(n: Net, input: T.Tensor, checkpointed: boolean): { loss: number; grads: number[][] } {
  for (const p of n.all) p.grad = null;
  const loss = T.scope(() => {
    let h = input.mul(n.scale); // a graph before the first segment: its gradient reaches `scale`
    for (const [w1, b, w2] of n.layers) h = checkpointed ? T.checkpoint((x, a, c, d) => block(x, a, c, d), h, w1, b, w2) : block(h, w1, b, w2);
    const l = h.pow(2).mean();
    l.backward();
    return l.item();
  });
  return { loss, grads: n.all.map((p) => T.scope(() => flat(p.grad!))) };
}

const maxDiff = (a: number[][], b: number[][]) => Math.max(...a.map((row, i) => Math.max(...row.map((v, j) => Math.abs(v - b[i]![j]!)))));

describe("checkpoint", () => {
  afterEach(() => {
    expect(pendingCheckpoints()).toBe(0);
  });

  it("gives the gradients of the plain backward, parameters as inputs or read by the closure", () => {
    const n = net();
    const x = T.keep(T.randn([4, 6], { dtype: "float64", generator: gen() }));
    const plain = gradsOf(n, x, false);
    const ckpt = gradsOf(n, x, true);
    expect(ckpt.loss).toBe(plain.loss);
    expect(maxDiff(ckpt.grads, plain.grads)).toBeLessThanOrEqual(1e-12);
    expect(plain.grads[0]!.some((v) => v !== 0)).toBe(true);
    // parameters read by the closure (modules do this) instead of passed in
    for (const p of n.all) p.grad = null;
    T.scope(() => {
      let h = x.mul(n.scale);
      for (const [w1, b, w2] of n.layers) h = T.checkpoint((y) => block(y, w1, b, w2), h);
      h.pow(2).mean().backward();
    });
    expect(
      maxDiff(
        n.all.map((p) => T.scope(() => flat(p.grad!))),
        plain.grads,
      ),
    ).toBeLessThanOrEqual(1e-12);
    for (const t of [...n.all, x]) t.dispose();
  });

  it("runs the segments again for a second backward of a retained graph", () => {
    const n = net();
    const x = T.keep(T.randn([4, 6], { dtype: "float64", generator: gen() }));
    const twoLosses = (checkpointed: boolean) => {
      for (const p of n.all) p.grad = null;
      T.scope(() => {
        let h = x.mul(n.scale);
        for (const [w1, b, w2] of n.layers) h = checkpointed ? T.checkpoint(block, h, w1, b, w2) : block(h, w1, b, w2);
        h.pow(2).mean().backward(undefined, { retainGraph: true });
        h.sin().sum().backward();
      });
      return n.all.map((p) => T.scope(() => flat(p.grad!)));
    };
    expect(maxDiff(twoLosses(true), twoLosses(false))).toBeLessThanOrEqual(1e-12);
    for (const t of [...n.all, x]) t.dispose();
  });

  it("handles several outputs, non-tensor inputs, an output the loss ignores and a segment it never reaches", () => {
    const g = gen();
    const w = param([5, 5], g);
    const x = T.keep(T.randn([3, 5], { dtype: "float64", generator: g }).requiresGrad_(true));
    const f = (h: T.Tensor, m: T.Tensor, k: number, mode: string): T.Tensor[] => {
      const y = T.linear(h, m, null).mul(k);
      return mode === "both" ? [y.sin(), y.cos()] : [y];
    };
    const run = (checkpointed: boolean) =>
      T.scope(() => {
        w.grad = null;
        x.grad = null;
        const [a, b] = checkpointed ? T.checkpoint(f, x, w, 3, "both") : f(x, w, 3, "both");
        const [unused] = checkpointed ? T.checkpoint(f, a!, w, 2, "one") : f(a!, w, 2, "one"); // never reaches the loss
        expect(unused!.shape).toEqual([3, 5]);
        const [c] = checkpointed ? T.checkpoint(f, b!, w, 1, "one") : f(b!, w, 1, "one");
        c!.sum().backward(); // a's second use never reaches the loss: only b and c carry gradient
        return [flat(w.grad!), flat(x.grad!)];
      });
    const plain = run(false);
    const ckpt = run(true);
    expect(maxDiff(ckpt, plain)).toBeLessThanOrEqual(1e-12);
    w.dispose();
    x.dispose();
  });

  it("nests, recomputes under the autocast region of the forward, and is a plain call without grad", () => {
    const g = gen();
    // two weights, each used once: plain autocast would otherwise sum a weight's two gradients in
    // bf16 (one cached cast) where the segments sum them in float32
    const w1 = T.keep(T.randn([16, 16], { generator: g }).mul(0.3).requiresGrad_(true));
    const w2 = T.keep(T.randn([16, 16], { generator: g }).mul(0.3).requiresGrad_(true));
    const x = T.keep(T.randn([4, 16], { generator: g }));
    const inner = (h: T.Tensor, w: T.Tensor) => T.linear(h, w, null).tanh();
    const outer = (h: T.Tensor, nested: boolean) => (nested ? T.checkpoint(inner, T.checkpoint(inner, h, w1), w2) : inner(inner(h, w1), w2)).sum();
    const gradOf = (checkpointed: boolean, bf16: boolean) =>
      T.scope(() => {
        w1.grad = null;
        w2.grad = null;
        const fn = () => (checkpointed ? T.checkpoint((h) => outer(h, true), x) : outer(x, false));
        const loss = bf16 ? T.autocast({ deviceType: "cpu", dtype: "bfloat16" }, fn) : fn();
        loss.backward(); // outside the region, as the trainer does
        return [flat(w1.grad!), flat(w2.grad!)];
      });
    expect(maxDiff(gradOf(true, false), gradOf(false, false))).toBeLessThanOrEqual(1e-6);
    // a recompute outside the bf16 region would give float32 gradients, 1e-2 away from these
    const bf = gradOf(false, true);
    expect(maxDiff(gradOf(true, true), bf)).toBeLessThanOrEqual(1e-6);
    expect(maxDiff(gradOf(false, false), bf)).toBeGreaterThan(1e-4);
    expect(T.noGrad(() => T.scope(() => T.checkpoint(inner, x, w1).requiresGrad))).toBe(false);
    for (const t of [w1, w2, x]) t.dispose();
  });

  it("names what is wrong", () => {
    const w = T.keep(T.ones([2, 2]).requiresGrad_(true));
    T.scope(() => {
      expect(() => T.checkpoint((() => 3) as unknown as () => T.Tensor)).toThrow(/must return a Tensor or a non-empty array/);
      expect(() => T.checkpoint((h: T.Tensor) => h.argmax(1), w)).toThrow(/output 0 is int64; checkpointed outputs must be floating point/);
      const gone = T.ones([2]);
      gone.dispose();
      expect(() => T.checkpoint((h: T.Tensor) => h.mul(2), gone)).toThrow(/input 0 is a disposed tensor/);
      let calls = 0;
      const changing = (h: T.Tensor) => (calls++ === 0 ? h.matmul(w) : h.matmul(w).sum(0));
      const y = T.checkpoint(changing, T.ones([3, 2]));
      expect(() => y.sum().backward()).toThrow(
        /recomputed segment returned float32\[2\] where the forward returned float32\[3,2\]: a checkpointed function must compute the same thing twice/,
      );
    });
    expect(pendingCheckpoints()).toBe(0);
    T.scope(() => {
      T.checkpoint((h: T.Tensor) => h.mul(2), w);
    });
    expect(pendingCheckpoints()).toBe(1);
    T.discardCheckpoints();
    w.dispose();
  });

  it("keeps memory flat over many steps", () => {
    const n = net();
    const x = T.keep(T.randn([4, 6], { dtype: "float64", generator: gen() }));
    gradsOf(n, x, true);
    const before = T.memoryStats().liveTensors;
    for (let i = 0; i < 50; i++) gradsOf(n, x, true);
    expect(T.memoryStats().liveTensors).toBe(before);
    T.scope(() => {
      T.checkpoint((h: T.Tensor) => block(h, ...n.layers[0]!), x);
    });
    T.discardCheckpoints();
    expect(T.memoryStats().liveTensors).toBe(before);
    for (const t of [...n.all, x]) t.dispose();
  });
});
