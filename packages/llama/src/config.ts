// Llama configuration: `LlamaConfigJson` mirrors Hugging Face's config.json (every field optional),
// `resolveLlamaConfig` validates it and returns a `LlamaConfig` with no optionals.
// Follows transformers' LlamaConfig (v5), accepting both RoPE spellings: the `rope_theta` +
// `rope_scaling` keys of published checkpoints and the `rope_parameters` object newer releases write.
import * as T from "@pisces/tensor-cuda";

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

/** Training-only fields with no effect on inference (beyond the shared bookkeeping keys). */
const IGNORED_KEYS = ["pretraining_tp", "attention_dropout"];

/** A Llama config.json is invalid; `problems` names each key. */
export class LlamaConfigError extends T.ConfigError {
  override name = "LlamaConfigError";
}

const L = T.CONFIG_LIMITS;

/**
 * Validates a config.json object (types, ranges and bounds, through tensor-cuda's shared
 * ConfigReader). `unknownKeys` lists keys this implementation does not use. `where` names the
 * file in errors.
 */
export function resolveLlamaConfig(json: LlamaConfigJson, where = "Llama config"): { config: LlamaConfig; unknownKeys: string[] } {
  const r = new T.ConfigReader(json, where);
  r.ignore(...T.BOOKKEEPING_KEYS, ...IGNORED_KEYS);
  if (r.has("model_type")) r.string("model_type", "llama", ["llama"]);
  const hiddenSize = r.int("hidden_size", undefined, { max: L.width });
  const numAttentionHeads = r.int("num_attention_heads", undefined, { max: L.heads });
  const numKeyValueHeads = r.int("num_key_value_heads", numAttentionHeads, { max: L.heads }); // null or absent: multi-head attention
  if (numAttentionHeads % numKeyValueHeads !== 0)
    r.fail(`num_attention_heads (${numAttentionHeads}) must be a multiple of num_key_value_heads (${numKeyValueHeads})`);
  const before = r.problems.length;
  const headDim = r.int("head_dim", Math.max(1, Math.floor(hiddenSize / numAttentionHeads)), { max: L.headDim });
  if (r.problems.length === before && headDim % 2) r.fail(`head_dim = ${headDim} must be even (rotary embeddings rotate pairs)`);
  r.string("hidden_act", "silu", ["silu"]);

  // transformers 5 writes rope_parameters; published checkpoints carry rope_theta + rope_scaling.
  // Both may appear only when they agree: one of them would otherwise be silently ignored.
  const rp = r.object("rope_parameters");
  const rs = r.object("rope_scaling");
  if (rp && rs && JSON.stringify(json.rope_parameters) !== JSON.stringify(json.rope_scaling))
    r.fail("rope_scaling and rope_parameters are both given and differ: keep one (rope_parameters in transformers 5)");
  const rope = rp ?? rs;
  const ropeTheta =
    r.has("rope_theta") || !rope?.has("rope_theta") ? r.number("rope_theta", 10000, { gt: 0 }) : rope.number("rope_theta", undefined, { gt: 0 });
  if (rope?.has("rope_theta") && r.has("rope_theta") && rope.raw("rope_theta") !== json.rope_theta)
    r.fail(`rope_theta (${json.rope_theta}) and ${rp ? "rope_parameters" : "rope_scaling"}.rope_theta (${String(rope.raw("rope_theta"))}) differ`);
  const ropeType = rope ? rope.string("rope_type", (rope.raw("type") as string | undefined) ?? "default") : "default"; // `type`: older spelling
  let ropeScaling: RopeScaling = { type: "default" };
  if (ropeType === "llama3" && rope) {
    const factor = rope.number("factor", undefined, { gt: 0 });
    const lowFreqFactor = rope.number("low_freq_factor", undefined, { gt: 0 });
    const highFreqFactor = rope.number("high_freq_factor", undefined, { gt: 0 });
    const originalMaxPositionEmbeddings = rope.int("original_max_position_embeddings", undefined, { max: L.positions });
    if (highFreqFactor === lowFreqFactor) r.fail("rope_scaling: high_freq_factor must differ from low_freq_factor");
    ropeScaling = { type: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings };
  } else if (ropeType !== "default") r.fail(`rope type '${ropeType}' is not supported (only 'default' and 'llama3')`);
  const ropeUnread = rope?.unreadKeys() ?? []; // when both blocks are given they are equal (checked above)
  if (ropeUnread.length) r.fail(`unsupported rope settings: ${ropeUnread.join(", ")}`);

  const eos = r.raw("eos_token_id");
  const eosTokenIds = eos === undefined || eos === null ? [] : Array.isArray(eos) ? eos : [eos];
  const vocabSize = r.int("vocab_size", undefined, { max: L.vocab });
  if (!eosTokenIds.every((x) => Number.isSafeInteger(x) && x >= 0 && x < vocabSize))
    r.fail(`eos_token_id must be an integer or a list of integers inside the vocabulary (0 to ${vocabSize - 1}), got ${JSON.stringify(eos)}`);
  const tokenId = (key: string): number | null => r.intOrNull(key, { min: 0, max: vocabSize - 1 });

  const config: LlamaConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize: r.int("intermediate_size", undefined, { max: 4 * L.width }),
    numHiddenLayers: r.int("num_hidden_layers", undefined, { max: L.layers }),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings: r.int("max_position_embeddings", 2048, { max: L.positions }),
    rmsNormEps: r.number("rms_norm_eps", 1e-6, { gt: 0, max: 1 }),
    ropeTheta,
    ropeScaling,
    tieWordEmbeddings: r.bool("tie_word_embeddings", false),
    attentionBias: r.bool("attention_bias", false),
    mlpBias: r.bool("mlp_bias", false),
    bosTokenId: tokenId("bos_token_id"),
    eosTokenIds: eosTokenIds as number[],
    padTokenId: tokenId("pad_token_id"),
  };
  if (r.problems.length) throw new LlamaConfigError(r.problems, where);
  return { config, unknownKeys: r.unreadKeys() };
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
