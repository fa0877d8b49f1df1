// Gradients of every differentiable op against central finite differences, in float64.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { devices, gradcheck } from "./helpers.js";

type Case = [name: string, f: (...xs: T.Tensor[]) => T.Tensor, make: (device: string) => T.Tensor[]];

const r = (shape: number[], device: string, offset = 0) => T.randn(shape, { dtype: "float64", device }).add(offset);
const pos = (shape: number[], device: string) => T.rand(shape, { dtype: "float64", device }).add(0.5);

const cases: Case[] = [
  ["add (broadcast)", (a, b) => a.add(b), (d) => [r([2, 3], d), r([3], d)]],
  ["add alpha", (a, b) => a.add(b, { alpha: 2.5 }), (d) => [r([2, 3], d), r([2, 3], d)]],
  ["sub", (a, b) => a.sub(b), (d) => [r([2, 3], d), r([2, 1], d)]],
  ["mul", (a, b) => a.mul(b), (d) => [r([2, 3], d), r([2, 3], d)]],
  ["div", (a, b) => a.div(b), (d) => [r([2, 3], d), pos([2, 3], d)]],
  ["pow scalar", (a) => a.pow(3), (d) => [r([2, 3], d)]],
  ["pow tensor", (a, b) => a.pow(b), (d) => [pos([2, 3], d), r([2, 3], d)]],
  ["neg", (a) => a.neg(), (d) => [r([4], d)]],
  ["abs", (a) => a.abs(), (d) => [pos([4], d)]],
  ["exp", (a) => a.exp(), (d) => [r([4], d)]],
  ["log", (a) => a.log(), (d) => [pos([4], d)]],
  ["sqrt", (a) => a.sqrt(), (d) => [pos([4], d)]],
  ["rsqrt", (a) => a.rsqrt(), (d) => [pos([4], d)]],
  ["tanh", (a) => a.tanh(), (d) => [r([4], d)]],
  ["sigmoid", (a) => a.sigmoid(), (d) => [r([4], d)]],
  ["sin", (a) => a.sin(), (d) => [r([4], d)]],
  ["cos", (a) => a.cos(), (d) => [r([4], d)]],
  ["sum", (a) => a.sum(1), (d) => [r([2, 3], d)]],
  ["mean", (a) => a.mean([0, 1]), (d) => [r([2, 3], d)]],
  ["max (dim)", (a) => a.max(1).values, (d) => [r([2, 3], d)]],
  ["min (dim)", (a) => a.min(0).values, (d) => [r([2, 3], d)]],
  ["amax", (a) => a.amax(1), (d) => [r([2, 3], d)]],
  ["var", (a) => a.var(1), (d) => [r([2, 4], d)]],
  ["matmul", (a, b) => a.matmul(b), (d) => [r([2, 3], d), r([3, 2], d)]],
  ["bmm", (a, b) => a.bmm(b), (d) => [r([2, 2, 3], d), r([2, 3, 2], d)]],
  ["linear", (x, w, b) => T.linear(x, w, b), (d) => [r([2, 3], d), r([4, 3], d), r([4], d)]],
  ["conv2d stride/padding", (x, w, b) => T.conv2d(x, w, b, { stride: 2, padding: 1 }), (d) => [r([1, 2, 4, 4], d), r([3, 2, 3, 3], d), r([3], d)]],
  ["conv2d groups", (x, w) => T.conv2d(x, w, null, { groups: 2 }), (d) => [r([1, 4, 3, 3], d), r([2, 2, 2, 2], d)]],
  ["layerNorm", (x, w, b) => T.layerNorm(x, [4], w, b), (d) => [r([2, 4], d), r([4], d), r([4], d)]],
  ["groupNorm", (x, w, b) => T.groupNorm(x, 2, w, b), (d) => [r([2, 4, 3], d), r([4], d), r([4], d)]],
  ["rmsNorm", (x, w) => T.rmsNorm(x, [4], w, 1e-6), (d) => [r([2, 4], d), r([4], d)]],
  ["softmax", (x) => x.softmax(-1), (d) => [r([2, 4], d)]],
  ["logSoftmax", (x) => x.logSoftmax(0), (d) => [r([3, 2], d)]],
  ["gelu exact", (x) => T.gelu(x), (d) => [r([5], d)]],
  ["gelu tanh", (x) => T.gelu(x, { approximate: "tanh" }), (d) => [r([5], d)]],
  ["silu", (x) => T.silu(x), (d) => [r([5], d)]],
  ["attention", (q, k, v) => T.scaledDotProductAttention(q, k, v), (d) => [r([1, 2, 3, 4], d), r([1, 2, 3, 4], d), r([1, 2, 3, 4], d)]],
  [
    "attention causal",
    (q, k, v) => T.scaledDotProductAttention(q, k, v, { isCausal: true }),
    (d) => [r([1, 1, 3, 2], d), r([1, 1, 3, 2], d), r([1, 1, 3, 2], d)],
  ],
  [
    "attention float mask",
    (q, k, v, m) => T.scaledDotProductAttention(q, k, v, { attnMask: m }),
    (d) => [r([1, 1, 2, 2], d), r([1, 1, 3, 2], d), r([1, 1, 3, 2], d), r([2, 3], d)],
  ],
  [
    "attention GQA",
    (q, k, v) => T.scaledDotProductAttention(q, k, v, { enableGqa: true }),
    (d) => [r([1, 4, 2, 2], d), r([1, 2, 2, 2], d), r([1, 2, 2, 2], d)],
  ],
  [
    "embedding",
    (w) =>
      T.embedding(
        T.tensor(
          [
            [0, 2],
            [2, 1],
          ],
          { device: w.device },
        ),
        w,
      ),
    (d) => [r([3, 2], d)],
  ],
  ["interpolate nearest", (x) => T.interpolate(x, { scaleFactor: 2 }), (d) => [r([1, 1, 2, 2], d)]],
  ["interpolate bilinear", (x) => T.interpolate(x, { size: [3, 5], mode: "bilinear" }), (d) => [r([1, 1, 2, 3], d)]],
  ["avgPool2d", (x) => T.avgPool2d(x, 2), (d) => [r([1, 1, 4, 4], d)]],
  ["reshape/permute/transpose", (x) => x.reshape([3, 2]).permute([1, 0]).transpose(0, 1), (d) => [r([2, 3], d)]],
  ["view/unsqueeze/squeeze/flatten", (x) => x.view([3, 2]).unsqueeze(0).squeeze(0).flatten(), (d) => [r([2, 3], d)]],
  ["expand/repeat", (x) => x.expand([2, 3]).repeat([2, 1]), (d) => [r([1, 3], d)]],
  ["cat/stack", (a, b) => T.stack([T.cat([a, b], 0), T.cat([b, a], 0)], 1), (d) => [r([2, 2], d), r([2, 2], d)]],
  ["split/chunk/narrow", (x) => T.cat([x.split(1, 1)[1]!, x.chunk(3, 1)[2]!, x.narrow(1, 0, 1)], 1), (d) => [r([2, 3], d)]],
  ["slice/select", (x) => x.slice(1, 0, null, 2).select(0, 1), (d) => [r([2, 4], d)]],
  ["index", (x) => x.index([T.tensor([1, 0, 1], { device: x.device })]), (d) => [r([2, 3], d)]],
  ["indexSelect", (x) => x.indexSelect(1, T.tensor([2, 2, 0], { device: x.device })), (d) => [r([2, 3], d)]],
  [
    "gather",
    (x) =>
      x.gather(
        1,
        T.tensor(
          [
            [0, 2],
            [1, 1],
          ],
          { device: x.device },
        ),
      ),
    (d) => [r([2, 3], d)],
  ],
  ["scatter", (x, s) => x.scatter(1, T.tensor([[2], [0]], { device: x.device }), s), (d) => [r([2, 3], d), r([2, 1], d)]],
  ["where", (a, b) => T.where(a.gt(0), a, b), (d) => [r([2, 3], d, 0.1), r([2, 3], d)]],
  ["maskedFill", (x) => x.maskedFill(T.tensor([true, false, true], { device: x.device }), 0), (d) => [r([2, 3], d)]],
  ["triu/tril", (x) => x.triu().add(x.tril(-1).mul(2)), (d) => [r([3, 3], d)]],
  ["topk", (x) => x.topk(2).values, (d) => [r([2, 4], d)]],
  ["sort", (x) => x.sort({ descending: true }).values, (d) => [r([2, 4], d)]],
  ["cumsum", (x) => x.cumsum(1), (d) => [r([2, 4], d)]],
  ["cumprod", (x) => x.cumprod(1), (d) => [r([2, 4], d)]],
  ["crossEntropy ignoreIndex", (x) => T.crossEntropy(x, T.tensor([1, -100, 0], { device: x.device })), (d) => [r([3, 4], d)]],
  [
    "crossEntropy (N, C, d)",
    (x) =>
      T.crossEntropy(
        x,
        T.tensor(
          [
            [1, 2],
            [0, 0],
          ],
          { device: x.device },
        ),
        { labelSmoothing: 0.1 },
      ),
    (d) => [r([2, 3, 2], d)],
  ],
  ["mseLoss", (a, b) => T.mseLoss(a, b), (d) => [r([2, 3], d), r([2, 3], d)]],
  [
    "dropout (fixed mask)",
    (x) => {
      T.manualSeed(5);
      return T.dropout(x, { p: 0.3 });
    },
    (d) => [r([8], d)],
  ],
];

for (const device of devices) {
  describe(`gradients on ${device} match finite differences`, () => {
    for (const [name, f, make] of cases) {
      it(name, () => {
        T.manualSeed(1234);
        T.scope(() => gradcheck(f, make(device)));
      });
    }

    it("accumulates gradients, honours noGrad and detach", () => {
      T.scope(() => {
        const x = T.tensor([1, 2, 3], { dtype: "float64", device, requiresGrad: true });
        expect(x.isLeaf).toBe(true);
        x.mul(x).sum().backward();
        x.mul(x).sum().backward();
        expect(x.grad!.tolist()).toEqual([4, 8, 12]);
        x.grad = null;
        expect(x.grad).toBeNull();
        const y = T.noGrad(() => x.mul(2));
        expect(y.requiresGrad).toBe(false);
        expect(T.isGradEnabled()).toBe(true);
        expect(x.mul(2).detach().requiresGrad).toBe(false);
        const z = x.mul(2);
        expect(z.isLeaf).toBe(false);
        z.backward(T.tensor([1, 0, 1], { dtype: "float64", device }));
        expect(x.grad!.tolist()).toEqual([2, 0, 2]);
        expect(() => T.tensor([1, 2], { dtype: "float64" }).sum().backward()).toThrow(/does not require grad/);
      });
    });
  });
}
