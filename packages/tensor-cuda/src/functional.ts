// Neural-network functions (`torch.nn.functional`), each one ATen operator so that autograd and
// the CPU/CUDA kernels (fused attention included) are libtorch's.
import { native, op } from "./native.js";
import { KernelMode } from "./native-interface.js";
import { type Generator, Tensor } from "./tensor.js";

const O = {
  conv2d: op("conv2d"),
  conv2dPad: op("conv2d.padding"),
  layerNorm: op("layer_norm"),
  groupNorm: op("group_norm"),
  rmsNorm: op("rms_norm"),
  gelu: op("gelu"),
  silu: op("silu"),
  sdpa: op("scaled_dot_product_attention"),
  embedding: op("embedding"),
  nearest: op("upsample_nearest2d.vec"),
  bilinear: op("upsample_bilinear2d.vec"),
  avgPool2d: op("avg_pool2d"),
  crossEntropy: op("cross_entropy_loss"),
  mseLoss: op("mse_loss"),
  dropout: op("dropout"),
  pad: op("pad"),
};

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

function reduction(r: Reduction | undefined): number {
  const code = REDUCTION[r ?? "mean"];
  if (code === undefined) throw new TypeError(`reduction must be "none", "mean" or "sum", got ${String(r)}`);
  return code;
}

/**
 * y = x W^T + b; x (*, in), weight (out, in), bias (out). On the CPU in float32, up to 16 rows
 * without autograd (token-by-token decoding) take the addon's few-row kernel: BLAS runs such
 * products on one thread well below the memory bandwidth, so the kernel reads the weight once,
 * in tiles, and splits its output rows across the intra-op threads.
 */
export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(native.linear(input._h, weight._h, bias ? bias._h : null, KernelMode.auto));
}

/** @internal `linear` through one path: "aten" (at::linear) or "few-row" (the addon's kernel); for parity tests and benchmarks. */
export function linearWith(path: "aten" | "few-row", input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(native.linear(input._h, weight._h, bias ? bias._h : null, path === "aten" ? KernelMode.aten : KernelMode.custom));
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number] | "same" | "valid";
  dilation?: number | [number, number];
  groups?: number;
}
/** 2-D convolution; input (B, C_in, H, W), weight (C_out, C_in / groups, kH, kW). */
export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  const { stride = 1, padding = 0, dilation = 1, groups = 1 } = options;
  if (typeof padding === "string") return new Tensor(native.call(O.conv2dPad, input._h, weight._h, bias ? bias._h : null, stride, padding, dilation, groups));
  return new Tensor(native.call(O.conv2d, input._h, weight._h, bias ? bias._h : null, stride, padding, dilation, groups));
}

/** Normalises over the trailing `normalizedShape` dimensions. */
export function layerNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return new Tensor(native.call(O.layerNorm, input._h, normalizedShape, weight ? weight._h : null, bias ? bias._h : null, eps, true));
}

/** Normalises (B, C, *) over groups of C / numGroups channels. */
export function groupNorm(input: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return new Tensor(native.call(O.groupNorm, input._h, numGroups, weight ? weight._h : null, bias ? bias._h : null, eps, true));
}

/**
 * x / sqrt(mean(x^2) + eps) * weight over the trailing dimensions; eps defaults to the dtype's
 * epsilon. Over the last dimension, float32 CPU inference runs one fused pass per row (libtorch's
 * rms_norm is six operators); everything else is libtorch's rms_norm.
 */
export function rmsNorm(input: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, eps?: number | null): Tensor {
  if (normalizedShape.length === 1 && input.ndim >= 1 && normalizedShape[0] === input.size(-1))
    return new Tensor(native.rmsNorm(input._h, weight ? weight._h : null, eps ?? null, KernelMode.auto));
  return new Tensor(native.call(O.rmsNorm, input._h, normalizedShape, weight ? weight._h : null, eps ?? null));
}

/** @internal `rmsNorm` over the last dimension through one path: "aten" or "fused"; for parity tests. */
export function rmsNormWith(path: "aten" | "fused", input: Tensor, weight: Tensor | null, eps?: number | null): Tensor {
  return new Tensor(native.rmsNorm(input._h, weight ? weight._h : null, eps ?? null, path === "aten" ? KernelMode.aten : KernelMode.custom));
}

/** softmax along `dim`. */
export function softmax(input: Tensor, dim: number): Tensor {
  return input.softmax(dim);
}
export function logSoftmax(input: Tensor, dim: number): Tensor {
  return input.logSoftmax(dim);
}

/** GELU, exact (erf) by default or the tanh approximation. */
export function gelu(input: Tensor, options: { approximate?: "none" | "tanh" } = {}): Tensor {
  return new Tensor(native.call(O.gelu, input._h, options.approximate ?? "none"));
}
export function silu(input: Tensor): Tensor {
  return new Tensor(native.call(O.silu, input._h));
}
export function relu(input: Tensor): Tensor {
  return input.relu();
}

export interface AttentionOptions {
  /** Boolean (true = attend) or additive float mask, broadcastable to (B, H, Tq, Tk). */
  attnMask?: Tensor | null;
  dropoutP?: number;
  isCausal?: boolean;
  /** Defaults to 1 / sqrt(head dim). */
  scale?: number | null;
  /** Grouped-query attention: key/value have fewer heads, each shared by Hq / Hkv query heads. */
  enableGqa?: boolean;
}
/** softmax(q k^T * scale + mask) v with libtorch's fused kernels; q (B, H, Tq, E), k/v (B, Hkv, Tk, E/Ev). */
export function scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, options: AttentionOptions = {}): Tensor {
  return new Tensor(
    native.call(
      O.sdpa,
      query._h,
      key._h,
      value._h,
      options.attnMask ? options.attnMask._h : null,
      options.dropoutP ?? 0,
      options.isCausal ?? false,
      options.scale ?? null,
      options.enableGqa ?? false,
    ),
  );
}

/** Looks up rows of `weight` (num, dim) for integer `input`. */
export function embedding(input: Tensor, weight: Tensor, options: { paddingIdx?: number } = {}): Tensor {
  return new Tensor(native.call(O.embedding, weight._h, input._h, options.paddingIdx ?? -1, false, false));
}

export interface InterpolateOptions {
  size?: number | [number, number];
  scaleFactor?: number | [number, number];
  mode?: "nearest" | "bilinear";
  alignCorners?: boolean;
}
/** Resizes (B, C, H, W) by `size` or `scaleFactor` (exactly one), as `F.interpolate`. */
export function interpolate(input: Tensor, options: InterpolateOptions): Tensor {
  const { size, scaleFactor, mode = "nearest" } = options;
  if ((size === undefined) === (scaleFactor === undefined)) throw new TypeError("interpolate(): give exactly one of size and scaleFactor");
  const outSize = size === undefined ? null : typeof size === "number" ? [size, size] : size;
  const scales = scaleFactor === undefined ? null : typeof scaleFactor === "number" ? [scaleFactor, scaleFactor] : scaleFactor;
  if (mode === "nearest") {
    if (options.alignCorners !== undefined) throw new TypeError("interpolate(): alignCorners applies to bilinear mode only");
    return new Tensor(native.call(O.nearest, input._h, outSize, scales));
  }
  if (mode === "bilinear") return new Tensor(native.call(O.bilinear, input._h, outSize, options.alignCorners ?? false, scales));
  throw new TypeError(`interpolate(): mode must be "nearest" or "bilinear", got ${String(mode)}`);
}

export interface AvgPool2dOptions {
  stride?: number | [number, number] | null;
  padding?: number | [number, number];
  ceilMode?: boolean;
  countIncludePad?: boolean;
  divisorOverride?: number | null;
}
export function avgPool2d(input: Tensor, kernelSize: number | [number, number], options: AvgPool2dOptions = {}): Tensor {
  return new Tensor(
    native.call(
      O.avgPool2d,
      input._h,
      kernelSize,
      options.stride ?? [],
      options.padding ?? 0,
      options.ceilMode ?? false,
      options.countIncludePad ?? true,
      options.divisorOverride ?? null,
    ),
  );
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  /** Targets equal to this are ignored (default -100, as in PyTorch). */
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}
/** Cross entropy of logits (N, C) or (N, C, d...) against class indices (N) / (N, d...). */
export function crossEntropy(input: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  return new Tensor(
    native.call(
      O.crossEntropy,
      input._h,
      target._h,
      options.weight ? options.weight._h : null,
      reduction(options.reduction),
      options.ignoreIndex ?? -100,
      options.labelSmoothing ?? 0,
    ),
  );
}

export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  return new Tensor(native.call(O.mseLoss, input._h, target._h, reduction(options.reduction)));
}

/** Zeroes elements with probability p and scales the rest by 1 / (1 - p) when training. */
export function dropout(input: Tensor, options: { p?: number; training?: boolean } = {}): Tensor {
  const p = options.p ?? 0.5;
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout(): p must be in [0, 1], got ${p}`);
  return new Tensor(native.call(O.dropout, input._h, p, options.training ?? true));
}

/** Pads the last dimensions: `pad` lists (left, right) pairs starting from the last dimension. */
export function pad(input: Tensor, padding: readonly number[], options: { mode?: "constant" | "reflect" | "replicate"; value?: number } = {}): Tensor {
  return new Tensor(native.call(O.pad, input._h, padding, options.mode ?? "constant", options.value ?? null));
}

export type { Generator };
