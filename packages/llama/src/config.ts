// Llama configuration: `LlamaConfigJson` mirrors Hugging Face's config.json (every field optional),
// `resolveLlamaConfig` validates it and returns a `LlamaConfig` with no optionals.
// Follows transformers' LlamaConfig (v5), accepting both RoPE spellings: the `rope_theta` +
// `rope_scaling` keys of published checkpoints and the `rope_parameters` object newer releases write.

export interface RopeParametersJson {
  rope_type?: string;
  type?: string; // older spelling of rope_type
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export interface LlamaConfigJson {
  model_type?: string;
  architectures?: string[];
  vocab_size?: number;
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_key_value_heads?: number | null;
  head_dim?: number | null;
  hidden_act?: string;
  max_position_embeddings?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  rope_scaling?: RopeParametersJson | null;
  rope_parameters?: RopeParametersJson | null;
  tie_word_embeddings?: boolean;
  attention_bias?: boolean;
  attention_dropout?: number;
  mlp_bias?: boolean;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  [key: string]: unknown;
}

export type RopeScaling =
  | { type: "default" }
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LlamaConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly maxPositionEmbeddings: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  readonly tieWordEmbeddings: boolean;
  readonly attentionBias: boolean;
  readonly mlpBias: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
}

/** Keys this implementation reads or knowingly ignores; anything else is reported. */
const KNOWN_KEYS = new Set([
  "model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
  "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings",
  "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "tie_word_embeddings", "attention_bias",
  "attention_dropout", "mlp_bias", "bos_token_id", "eos_token_id", "pad_token_id",
  // training / bookkeeping fields with no effect on inference
  "initializer_range", "pretraining_tp", "use_cache", "torch_dtype", "dtype", "transformers_version",
  "_name_or_path", "output_attentions", "output_hidden_states", "return_dict", "id2label", "label2id",
]);

export class LlamaConfigError extends Error {
  override name = "LlamaConfigError";
}

/** Validates a config.json object. `unknownKeys` lists keys this implementation does not use. */
export function resolveLlamaConfig(json: LlamaConfigJson): { config: LlamaConfig; unknownKeys: string[] } {
  const problems: string[] = [];
  const positiveInt = (key: keyof LlamaConfigJson, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      problems.push(`${String(key)} must be a positive integer (got ${JSON.stringify(v)})`);
      return 1;
    }
    return v;
  };
  if (json.model_type !== undefined && json.model_type !== "llama")
    problems.push(`model_type is '${json.model_type}', expected 'llama'`);
  const hiddenSize = positiveInt("hidden_size");
  const numAttentionHeads = positiveInt("num_attention_heads");
  const numKeyValueHeads = positiveInt("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0)
    problems.push(`num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  const headDim = positiveInt("head_dim", Math.floor(hiddenSize / numAttentionHeads));
  if (json.hidden_act !== undefined && json.hidden_act !== "silu") problems.push(`hidden_act '${json.hidden_act}' is not supported (only 'silu')`);

  const rope = json.rope_parameters ?? json.rope_scaling ?? null;
  const ropeTheta = json.rope_theta ?? rope?.rope_theta ?? 10000;
  if (!(typeof ropeTheta === "number" && ropeTheta > 0)) problems.push(`rope_theta must be a positive number (got ${ropeTheta})`);
  const ropeType = rope?.rope_type ?? rope?.type ?? "default";
  let ropeScaling: RopeScaling = { type: "default" };
  if (ropeType === "llama3") {
    const r = rope!;
    for (const k of ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const)
      if (typeof r[k] !== "number") problems.push(`rope_scaling of type llama3 needs a numeric ${k}`);
    if (r.high_freq_factor === r.low_freq_factor) problems.push("rope_scaling: high_freq_factor must differ from low_freq_factor");
    ropeScaling = {
      type: "llama3",
      factor: r.factor ?? 1,
      lowFreqFactor: r.low_freq_factor ?? 1,
      highFreqFactor: r.high_freq_factor ?? 4,
      originalMaxPositionEmbeddings: r.original_max_position_embeddings ?? 8192,
    };
  } else if (ropeType !== "default") {
    problems.push(`rope type '${ropeType}' is not supported (only 'default' and 'llama3')`);
  }

  const eos = json.eos_token_id;
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  if (!eosTokenIds.every((x) => Number.isInteger(x) && x >= 0)) problems.push(`eos_token_id must be an integer or a list of integers (got ${JSON.stringify(eos)})`);

  const config: LlamaConfig = {
    vocabSize: positiveInt("vocab_size"),
    hiddenSize,
    intermediateSize: positiveInt("intermediate_size"),
    numHiddenLayers: positiveInt("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings: positiveInt("max_position_embeddings", 2048),
    rmsNormEps: json.rms_norm_eps ?? 1e-6,
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings: json.tie_word_embeddings ?? false,
    attentionBias: json.attention_bias ?? false,
    mlpBias: json.mlp_bias ?? false,
    bosTokenId: json.bos_token_id ?? null,
    eosTokenIds,
    padTokenId: json.pad_token_id ?? null,
  };
  if (problems.length) throw new LlamaConfigError(`invalid Llama config: ${problems.join("; ")}`);
  return { config, unknownKeys: Object.keys(json).filter((k) => !KNOWN_KEYS.has(k)) };
}

/** Llama-3.1-8B-Instruct (meta-llama/Llama-3.1-8B-Instruct, config.json). */
export function llama31_8bInstruct(): LlamaConfigJson {
  return {
    model_type: "llama",
    vocab_size: 128256,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 128000,
    eos_token_id: [128001, 128008, 128009],
  };
}

/** Llama-3.2-1B (meta-llama/Llama-3.2-1B, config.json). */
export function llama32_1b(): LlamaConfigJson {
  return {
    model_type: "llama",
    vocab_size: 128256,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: true,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 128000,
    eos_token_id: 128001,
  };
}

/** SmolLM2-135M-Instruct (HuggingFaceTB/SmolLM2-135M-Instruct, config.json): a Llama-architecture model. */
export function smolLM2_135m(): LlamaConfigJson {
  return {
    model_type: "llama",
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    tie_word_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
  };
}
