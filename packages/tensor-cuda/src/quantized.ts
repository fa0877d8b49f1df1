// Weight-only quantized layers for inference, with llama.cpp's GGML block formats kept packed:
// a weight is a uint8 tensor (out_features, row bytes) holding each row's blocks byte for byte as
// in a GGUF file, multiplied by float activations with the dequantization fused into the product
// (native/kernels/quantized_linear.h).
import { native } from "./native.js";
import { KernelMode } from "./native-interface.js";
import { Module } from "./nn/module.js";
import { Tensor } from "./tensor.js";

/** GGML block formats with a kernel here: name -> [ggml type id, values per block, bytes per block]. */
export const GGML_FORMATS = {
  Q4_0: [2, 32, 18],
  Q4_1: [3, 32, 20],
  Q8_0: [8, 32, 34],
  Q4_K: [12, 256, 144],
  Q6_K: [14, 256, 210],
} as const;
export type GgmlFormat = keyof typeof GGML_FORMATS;

/** The format with this ggml type id, or null. */
export function ggmlFormatOf(type: number): GgmlFormat | null {
  for (const [name, [id]] of Object.entries(GGML_FORMATS)) if (id === type) return name as GgmlFormat;
  return null;
}

function typeId(format: GgmlFormat): number {
  const f = GGML_FORMATS[format];
  if (!f) throw new TypeError(`unknown quantized format ${String(format)} (${Object.keys(GGML_FORMATS).join(", ")} are supported)`);
  return f[0];
}

/** Bytes of one packed row of `inFeatures` values. */
export function packedRowBytes(format: GgmlFormat, inFeatures: number): number {
  const [, values, bytes] = GGML_FORMATS[format];
  if (!Number.isInteger(inFeatures) || inFeatures <= 0 || inFeatures % values !== 0)
    throw new RangeError(`${format}: in_features ${inFeatures} must be a positive multiple of ${values}`);
  return (inFeatures / values) * bytes;
}

/** Float rows (out, in) -> packed uint8 (out, row bytes) in Q8_0, Q4_0 or Q4_1, byte for byte as ggml / gguf-py quantize (on the CPU). */
export function quantizeGgml(weight: Tensor, format: "Q8_0" | "Q4_0" | "Q4_1"): Tensor {
  return new Tensor(native.quantizeGgml(weight._h, typeId(format)));
}

/**
 * Copies of CPU tensors laid end to end in one region they own together (freed with the last of
 * them): for weights read once per decode step, in the order they are read. With `hugePages`
 * (default) the region is 2 MiB aligned and advised for transparent huge pages, so streaming it
 * takes a TLB miss per 2 MiB instead of per 4 KiB (a no-op where the kernel has THP off). The
 * inputs are left as they are; dispose them if the copies replace them.
 */
export function packTogether(tensors: readonly Tensor[], options: { hugePages?: boolean } = {}): Tensor[] {
  return native
    .packTogether(
      tensors.map((t) => t._h),
      options.hugePages ?? true,
    )
    .map((h) => new Tensor(h));
}

/** Packed rows (..., row bytes) -> float32 (..., inFeatures). */
export function dequantizeGgml(packed: Tensor, format: GgmlFormat, inFeatures: number): Tensor {
  return new Tensor(native.dequantizeGgml(packed._h, typeId(format), inFeatures, KernelMode.auto));
}

/** @internal dequantizeGgml through one path: "aten" (ATen operators; the scalar loop for K-quants) or "loop" (the CPU loop, AVX2 where available); for parity tests. */
export function dequantizeGgmlWith(path: "aten" | "loop", packed: Tensor, format: GgmlFormat, inFeatures: number): Tensor {
  return new Tensor(native.dequantizeGgml(packed._h, typeId(format), inFeatures, path === "aten" ? KernelMode.aten : KernelMode.auto));
}

/**
 * y = x W^T + b with W kept packed. 1-16 float32 rows on an AVX2 CPU without autograd (decoding)
 * take the fused kernel; more rows (prefill), other dtypes and CUDA dequantize W and use linear.
 */
export function quantizedLinear(input: Tensor, packed: Tensor, format: GgmlFormat, bias?: Tensor | null): Tensor {
  return new Tensor(native.quantizedLinear(input._h, packed._h, typeId(format), bias ? bias._h : null, KernelMode.auto));
}

/** @internal quantizedLinear through one path: "aten" (ATen dequantization + at::linear, the reference) or "kernel"; for parity tests and benchmarks. */
export function quantizedLinearWith(path: "aten" | "kernel", input: Tensor, packed: Tensor, format: GgmlFormat, bias?: Tensor | null): Tensor {
  return new Tensor(native.quantizedLinear(input._h, packed._h, typeId(format), bias ? bias._h : null, path === "aten" ? KernelMode.aten : KernelMode.custom));
}

function checkPacked(what: string, packed: Tensor, format: GgmlFormat, outFeatures: number, inFeatures: number): void {
  const rowBytes = packedRowBytes(format, inFeatures);
  if (packed.dtype !== "uint8" || packed.dim() !== 2 || packed.size(0) !== outFeatures || packed.size(1) !== rowBytes)
    throw new RangeError(
      `${what}: a ${format} weight of ${outFeatures} x ${inFeatures} is a uint8 tensor [${outFeatures}, ${rowBytes}], got ${packed.dtype} [${packed.shape.join(", ")}]`,
    );
}

/**
 * A Linear whose weight stays quantized (inference only: no gradient reaches the weight). The packed
 * weight is a non-persistent buffer `qweight`: it moves with `.to()` and is freed by `dispose()`,
 * but is not part of `stateDict()`.
 */
export class QuantizedLinear extends Module {
  /** A QuantizedLinear with `linear`'s weight (and bias) quantized to `format`; `linear` is left as it is. */
  static fromLinear(linear: { weight: Tensor; bias: Tensor | null }, format: "Q8_0" | "Q4_0" | "Q4_1"): QuantizedLinear {
    const [out, inFeatures] = linear.weight.shape as [number, number];
    const packed = quantizeGgml(linear.weight, format);
    const device = linear.weight.device;
    const onDevice = device === "cpu" ? packed : packed.to(device);
    if (onDevice !== packed) packed.dispose();
    const bias = linear.bias ? linear.bias.detach().to("float32" as never) : null;
    return new QuantizedLinear(inFeatures, out, format, onDevice, bias);
  }

  declare readonly qweight: Tensor;
  /** The bias (a non-persistent buffer too), or null. */
  declare readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly format: GgmlFormat,
    packed: Tensor,
    bias: Tensor | null = null,
  ) {
    super();
    checkPacked("QuantizedLinear", packed, format, outFeatures, inFeatures);
    if (bias && (bias.dim() !== 1 || bias.size(0) !== outFeatures))
      throw new RangeError(`QuantizedLinear: the bias must be [${outFeatures}], got [${bias.shape.join(", ")}]`);
    this.registerBuffer("qweight", packed, { persistent: false });
    if (bias) this.registerBuffer("bias", bias, { persistent: false });
    else Object.defineProperty(this, "bias", { value: null, enumerable: false });
  }
  forward(x: Tensor): Tensor {
    return quantizedLinear(x, this.qweight, this.format, this.bias);
  }
  /** The weight as float32 (out, in). */
  dequantize(): Tensor {
    return dequantizeGgml(this.qweight, this.format, this.inFeatures);
  }
}

/** An Embedding whose table stays quantized: the looked-up rows are dequantized (float32). */
export class QuantizedEmbedding extends Module {
  declare readonly qweight: Tensor;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    readonly format: GgmlFormat,
    packed: Tensor,
  ) {
    super();
    checkPacked("QuantizedEmbedding", packed, format, numEmbeddings, embeddingDim);
    this.registerBuffer("qweight", packed, { persistent: false });
  }
  /** ids (...) int64 -> (..., dim) float32. */
  forward(ids: Tensor): Tensor {
    const rows = this.qweight.indexSelect(0, ids.reshape([-1]));
    try {
      const flat = dequantizeGgml(rows, this.format, this.embeddingDim);
      try {
        return flat.view([...ids.shape, this.embeddingDim]);
      } finally {
        flat.dispose();
      }
    } finally {
      rows.dispose();
    }
  }
}
