// Weight-only quantized layers (GGML Q4_0, Q4_1, Q8_0, Q4_K, Q6_K kept packed) against gguf-py, the llama.cpp
// project's Python package: its quantized bytes, its dequantization, x W^T in float64, and x8 W^T
// with x8 the activations through gguf-py's Q8_0 (what the few-row kernel multiplies).
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { dequantizeGgmlWith, quantizedLinearWith } from "../src/quantized.js";
import { fixtures, generateOnce, repoRoot } from "./helpers.js";

let ref: T.SafetensorsReader;
beforeAll(() => {
  const dir = join(fixtures, "quant");
  generateOnce(join(dir, "quant.safetensors"), dir, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "quant_reference.py"), dir], { stdio: "pipe" });
  });
  ref = T.loadSafetensors(join(dir, "quant.safetensors"));
});

const maxAbs = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item());
/** max |a - b| over max |b|. */
const relative = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item() / b.abs().max().item());

const FORMATS = ["Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"] as const;
const K = 256;

describe.each(FORMATS)("%s", (format) => {
  it("dequantizes as gguf-py does (the CPU loop exactly, the ATen path within float rounding)", () => {
    T.scope(() => {
      const packed = ref.get(`${format}.packed`);
      const expected = ref.get(`${format}.dequantized`);
      expect(maxAbs(dequantizeGgmlWith("loop", packed, format, K), expected)).toBe(0);
      expect(relative(dequantizeGgmlWith("aten", packed, format, K), expected)).toBeLessThanOrEqual(format.endsWith("_K") ? 0 : 1e-6);
      expect(T.dequantizeGgml(packed, format, K).shape).toEqual([40, K]);
    });
  });

  it("the few-row kernel equals x8 W^T + b to float32 rounding, and x W^T + b within the activations' 8-bit step, for 1 to 16 rows", () => {
    T.scope(() => {
      const packed = ref.get(`${format}.packed`);
      const bias = ref.get("bias");
      for (const rows of [1, 2, 3, 4, 5, 8, 16]) {
        const x = ref.get("x").slice(0, 0, rows);
        const expected = ref.get(`${format}.y`).slice(0, 0, rows);
        const expected8 = ref.get(`${format}.y8`).slice(0, 0, rows);
        const kernel = quantizedLinearWith("kernel", x, packed, format, bias);
        const aten = quantizedLinearWith("aten", x, packed, format, bias);
        expect(kernel.shape).toEqual([rows, 40]);
        // integer block dot products are exact; the float32 scaling and sum over 8 blocks round
        expect(relative(kernel, expected8), `${rows} rows`).toBeLessThanOrEqual(2e-6);
        expect(relative(T.quantizedLinear(x, packed, format, bias), expected8)).toBeLessThanOrEqual(2e-6);
        // the 8-bit activations (as llama.cpp): measured about 3e-3 of the output's scale
        expect(relative(kernel, expected), `${rows} rows, against the float activations`).toBeLessThanOrEqual(1e-2);
        // the reference path: dequantized weight, float activations, at::linear
        expect(relative(aten, expected), `${rows} rows (aten)`).toBeLessThanOrEqual(2e-6);
      }
    });
  });

  it("17 rows (a prompt) dequantize and go through linear; 3-d inputs keep their leading shape", () => {
    T.scope(() => {
      const packed = ref.get(`${format}.packed`);
      const y = T.quantizedLinear(ref.get("x"), packed, format, ref.get("bias"));
      expect(relative(y, ref.get(`${format}.y`))).toBeLessThanOrEqual(2e-6);
      const x3 = ref.get("x").slice(0, 0, 6).view([2, 3, K]);
      const y3 = T.quantizedLinear(x3, packed, format);
      expect(y3.shape).toEqual([2, 3, 40]);
      const layer = new T.QuantizedLinear(K, 40, format, packed.clone(), ref.get("bias").clone());
      expect(relative(layer.forward(ref.get("x")), ref.get(`${format}.y`))).toBeLessThanOrEqual(2e-6);
      expect(maxAbs(layer.dequantize(), ref.get(`${format}.dequantized`))).toBe(0);
      expect([...layer.stateDict().keys()]).toEqual([]); // the packed weight is a non-persistent buffer
      layer.dispose();
    });
  });

  it("QuantizedEmbedding looks up dequantized rows", () => {
    T.scope(() => {
      const emb = new T.QuantizedEmbedding(40, K, format, ref.get(`${format}.packed`).clone());
      const ids = T.tensor([[3, 0, 39]], { dtype: "int64" });
      const rows = emb.forward(ids);
      expect(rows.shape).toEqual([1, 3, K]);
      expect(maxAbs(rows.select(0, 0), ref.get(`${format}.dequantized`).indexSelect(0, ids.view([-1])))).toBe(0);
      emb.dispose();
    });
  });
});

describe.each(["Q4_0", "Q4_1", "Q8_0"] as const)("quantizeGgml %s", (format) => {
  it("writes gguf-py's bytes, and QuantizedLinear.fromLinear uses them", () => {
    T.scope(() => {
      const w = ref.get(`${format}.weight`);
      const packed = T.quantizeGgml(w, format);
      expect(packed.dtype).toBe("uint8");
      expect(packed.equal(ref.get(`${format}.packed`))).toBe(true);
      const layer = T.QuantizedLinear.fromLinear({ weight: w, bias: ref.get("bias") }, format);
      expect(layer.qweight.equal(packed)).toBe(true);
      expect(relative(layer.forward(ref.get("x").slice(0, 0, 1)), ref.get(`${format}.y8`).slice(0, 0, 1))).toBeLessThanOrEqual(2e-6);
      layer.dispose();
    });
  });
});

describe("quantized layers refuse what does not fit, with the numbers", () => {
  it("names the format, the widths and the expected bytes", () => {
    T.scope(() => {
      const packed = ref.get("Q4_0.packed");
      expect(() => T.quantizedLinear(T.zeros([1, 128]), packed, "Q4_0")).toThrow(/a row of 128 values takes 72 bytes, the packed weight's rows have 144/);
      expect(() => T.quantizedLinear(T.zeros([1, 100]), packed, "Q4_0")).toThrow(/input width 100 must be a positive multiple of 32/);
      expect(() => T.quantizedLinear(T.zeros([1, K]), packed.to("float32" as never), "Q4_0")).toThrow(/uint8/);
      expect(() => T.quantizedLinear(T.zeros([1, K]), packed, "Q5_0" as never)).toThrow(/unknown quantized format Q5_0/);
      expect(() => T.quantizedLinear(T.zeros([1, K]), packed, "Q4_0", T.zeros([3]))).toThrow(/bias must be 1-d of out_features 40/);
      expect(() => new T.QuantizedLinear(K, 41, "Q4_0", packed)).toThrow(/a Q4_0 weight of 41 x 256 is a uint8 tensor \[41, 144\], got uint8 \[40, 144\]/);
      expect(() => quantizedLinearWith("kernel", T.zeros([1, K], { dtype: "float64" }), packed, "Q4_0")).toThrow(/few-row kernel needs a float32 CPU input/);
      expect(() => T.quantizeGgml(T.zeros([4, 40]), "Q8_0")).toThrow(/in_features 40 must be a positive multiple of 32/);
      expect(() => T.quantizeGgml(T.zeros([4, 64]), "Q4_K" as never)).toThrow(/quantizing to type 12 is not supported/);
    });
  });

  it("other dtypes take the dequantizing path (float64 here)", () => {
    T.scope(() => {
      const y = T.quantizedLinear(ref.get("x").to("float64" as never), ref.get("Q8_0.packed"), "Q8_0", ref.get("bias").to("float64" as never));
      expect(y.dtype).toBe("float64");
      expect(relative(y.to("float32" as never), ref.get("Q8_0.y"))).toBeLessThanOrEqual(1e-6);
    });
  });

  it("keeps live tensors flat over many calls", () => {
    const packed = ref.get("Q4_1.packed");
    const x = ref.get("x").slice(0, 0, 1);
    const emb = new T.QuantizedEmbedding(40, K, "Q4_1", packed.clone());
    const ids = T.tensor([1, 2], { dtype: "int64" });
    const before = T.memoryStats().liveTensors;
    for (let i = 0; i < 200; i++)
      T.scope(() => {
        T.quantizedLinear(x, packed, "Q4_1");
        T.quantizedLinear(ref.get("x"), packed, "Q4_1");
        emb.forward(ids);
      });
    expect(T.memoryStats().liveTensors).toBe(before);
    emb.dispose();
    ids.dispose();
  });
});

describe("packTogether", () => {
  it("copies tensors into one region that outlives the originals and any one copy; the kernel reads a copy as the original", () => {
    const packed = ref.get("Q4_1.packed");
    const x = ref.get("x");
    const odd = T.arange(0, 7, 1, { dtype: "int32" }); // 28 bytes: the next copy starts 64-byte aligned
    const float = T.randn([3, 5]);
    const inputs = [packed.clone(), odd, float];
    const [a, b, c] = T.packTogether(inputs, { hugePages: true });
    expect(a!.shape).toEqual(packed.shape);
    expect(a!.dtype).toBe("uint8");
    expect(a!.equal(packed)).toBe(true);
    expect(b!.equal(odd)).toBe(true);
    expect(c!.equal(float)).toBe(true);
    const expected = T.quantizedLinear(x, packed, "Q4_1");
    for (const t of inputs) t.dispose();
    b!.dispose(); // the region stays while a copy is alive
    expect(T.quantizedLinear(x, a!, "Q4_1").equal(expected)).toBe(true);
    expect(c!.shape).toEqual([3, 5]);
    a!.dispose();
    c!.dispose();
    expect(T.packTogether([]).length).toBe(0);
    const [plain] = T.packTogether([packed], { hugePages: false });
    expect(plain!.equal(packed)).toBe(true);
    plain!.dispose();
    expected.dispose();
  });

  it("refuses a tensor off the CPU with its index", () => {
    expect(() => T.packTogether([T.zeros([2]), T.zeros([2], { device: "meta" as never })])).toThrow(/tensor 1 is on meta/);
  });
});
