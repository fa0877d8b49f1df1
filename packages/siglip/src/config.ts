// SigLIP configuration: types mirroring transformers' SiglipVisionConfig / SiglipTextConfig /
// SiglipConfig (config.json), validated through tensor-cuda's shared ConfigReader and resolved
// into configs without optionals.
import * as T from "@pisces/tensor-cuda";

export interface SiglipVisionConfigJson {
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_channels?: number;
  image_size?: number;
  patch_size?: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  vision_use_head?: boolean;
  [key: string]: unknown;
}

export interface SiglipTextConfigJson {
  vocab_size?: number;
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  max_position_embeddings?: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  projection_size?: number;
  [key: string]: unknown;
}

export interface SiglipConfigJson {
  model_type?: string;
  text_config?: SiglipTextConfigJson;
  vision_config?: SiglipVisionConfigJson;
  [key: string]: unknown;
}

export type Activation = "gelu_pytorch_tanh" | "gelu" | "quick_gelu";

export interface SiglipVisionConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numChannels: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly hiddenAct: Activation;
  readonly layerNormEps: number;
  readonly visionUseHead: boolean;
}

export interface SiglipTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: Activation;
  readonly layerNormEps: number;
  readonly projectionSize: number;
}

/** A SigLIP config.json is invalid; `problems` names each key. */
export class SiglipConfigError extends T.ConfigError {
  override name = "SiglipConfigError";
}

const ACTIVATIONS = ["gelu_pytorch_tanh", "gelu", "quick_gelu"] as const;
const L = T.CONFIG_LIMITS;
/** Keys of transformers' SigLIP configs without effect on inference. */
const IGNORED = ["model_type", "attention_dropout", "pad_token_id", "bos_token_id", "eos_token_id", "projector_hidden_act"];

/**
 * The model_type a config may carry: a SigLIP tower config ("siglip_vision_model" /
 * "siglip_text_model") or a full one ("siglip"). Any other type (e.g. "bert") is refused.
 */
function checkModelType(r: T.ConfigReader, allowed: readonly string[]): void {
  if (r.has("model_type")) r.string("model_type", undefined, allowed);
}

function towerReader(json: unknown, where: string, prefix: string, problems: string[] | undefined, allowedTypes: readonly string[]): T.ConfigReader {
  const r = new T.ConfigReader(json, where, prefix, problems);
  r.ignore(...T.BOOKKEEPING_KEYS);
  checkModelType(r, allowedTypes);
  r.ignore(...IGNORED);
  return r;
}

// The same fields and bounds as resolveClipVisionConfig in @pisces/gen-clip's config.ts.
function readVision(r: T.ConfigReader): SiglipVisionConfig {
  const config: SiglipVisionConfig = {
    hiddenSize: r.int("hidden_size", 768, { max: L.width }),
    intermediateSize: r.int("intermediate_size", 3072, { max: 4 * L.width }),
    numHiddenLayers: r.int("num_hidden_layers", 12, { max: L.layers }),
    numAttentionHeads: r.int("num_attention_heads", 12, { max: L.heads }),
    numChannels: r.int("num_channels", 3, { max: L.channels }),
    imageSize: r.int("image_size", 224, { max: L.imageSize }),
    patchSize: r.int("patch_size", 16, { max: L.imageSize }),
    hiddenAct: r.string<Activation>("hidden_act", "gelu_pytorch_tanh", ACTIVATIONS),
    layerNormEps: r.number("layer_norm_eps", 1e-6, { gt: 0, max: 1 }),
    visionUseHead: r.bool("vision_use_head", true),
  };
  if (config.hiddenSize % config.numAttentionHeads) r.fail("vision_config.hidden_size must be divisible by num_attention_heads");
  if (config.imageSize % config.patchSize) r.fail("vision_config.image_size must be divisible by patch_size");
  return config;
}

function readText(r: T.ConfigReader): SiglipTextConfig {
  const hiddenSize = r.int("hidden_size", 768, { max: L.width });
  const config: SiglipTextConfig = {
    vocabSize: r.int("vocab_size", 32000, { max: L.vocab }),
    hiddenSize,
    intermediateSize: r.int("intermediate_size", 3072, { max: 4 * L.width }),
    numHiddenLayers: r.int("num_hidden_layers", 12, { max: L.layers }),
    numAttentionHeads: r.int("num_attention_heads", 12, { max: L.heads }),
    maxPositionEmbeddings: r.int("max_position_embeddings", 64, { max: L.positions }),
    hiddenAct: r.string<Activation>("hidden_act", "gelu_pytorch_tanh", ACTIVATIONS),
    layerNormEps: r.number("layer_norm_eps", 1e-6, { gt: 0, max: 1 }),
    projectionSize: r.int("projection_size", hiddenSize, { max: L.width }),
  };
  if (config.hiddenSize % config.numAttentionHeads) r.fail("text_config.hidden_size must be divisible by num_attention_heads");
  return config;
}

/** Defaults are transformers' SiglipVisionConfig defaults. `where` names the file in errors. */
export function resolveSiglipVisionConfig(json: SiglipVisionConfigJson, where = "SigLIP vision config"): SiglipVisionConfig {
  const r = towerReader(json, where, "vision_config.", undefined, ["siglip_vision_model", "siglip"]);
  const config = readVision(r);
  if (r.problems.length) throw new SiglipConfigError(r.problems, where);
  return config;
}

/** Defaults are transformers' SiglipTextConfig defaults. */
export function resolveSiglipTextConfig(json: SiglipTextConfigJson, where = "SigLIP text config"): SiglipTextConfig {
  const r = towerReader(json, where, "text_config.", undefined, ["siglip_text_model", "siglip"]);
  const config = readText(r);
  if (r.problems.length) throw new SiglipConfigError(r.problems, where);
  return config;
}

/**
 * A checkpoint folder's config.json: a full SiglipModel config (text_config + vision_config) or
 * a vision tower's own. Checks model_type at the top ("siglip" or "siglip_vision_model").
 */
export function resolveSiglipCheckpointConfig(
  json: unknown,
  where: string,
): { vision: SiglipVisionConfig; text: SiglipTextConfig | null; unknownKeys: string[] } {
  const top = new T.ConfigReader(json, where);
  top.ignore(...T.BOOKKEEPING_KEYS, "initializer_factor", "text_config_dict", "vision_config_dict");
  checkModelType(top, ["siglip", "siglip_vision_model"]);
  const nested = top.object("vision_config");
  const visionReader = nested
    ? towerReader((json as Record<string, unknown>).vision_config, where, "vision_config.", top.problems, ["siglip_vision_model"])
    : top;
  const vision = readVision(visionReader);
  const textJson = (json as Record<string, unknown> | null)?.text_config;
  const textReader = textJson ? towerReader(textJson, where, "text_config.", top.problems, ["siglip_text_model"]) : null;
  const text = textReader ? readText(textReader) : null;
  top.raw("text_config");
  if (top.problems.length) throw new SiglipConfigError(top.problems, where);
  const unknownKeys = [...top.unreadKeys(), ...(visionReader !== top ? visionReader.unreadKeys() : []), ...(textReader?.unreadKeys() ?? [])];
  return { vision, text, unknownKeys };
}

/** google/siglip-so400m-patch14-384 vision tower (its config.json): 27x27 = 729 tokens of width 1152. */
export function siglipSo400m384(): SiglipVisionConfigJson {
  return {
    hidden_size: 1152,
    intermediate_size: 4304,
    num_hidden_layers: 27,
    num_attention_heads: 16,
    num_channels: 3,
    image_size: 384,
    patch_size: 14,
    hidden_act: "gelu_pytorch_tanh",
    layer_norm_eps: 1e-6,
  };
}

/** google/siglip-base-patch16-224 vision tower (ViT-B/16 shape). */
export function siglipBase224(): SiglipVisionConfigJson {
  return { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 16 };
}
