// Weight-only quantization of a loaded model for inference: every linear layer becomes a
// `QuantizedLinear` (@pisces/tensor-cuda) with GGML blocks of 32 values, int8 (Q8_0) or int4
// (Q4_1: a scale and a minimum per block, more accurate than the symmetric Q4_0), quantized as
// llama.cpp quantizes them; the embedding and the norms stay float.
import * as T from "@pisces/tensor-cuda";
import type { LlamaForCausalLM } from "./model.js";
import { replaceModule } from "./weights.js";

export type QuantizationBits = "int8" | "int4";
const FORMATS = { int8: "Q8_0", int4: "Q4_1" } as const;

/**
 * Quantizes `model`'s linear layers in place (q/k/v/o, gate/up/down, lm_head) and returns it; the
 * float weights are freed (a tied lm_head gets its own packed copy, the embedding keeps the float
 * table). `groupSize` is the block: GGML's formats use 32 values, the only size supported.
 * `lmHead` is the lm_head's precision: int8 by default, as llama.cpp's 4-bit presets keep the
 * output layer at 6-8 bits (measured on SmolLM2-135M: int4 everywhere raised perplexity by 33%).
 */
export function quantize(
  model: LlamaForCausalLM,
  bits: QuantizationBits,
  options: { groupSize?: number; lmHead?: QuantizationBits | "float" } = {},
): LlamaForCausalLM {
  const format = FORMATS[bits];
  if (!format) throw new TypeError(`quantize: bits must be "int8" or "int4", got ${JSON.stringify(bits)}`);
  const head = options.lmHead ?? "int8";
  if (head !== "float" && !FORMATS[head]) throw new TypeError(`quantize: lmHead must be "int8", "int4" or "float", got ${JSON.stringify(head)}`);
  const groupSize = options.groupSize ?? 32;
  if (groupSize !== 32) throw new RangeError(`quantize: groupSize ${groupSize} is not supported (GGML's block formats quantize groups of 32 values)`);
  const embedding = (model.model.embed_tokens as { weight?: T.Tensor }).weight;
  const layers = [...model.namedModules()].filter((e): e is [string, T.nn.Linear] => e[1] instanceof T.nn.Linear && !(e[0] === "lm_head" && head === "float"));
  // every width checked before anything changes: a model is quantized whole or not at all
  for (const [path, m] of layers)
    if (m.inFeatures % 32 !== 0) throw new RangeError(`quantize: ${path} has ${m.inFeatures} input features, not a multiple of 32`);
  for (const [path, m] of layers) {
    const q = T.noGrad(() => T.QuantizedLinear.fromLinear(m, path === "lm_head" ? FORMATS[head as QuantizationBits] : format));
    replaceModule(model, path, q);
    if (m.weight !== embedding)
      m.dispose(); // a tied lm_head shares the embedding's table
    else m.bias?.dispose();
  }
  return model.eval();
}
