// CLIP vision configuration: a type mirroring transformers' CLIPVisionConfig (config.json, or the
// vision_config of a CLIPConfig), validated through tensor-cuda's shared ConfigReader and
// resolved into a config without optionals.
import * as T from "@pisces/tensor-cuda";

export interface ClipVisionConfigJson {
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  num_channels?: number;
  image_size?: number;
  patch_size?: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  projection_dim?: number;
  [key: string]: unknown;
}

export type ClipActivation = "quick_gelu" | "gelu" | "gelu_pytorch_tanh";

export interface ClipVisionConfig {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numChannels: number;
  readonly imageSize: number;
  readonly patchSize: number;
  readonly hiddenAct: ClipActivation;
  readonly layerNormEps: number;
}

/** A CLIP vision config.json is invalid; `problems` names each key. */
export class ClipConfigError extends T.ConfigError {
  override name = "ClipConfigError";
}

const L = T.CONFIG_LIMITS;
const ACTIVATIONS = ["quick_gelu", "gelu", "gelu_pytorch_tanh"] as const;

/**
 * Defaults are transformers' CLIPVisionConfig defaults (ViT-B/32). Accepts a CLIPVisionConfig
 * (model_type "clip_vision_model") or a full CLIPConfig ("clip") whose `vision_config` is read;
 * any other model_type (e.g. "bert") is refused. `where` names the file in errors.
 */
export function resolveClipVisionConfig(
  json: ClipVisionConfigJson & { vision_config?: unknown },
  where = "CLIP vision config",
  unknownKeys?: string[],
): ClipVisionConfig {
  const top = new T.ConfigReader(json, where);
  top.ignore(...T.BOOKKEEPING_KEYS, "text_config", "projection_dim", "logit_scale_init_value", "initializer_factor", "text_config_dict", "vision_config_dict");
  if (top.has("model_type")) top.string("model_type", undefined, ["clip_vision_model", "clip"]);
  const nested = top.object("vision_config");
  if (nested?.has("model_type")) nested.string("model_type", undefined, ["clip_vision_model"]);
  const r = nested ?? top;
  r.ignore("projection_dim", "attention_dropout", "model_type", ...T.BOOKKEEPING_KEYS);
  // the same fields and bounds as readVision in @pisces/siglip's config.ts (packages never import each other)
  const config: ClipVisionConfig = {
    hiddenSize: r.int("hidden_size", 768, { max: L.width }),
    intermediateSize: r.int("intermediate_size", 3072, { max: 4 * L.width }),
    numHiddenLayers: r.int("num_hidden_layers", 12, { max: L.layers }),
    numAttentionHeads: r.int("num_attention_heads", 12, { max: L.heads }),
    numChannels: r.int("num_channels", 3, { max: L.channels }),
    imageSize: r.int("image_size", 224, { max: L.imageSize }),
    patchSize: r.int("patch_size", 32, { max: L.imageSize }),
    hiddenAct: r.string<ClipActivation>("hidden_act", "quick_gelu", ACTIVATIONS),
    layerNormEps: r.number("layer_norm_eps", 1e-5, { gt: 0, max: 1 }),
  };
  if (config.hiddenSize % config.numAttentionHeads) r.fail("hidden_size must be divisible by num_attention_heads");
  if (config.imageSize % config.patchSize) r.fail("image_size must be divisible by patch_size");
  if (top.problems.length) throw new ClipConfigError(top.problems, where);
  unknownKeys?.push(...top.unreadKeys(), ...(nested ? nested.unreadKeys() : []));
  return config;
}

/** A gen-CLIP-shaped encoder as in Emu2 / Pisces: 448 px, patch 14 -> a 32x32 grid (pooled 4x4 to 64 vectors). */
export function genClip448(): ClipVisionConfigJson {
  return { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 448, patch_size: 14, hidden_act: "gelu" };
}

/** openai/clip-vit-base-patch16 vision tower (ViT-B/16 shape). */
export function clipVitB16(): ClipVisionConfigJson {
  return {
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    image_size: 224,
    patch_size: 16,
    hidden_act: "quick_gelu",
  };
}

export interface ClipTextConfigJson {
  vocab_size?: number;
  hidden_size?: number;
  intermediate_size?: number;
  num_hidden_layers?: number;
  num_attention_heads?: number;
  max_position_embeddings?: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  pad_token_id?: number;
  bos_token_id?: number;
  eos_token_id?: number;
  [key: string]: unknown;
}

/** transformers' CLIPTextConfig, resolved. */
export interface ClipTextConfig {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly maxPositionEmbeddings: number;
  readonly hiddenAct: ClipActivation;
  readonly layerNormEps: number;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  /** The pooled output is the hidden state at the first eos (or, for the legacy id 2, at the largest id). */
  readonly eosTokenId: number;
}

/** A full CLIPConfig (model_type "clip"): both towers and the shared embedding space. */
export interface ClipConfig {
  readonly textConfig: ClipTextConfig;
  readonly visionConfig: ClipVisionConfig;
  readonly projectionDim: number;
  readonly logitScaleInitValue: number;
}

/** Resolves a CLIPConfig config.json (model_type "clip", with text_config and vision_config); defaults are transformers'. */
export function resolveClipConfig(json: Record<string, unknown>, where = "CLIP config", unknownKeys?: string[]): ClipConfig {
  const top = new T.ConfigReader(json, where);
  top.ignore(...T.BOOKKEEPING_KEYS, "vision_config", "initializer_factor", "text_config_dict", "vision_config_dict");
  if (top.has("model_type")) top.string("model_type", undefined, ["clip"]);
  const text = top.object("text_config");
  if (!text) top.fail("text_config is missing: a CLIP model with a text tower has one (a vision-only folder loads with ClipVisionModel)");
  const r = text ?? new T.ConfigReader({}, where, "text_config.", top.problems);
  if (r.has("model_type")) r.string("model_type", undefined, ["clip_text_model"]);
  r.ignore("projection_dim", "attention_dropout", "dropout", "initializer_range", "initializer_factor", ...T.BOOKKEEPING_KEYS);
  const textConfig: ClipTextConfig = {
    vocabSize: r.int("vocab_size", 49408, { max: L.vocab }),
    hiddenSize: r.int("hidden_size", 512, { max: L.width }),
    intermediateSize: r.int("intermediate_size", 2048, { max: 4 * L.width }),
    numHiddenLayers: r.int("num_hidden_layers", 12, { max: L.layers }),
    numAttentionHeads: r.int("num_attention_heads", 8, { max: L.heads }),
    maxPositionEmbeddings: r.int("max_position_embeddings", 77, { max: L.positions }),
    hiddenAct: r.string<ClipActivation>("hidden_act", "quick_gelu", ACTIVATIONS),
    layerNormEps: r.number("layer_norm_eps", 1e-5, { gt: 0, max: 1 }),
    padTokenId: r.int("pad_token_id", 1, { min: 0, max: L.vocab }),
    bosTokenId: r.int("bos_token_id", 49406, { min: 0, max: L.vocab }),
    eosTokenId: r.int("eos_token_id", 49407, { min: 0, max: L.vocab }),
  };
  if (textConfig.hiddenSize % textConfig.numAttentionHeads) r.fail("hidden_size must be divisible by num_attention_heads");
  const projectionDim = top.int("projection_dim", 512, { max: L.width });
  const logitScaleInitValue = top.number("logit_scale_init_value", 2.6592, { min: -100, max: 100 });
  if (top.problems.length) throw new ClipConfigError(top.problems, where);
  const visionUnknown: string[] = [];
  const visionConfig = resolveClipVisionConfig(json as ClipVisionConfigJson & { vision_config?: unknown }, where, visionUnknown);
  unknownKeys?.push(...top.unreadKeys(), ...(text ? text.unreadKeys() : []), ...visionUnknown.filter((k) => !k.startsWith("text_config")));
  return { textConfig, visionConfig, projectionDim, logitScaleInitValue };
}
