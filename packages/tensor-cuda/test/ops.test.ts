// Values of each op family against results worked out by hand, broadcasting and dtype promotion.
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { devices, expectClose, flat } from "./helpers.js";

for (const device of devices) {
  describe(`ops on ${device}`, () => {
    const t = (data: Parameters<typeof T.tensor>[0], dtype?: T.DType) => T.tensor(data, { device, dtype });

    it("creates tensors and reads them back", () => {
      const a = t(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        "float32",
      );
      expect(a.shape).toEqual([2, 3]);
      expect(a.dtype).toBe("float32");
      expect(a.device.startsWith(device)).toBe(true);
      expect(a.tolist()).toEqual([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      expect(T.tensor([1, 2]).dtype).toBe("int64");
      expect(T.tensor([1.5, 2]).dtype).toBe("float32");
      expect(T.tensor([true, false]).dtype).toBe("bool");
      expect(T.tensor(new Float64Array([1, 2])).dtype).toBe("float64");
      expect(t(7.25).item()).toBe(7.25);
      expect(T.zeros([2, 2], { device }).tolist()).toEqual([
        [0, 0],
        [0, 0],
      ]);
      expect(T.ones([3], { device, dtype: "int32" }).tolist()).toEqual([1, 1, 1]);
      expect(T.full([2], 2.5, { device }).tolist()).toEqual([2.5, 2.5]);
      expect(T.arange(4, { device }).tolist()).toEqual([0, 1, 2, 3]);
      expect(T.arange(1, 2, 0.25, { device }).tolist()).toEqual([1, 1.25, 1.5, 1.75]);
      expect(T.linspace(0, 1, 5, { device }).tolist()).toEqual([0, 0.25, 0.5, 0.75, 1]);
      expect(T.eye(2, { device }).tolist()).toEqual([
        [1, 0],
        [0, 1],
      ]);
      expect(T.zerosLike(a).shape).toEqual([2, 3]);
      expect(T.fullLike(a, 3).tolist()).toEqual([
        [3, 3, 3],
        [3, 3, 3],
      ]);
      expect(T.tensor(new BigInt64Array([5n, -2n])).toArray()).toEqual(new BigInt64Array([5n, -2n]));
    });

    it("converts between dtypes, half precisions included", () => {
      const a = t([1.5, -2.25, 1000]);
      expect(a.to("float16").dtype).toBe("float16");
      expect(flat(a.to("float16"))).toEqual([1.5, -2.25, 1000]);
      expect(flat(a.to("bfloat16"))).toEqual([1.5, -2.25, 1000]);
      expect(flat(t([1.7, -1.7]).to("int64"))).toEqual([1, -1]);
      expect(a.to("float32")).toBe(a); // no-op conversions return the same object, as PyTorch
      const raw = T.tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: "float16" }); // 1.0, -2.0
      expect(flat(raw)).toEqual([1, -2]);
    });

    it("broadcasts arithmetic", () => {
      const a = t([[1], [2]], "float32"); // (2, 1)
      const b = t([10, 20, 30], "float32"); // (3)
      expect(a.add(b).tolist()).toEqual([
        [11, 21, 31],
        [12, 22, 32],
      ]);
      expect(b.sub(a).tolist()).toEqual([
        [9, 19, 29],
        [8, 18, 28],
      ]);
      expect(a.mul(b).tolist()).toEqual([
        [10, 20, 30],
        [20, 40, 60],
      ]);
      expect(b.div(a).tolist()).toEqual([
        [10, 20, 30],
        [5, 10, 15],
      ]);
      expect(a.add(b, { alpha: 2 }).tolist()).toEqual([
        [21, 41, 61],
        [22, 42, 62],
      ]);
      expect(a.add(3, { alpha: 2 }).tolist()).toEqual([[7], [8]]);
      expect(a.sub(3, { alpha: 2 }).tolist()).toEqual([[-5], [-4]]);
      expect(a.mul(3).tolist()).toEqual([[3], [6]]);
      expect(t([2, 3], "float32").pow(2).tolist()).toEqual([4, 9]);
      expect(
        t([2, 3], "float32")
          .pow(t([3, 2], "float32"))
          .tolist(),
      ).toEqual([8, 9]);
      expect(t([-7, 7]).div(2, { roundingMode: "floor" }).tolist()).toEqual([-4, 3]);
      expect(t([-7, 7]).div(2, { roundingMode: "trunc" }).tolist()).toEqual([-3, 3]);
      expect(() => t([1, 2]).add(t([1, 2, 3]))).toThrow(/size of tensor a \(2\) must match the size of tensor b \(3\)/);
    });

    it("promotes dtypes as PyTorch does", () => {
      const i64 = t([1, 2]);
      const i32 = t([1, 2], "int32");
      const f32 = t([1, 2], "float32");
      const f16 = t([1, 2], "float16");
      const bf16 = t([1, 2], "bfloat16");
      const u8 = t([1, 2], "uint8");
      const b = t([true, false]);
      expect(i64.add(f32).dtype).toBe("float32");
      expect(i32.add(i64).dtype).toBe("int64");
      expect(f16.add(f32).dtype).toBe("float32");
      expect(f16.add(bf16).dtype).toBe("float32");
      expect(bf16.add(i64).dtype).toBe("bfloat16");
      expect(u8.add(b).dtype).toBe("uint8");
      expect(b.add(b).dtype).toBe("bool");
      expect(i64.div(2).dtype).toBe("float32"); // true division
      expect(i64.mul(2).dtype).toBe("int64"); // integral JS numbers are ints
      expect(i64.mul(2.5).dtype).toBe("float32");
      expect(f16.mul(2.5).dtype).toBe("float16"); // a scalar does not promote a float tensor
      expect(f32.add(t(1, "float64")).dtype).toBe("float32"); // 0-d tensors do not promote either
      expect(f32.to("float64").add(f32).dtype).toBe("float64");
    });

    it("computes elementwise functions", () => {
      const x = t([0, 1, 4], "float64");
      expectClose(x.exp(), [1, Math.E, Math.exp(4)], 1e-9);
      expectClose(x.add(1).log(), [0, Math.log(2), Math.log(5)], 1e-12);
      expectClose(x.sqrt(), [0, 1, 2]);
      expectClose(x.add(1).rsqrt(), [1, 1 / Math.sqrt(2), 1 / Math.sqrt(5)], 1e-12);
      expectClose(x.tanh(), [0, Math.tanh(1), Math.tanh(4)], 1e-12);
      expectClose(x.sigmoid(), [0.5, 1 / (1 + Math.exp(-1)), 1 / (1 + Math.exp(-4))], 1e-12);
      expectClose(x.sin(), [0, Math.sin(1), Math.sin(4)], 1e-12);
      expectClose(x.cos(), [1, Math.cos(1), Math.cos(4)], 1e-12);
      expectClose(t([-1.5, 2], "float64").abs(), [1.5, 2]);
      expectClose(t([-1.5, 2], "float64").neg(), [1.5, -2]);
      expectClose(t([-3, 0.5, 3], "float64").clamp(-1, 1), [-1, 0.5, 1]);
      expectClose(t([-3, 0.5, 3], "float64").clamp(null, 1), [-3, 0.5, 1]);
      expectClose(t([1, 5], "float64").maximum(t([3, 2], "float64")), [3, 5]);
      expectClose(t([1, 5], "float64").minimum(t([3, 2], "float64")), [1, 2]);
    });

    it("compares and selects", () => {
      const a = t([1, 2, 3]);
      expect(a.eq(2).tolist()).toEqual([false, true, false]);
      expect(a.gt(t([0, 2, 4])).tolist()).toEqual([true, false, false]);
      expect(a.le(2).tolist()).toEqual([true, true, false]);
      expect(T.where(a.gt(1), a, t([0, 0, 0])).tolist()).toEqual([0, 2, 3]);
      expect(T.where(a.gt(1), a, -1).tolist()).toEqual([-1, 2, 3]);
      expect(T.where(a.gt(1), 1.5, 0).tolist()).toEqual([0, 1.5, 1.5]);
      expect(a.maskedFill(a.eq(2), 9).tolist()).toEqual([1, 9, 3]);
      expect(
        t([
          [1, 2],
          [3, 4],
        ])
          .triu()
          .tolist(),
      ).toEqual([
        [1, 2],
        [0, 4],
      ]);
      expect(
        t([
          [1, 2],
          [3, 4],
        ])
          .tril(-1)
          .tolist(),
      ).toEqual([
        [0, 0],
        [3, 0],
      ]);
    });

    it("reduces", () => {
      const a = t(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        "float32",
      );
      expect(a.sum().item()).toBe(21);
      expect(a.sum(0).tolist()).toEqual([5, 7, 9]);
      expect(a.sum(1, { keepdim: true }).tolist()).toEqual([[6], [15]]);
      expect(a.sum([0, 1]).item()).toBe(21);
      expect(a.mean().item()).toBe(3.5);
      expect(a.mean(1).tolist()).toEqual([2, 5]);
      expect(a.max().item()).toBe(6);
      expect(a.min().item()).toBe(1);
      const m = a.max(1);
      expect(m.values.tolist()).toEqual([3, 6]);
      expect(m.indices.tolist()).toEqual([2, 2]);
      expect(a.min(0).values.tolist()).toEqual([1, 2, 3]);
      expect(a.argmax().item()).toBe(5);
      expect(a.argmax(0).tolist()).toEqual([1, 1, 1]);
      expect(a.amax(1).tolist()).toEqual([3, 6]);
      expect(a.var().item()).toBeCloseTo(3.5, 6); // unbiased
      expect(a.var(1, { correction: 0 }).tolist()).toEqual([2 / 3, 2 / 3].map(Math.fround));
      expect(t([3, 4], "float32").norm().item()).toBe(5);
      expect(t([1, 2, 3]).cumsum(0).tolist()).toEqual([1, 3, 6]);
      expect(t([1, 2, 3]).cumprod(0).tolist()).toEqual([1, 2, 6]);
    });

    it("multiplies matrices", () => {
      const a = t(
        [
          [1, 2],
          [3, 4],
        ],
        "float32",
      );
      const b = t(
        [
          [5, 6],
          [7, 8],
        ],
        "float32",
      );
      expect(a.matmul(b).tolist()).toEqual([
        [19, 22],
        [43, 50],
      ]);
      expect(a.mm(b).tolist()).toEqual([
        [19, 22],
        [43, 50],
      ]);
      expect(
        T.stack([a, b])
          .bmm(T.stack([b, a]))
          .tolist(),
      ).toEqual([
        [
          [19, 22],
          [43, 50],
        ],
        [
          [23, 34],
          [31, 46],
        ],
      ]);
      expect(T.linear(a, b, t([1, 1], "float32")).tolist()).toEqual([
        [18, 24],
        [40, 54],
      ]);
      expect(a.mT.tolist()).toEqual([
        [1, 3],
        [2, 4],
      ]);
      expect(() => a.matmul(T.ones([3, 3], { device }))).toThrow(/cannot be multiplied/);
    });

    it("reshapes, slices and indexes", () => {
      const a = T.arange(6, { device }).reshape([2, 3]);
      expect(a.view([3, 2]).tolist()).toEqual([
        [0, 1],
        [2, 3],
        [4, 5],
      ]);
      expect(a.permute([1, 0]).tolist()).toEqual([
        [0, 3],
        [1, 4],
        [2, 5],
      ]);
      expect(a.transpose(0, 1).contiguous().view([6]).tolist()).toEqual([0, 3, 1, 4, 2, 5]);
      expect(a.unsqueeze(0).shape).toEqual([1, 2, 3]);
      expect(a.unsqueeze(-1).squeeze(-1).shape).toEqual([2, 3]);
      expect(a.unsqueeze(1).squeeze().shape).toEqual([2, 3]);
      expect(a.flatten().tolist()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(t([1, 2]).expand([2, 2]).tolist()).toEqual([
        [1, 2],
        [1, 2],
      ]);
      expect(t([1, 2]).repeat([2]).tolist()).toEqual([1, 2, 1, 2]);
      expect(T.cat([a, a], 1).shape).toEqual([2, 6]);
      expect(T.stack([a, a], 0).shape).toEqual([2, 2, 3]);
      expect(a.split(2, 1).map((x) => x.shape)).toEqual([
        [2, 2],
        [2, 1],
      ]);
      expect(a.split([1, 2], 1).map((x) => x.shape)).toEqual([
        [2, 1],
        [2, 2],
      ]);
      expect(a.chunk(3, 1).length).toBe(3);
      expect(a.narrow(1, 1, 2).tolist()).toEqual([
        [1, 2],
        [4, 5],
      ]);
      expect(a.slice(1, 0, null, 2).tolist()).toEqual([
        [0, 2],
        [3, 5],
      ]);
      expect(a.slice(1, -1).tolist()).toEqual([[2], [5]]);
      expect(a.select(0, 1).tolist()).toEqual([3, 4, 5]);
      expect(a.index([t([1, 0]), t([2, 0])]).tolist()).toEqual([5, 0]);
      expect(a.index([null, t([2])]).tolist()).toEqual([[2], [5]]);
      expect(a.indexSelect(1, t([2, 0])).tolist()).toEqual([
        [2, 0],
        [5, 3],
      ]);
      expect(
        a
          .gather(
            1,
            t([
              [0, 0],
              [2, 1],
            ]),
          )
          .tolist(),
      ).toEqual([
        [0, 0],
        [5, 4],
      ]);
      expect(
        T.zeros([2, 3], { device, dtype: "int64" })
          .scatter(1, t([[2], [0]]), t([[7], [8]]))
          .tolist(),
      ).toEqual([
        [0, 0, 7],
        [8, 0, 0],
      ]);
      expect(
        T.zeros([3], { device })
          .scatter(0, t([1]), 5)
          .tolist(),
      ).toEqual([0, 5, 0]);
      expect(
        T.zeros([3], { device })
          .indexPut([t([0, 0])], t([1, 2], "float32"), { accumulate: true })
          .tolist(),
      ).toEqual([3, 0, 0]);
      expect(() => a.view([4, 2])).toThrow(/shape '\[4, 2\]' is invalid for input of size 6/);
    });

    it("sorts, ranks and samples", () => {
      const a = t([3, 1, 2], "float32");
      const top = a.topk(2);
      expect(top.values.tolist()).toEqual([3, 2]);
      expect(top.indices.tolist()).toEqual([0, 2]);
      expect(a.topk(1, { largest: false }).values.tolist()).toEqual([1]);
      expect(a.sort().values.tolist()).toEqual([1, 2, 3]);
      expect(a.sort({ descending: true }).indices.tolist()).toEqual([0, 2, 1]);
      const probs = t(
        [
          [0, 0, 1],
          [1, 0, 0],
        ],
        "float32",
      );
      expect(probs.multinomial(1).tolist()).toEqual([[2], [0]]);
      const g1 = new T.Generator({ seed: 42, device });
      const g2 = new T.Generator({ seed: 42, device });
      const w = T.ones([4, 10], { device });
      expect(w.multinomial(3, { generator: g1 }).tolist()).toEqual(w.multinomial(3, { generator: g2 }).tolist());
    });

    it("is reproducible for a seed", () => {
      T.manualSeed(123);
      const a = T.randn([5], { device }).tolist();
      T.manualSeed(123);
      expect(T.randn([5], { device }).tolist()).toEqual(a);
      const g = new T.Generator({ seed: 7, device });
      const b = T.rand([4], { device, generator: g }).tolist();
      g.manualSeed(7);
      expect(T.rand([4], { device, generator: g }).tolist()).toEqual(b);
      const r = T.randint(0, 5, [100], { device });
      expect(r.dtype).toBe("int64");
      expect(r.min().item()).toBeGreaterThanOrEqual(0);
      expect(r.max().item()).toBeLessThan(5);
    });

    it("runs the neural-network functions", () => {
      expectClose(t([0, Math.log(2)], "float64").softmax(0), [1 / 3, 2 / 3], 1e-12);
      expectClose(t([0, Math.log(2)], "float64").logSoftmax(0), [Math.log(1 / 3), Math.log(2 / 3)], 1e-12);
      expectClose(T.gelu(t([1], "float64")), [0.8413447460685429], 1e-12);
      expectClose(T.gelu(t([1], "float64"), { approximate: "tanh" }), [0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (1 + 0.044715)))], 1e-12);
      expectClose(T.silu(t([1], "float64")), [1 / (1 + Math.exp(-1))], 1e-12);
      expectClose(T.relu(t([-1, 2], "float64")), [0, 2]);
      const s6 = Math.sqrt(2 / 3);
      expectClose(T.layerNorm(t([[1, 2, 3]], "float64"), [3], null, null, 0), [-1 / s6, 0, 1 / s6], 1e-9);
      expectClose(T.rmsNorm(t([[3, 4]], "float64"), [2], t([1, 2], "float64"), 0), [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], 1e-12);
      const gn = T.groupNorm(t([[[1], [3], [5], [9]]], "float64"), 2, null, null, 0); // (1, 4, 1), groups of 2 channels
      expectClose(gn, [-1, 1, -1, 1], 1e-9);
      const conv = T.conv2d(T.ones([1, 1, 3, 3], { device }), T.ones([1, 1, 2, 2], { device }), null, { padding: 1 });
      expect(conv.tolist()).toEqual([
        [
          [
            [1, 2, 2, 1],
            [2, 4, 4, 2],
            [2, 4, 4, 2],
            [1, 2, 2, 1],
          ],
        ],
      ]);
      const strided = T.conv2d(T.arange(16, { device, dtype: "float32" }).reshape([1, 1, 4, 4]), T.ones([1, 1, 2, 2], { device }), null, { stride: 2 });
      expect(strided.tolist()).toEqual([
        [
          [
            [10, 18],
            [42, 50],
          ],
        ],
      ]);
      const grouped = T.conv2d(T.ones([1, 2, 1, 1], { device }), t([[[[2]]], [[[3]]]], "float32"), null, { groups: 2 });
      expect(grouped.tolist()).toEqual([[[[2]], [[3]]]]);
      const pooled = T.avgPool2d(T.arange(16, { device, dtype: "float32" }).reshape([1, 1, 4, 4]), 2);
      expect(pooled.tolist()).toEqual([
        [
          [
            [2.5, 4.5],
            [10.5, 12.5],
          ],
        ],
      ]);
      const up = T.interpolate(
        t(
          [
            [
              [
                [1, 2],
                [3, 4],
              ],
            ],
          ],
          "float32",
        ),
        { scaleFactor: 2 },
      );
      expect(up.tolist()).toEqual([
        [
          [
            [1, 1, 2, 2],
            [1, 1, 2, 2],
            [3, 3, 4, 4],
            [3, 3, 4, 4],
          ],
        ],
      ]);
      const bl = T.interpolate(t([[[[0, 1]]]], "float32"), { size: [1, 4], mode: "bilinear" });
      expect(bl.tolist()).toEqual([[[[0, 0.25, 0.75, 1]]]]);
      const blAligned = T.interpolate(t([[[[0, 3]]]], "float32"), { size: [1, 4], mode: "bilinear", alignCorners: true });
      expect(blAligned.tolist()).toEqual([[[[0, 1, 2, 3]]]]);
      const emb = T.embedding(
        t([2, 0]),
        t(
          [
            [1, 1],
            [2, 2],
            [3, 3],
          ],
          "float32",
        ),
      );
      expect(emb.tolist()).toEqual([
        [3, 3],
        [1, 1],
      ]);
      expect(T.mseLoss(t([1, 2], "float32"), t([3, 2], "float32")).item()).toBe(2);
      expect(T.mseLoss(t([1, 2], "float32"), t([3, 2], "float32"), { reduction: "sum" }).item()).toBe(4);
      expect(T.dropout(T.ones([4], { device }), { p: 0.5, training: false }).tolist()).toEqual([1, 1, 1, 1]);
      const d = T.dropout(T.ones([1000], { device }), { p: 0.5 }).tolist() as number[];
      expect(new Set(d)).toEqual(new Set([0, 2]));
    });

    it("computes cross entropy with ignored targets", () => {
      const logits = t(
        [
          [1, 2, 3],
          [1, 1, 1],
          [0, 5, 0],
        ],
        "float64",
      );
      const target = t([2, -100, 1]);
      const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
      const expected = (lse([1, 2, 3]) - 3 + lse([0, 5, 0]) - 5) / 2;
      expect(T.crossEntropy(logits, target).item()).toBeCloseTo(expected, 12);
      expect(T.crossEntropy(logits, t([2, 7, 1]), { ignoreIndex: 7, reduction: "sum" }).item()).toBeCloseTo(expected * 2, 12);
      const smooth = T.crossEntropy(t([[0, 0]], "float64"), t([0]), { labelSmoothing: 0.2 }).item();
      expect(smooth).toBeCloseTo(Math.log(2), 12);
    });

    it("runs scaled dot-product attention: plain, masked, causal and grouped-query", () => {
      // With identical keys every query attends uniformly: the output is the mean of the values.
      const q = T.randn([1, 2, 3, 4], { device, dtype: "float64" });
      const k = T.ones([1, 2, 3, 4], { device, dtype: "float64" });
      const v = T.arange(24, { device, dtype: "float64" }).reshape([1, 2, 3, 4]);
      const out = T.scaledDotProductAttention(q, k, v);
      expectClose(out, flat(v.mean(2, { keepdim: true }).expand([1, 2, 3, 4]).contiguous()), 1e-12);
      // Causal: row i averages values 0..i.
      const causal = T.scaledDotProductAttention(q, k, v, { isCausal: true });
      const cum = v.cumsum(2).div(T.arange(1, 4, { device, dtype: "float64" }).reshape([1, 1, 3, 1]));
      expectClose(causal, flat(cum), 1e-12);
      // A boolean mask (true = attend) equal to the causal one gives the same result.
      const mask = T.ones([3, 3], { device, dtype: "bool" }).tril();
      expectClose(T.scaledDotProductAttention(q, k, v, { attnMask: mask }), flat(causal), 1e-12);
      // GQA: 4 query heads share 2 KV heads, equal to repeating each KV head twice.
      const q4 = T.randn([1, 4, 3, 4], { device, dtype: "float64" });
      const kr = T.randn([1, 2, 3, 4], { device, dtype: "float64" });
      const gqa = T.scaledDotProductAttention(q4, kr, v, { enableGqa: true });
      const rep = (x: T.Tensor) => x.unsqueeze(2).expand([1, 2, 2, 3, 4]).reshape([1, 4, 3, 4]);
      expectClose(gqa, flat(T.scaledDotProductAttention(q4, rep(kr), rep(v))), 1e-12);
    });
  });
}
