// Fused inference kernels that take a whole block of a model in one native call
// (native/kernels/decoder_layer.h): the per-operator model code is their reference and runs
// wherever they do not apply.
import { native } from "./native.js";
import { Linear } from "./nn/layers.js";
import { GGML_FORMATS, QuantizedLinear } from "./quantized.js";
import { Tensor } from "./tensor.js";

/** The weights of a pre-norm Llama decoder layer, as its modules hold them. */
export interface DecoderLayerWeights {
  inputNorm: Tensor;
  postNorm: Tensor;
  /** The seven projections in order q, k, v, o, gate, up, down: float32 Linear layers or QuantizedLinear ones, without bias. */
  projections: readonly (Linear | QuantizedLinear)[];
  eps: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Of the attention scores (headDim ** -0.5 for Llama). */
  scale: number;
}

/** Whether `fusedDecoderLayer` can take these modules: bias-free float32 or packed projections on the CPU. */
export function fusedDecoderLayerApplies(w: Pick<DecoderLayerWeights, "projections" | "inputNorm" | "postNorm">): boolean {
  if (w.projections.length !== 7) return false;
  for (const t of [w.inputNorm, w.postNorm]) if (t.device !== "cpu" || t.dtype !== "float32") return false;
  return w.projections.every((p) =>
    p instanceof QuantizedLinear
      ? p.bias === null && p.qweight.device === "cpu"
      : p instanceof Linear && p.bias === null && p.weight.device === "cpu" && p.weight.dtype === "float32",
  );
}

/**
 * One Llama decoder layer for one new token per row, for inference (under `noGrad`): x (B, 1, C)
 * -> (B, 1, C). Writes the token's rotated key and its value at `position` of the caches
 * (B, kvHeads, maxLength, headDim) and attends over positions [0, position]; cos, sin (B, 1,
 * headDim) are the rotary tables of the token's position. Float32 on an AVX2 CPU; an error names
 * what does not fit otherwise. Equals LlamaDecoderLayer.forward to float32 rounding
 * (packages/llama/test/fused.test.ts).
 */
export function fusedDecoderLayer(x: Tensor, w: DecoderLayerWeights, cos: Tensor, sin: Tensor, keys: Tensor, values: Tensor, position: number): Tensor {
  const weights = w.projections.map((p) => (p instanceof QuantizedLinear ? p.qweight._h : p.weight._h));
  const types = w.projections.map((p) => (p instanceof QuantizedLinear ? GGML_FORMATS[p.format][0] : -1));
  return new Tensor(
    native.fusedDecoderLayer(
      x._h,
      [w.inputNorm._h, w.postNorm._h],
      weights,
      types,
      cos._h,
      sin._h,
      keys._h,
      values._h,
      position,
      w.eps,
      w.heads,
      w.kvHeads,
      w.headDim,
      w.scale,
    ),
  );
}
