// Weight-only quantization of a loaded model for inference: every linear layer becomes a
// `QuantizedLinear` (@pisces/tensor-cuda) with GGML blocks of 32 values, int8 (Q8_0) or int4
// (Q4_1: a scale and a minimum per block, more accurate than the symmetric Q4_0), quantized as
// llama.cpp quantizes them; the embedding and the norms stay float.
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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

/**
 * The packed layers of a model, by module path, with their GGML formats: what `saveQuantized`
 * writes as `quantization_config.modules`.
 */
export function quantizedModules(model: T.nn.Module): Record<string, T.GgmlFormat> {
  const out: Record<string, T.GgmlFormat> = {};
  for (const [path, m] of model.namedModules()) if (m instanceof T.QuantizedLinear || m instanceof T.QuantizedEmbedding) out[path] = m.format;
  return out;
}

/** config.json's `quantization_config` of a folder saved by saveQuantized. */
export interface GgmlQuantizationConfig {
  quant_method: "ggml";
  /** Module path -> GGML block format; the module's packed rows are `<path>.qweight` (uint8, [rows, row bytes]). */
  modules: Record<string, T.GgmlFormat>;
}

/**
 * Saves a model whose layers are packed (`quantize`, or `loadGGUF` without dequantize) as a
 * Hugging Face-style folder that `LlamaForCausalLM.fromPretrained` loads back packed:
 * config.json is `config` plus `quantization_config` ({quant_method: "ggml", modules}); model.safetensors
 * holds each packed module's GGML blocks as `<path>.qweight` (uint8, one GGUF row per row, byte
 * for byte) beside the float tensors, and the same map in its metadata (`pisces_quantization`).
 * Written to a temporary folder and renamed: an existing folder is replaced whole or not at all.
 */
export function saveQuantized(model: LlamaForCausalLM, dir: string, config: object): void {
  const modules = quantizedModules(model);
  if (!Object.keys(modules).length) throw new TypeError("saveQuantized: the model has no packed layers (quantize it first, or save the float weights)");
  const tensors = new Map<string, T.Tensor>(model.stateDict());
  for (const [path] of Object.entries(modules)) {
    const m = [...model.namedModules()].find(([p]) => p === path)![1] as T.QuantizedLinear | T.QuantizedEmbedding;
    tensors.set(`${path}.qweight`, m.qweight);
    const bias = (m as { bias?: T.Tensor | null }).bias;
    if (bias) tensors.set(`${path}.bias`, bias);
  }
  const quantization: GgmlQuantizationConfig = { quant_method: "ggml", modules };
  const tmp = `${dir.replace(/\/+$/, "")}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, "config.json"), `${JSON.stringify({ ...config, quantization_config: quantization }, null, 2)}\n`);
    T.saveSafetensors(join(tmp, "model.safetensors"), tensors, { format: "pt", pisces_quantization: JSON.stringify(modules) });
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The packed modules a config.json names (quantization_config.modules), checked; null for a float folder. */
export function readQuantizationConfig(json: Record<string, unknown>, what: string): Record<string, T.GgmlFormat> | null {
  if (!json || typeof json !== "object" || Array.isArray(json)) return null; // the config validator names that problem
  const q = json.quantization_config as Partial<GgmlQuantizationConfig> | undefined;
  if (q === undefined || q === null) return null;
  if (typeof q !== "object" || q.quant_method !== "ggml")
    throw new T.ConfigError(
      [
        `quantization_config.quant_method must be "ggml" (the packing saveQuantized writes), got ${JSON.stringify((q as { quant_method?: unknown }).quant_method)}`,
      ],
      what,
    );
  const modules = q.modules;
  if (!modules || typeof modules !== "object" || Array.isArray(modules) || !Object.keys(modules).length)
    throw new T.ConfigError(["quantization_config.modules must map module paths to GGML formats"], what);
  for (const [path, format] of Object.entries(modules))
    if (!Object.hasOwn(T.GGML_FORMATS, format as string))
      throw new T.ConfigError(
        [`quantization_config.modules['${path}'] is ${JSON.stringify(format)}, not one of ${Object.keys(T.GGML_FORMATS).join(", ")}`],
        what,
      );
  return modules as Record<string, T.GgmlFormat>;
}
