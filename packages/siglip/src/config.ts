// SigLIP configuration: types mirroring transformers' SiglipVisionConfig / SiglipTextConfig /
// SiglipConfig (config.json), validated and resolved into configs without optionals.

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

export class SiglipConfigError extends Error {
  override name = "SiglipConfigError";
}

const ACTIVATIONS = new Set(["gelu_pytorch_tanh", "gelu", "quick_gelu"]);

function checker(problems: string[], json: Record<string, unknown>, where: string) {
  return (key: string, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      problems.push(`${where}.${key} must be a positive integer (got ${JSON.stringify(v)})`);
      return 1;
    }
    return v;
  };
}

function activation(problems: string[], v: unknown, where: string): Activation {
  const act = (v ?? "gelu_pytorch_tanh") as string;
  if (!ACTIVATIONS.has(act)) problems.push(`${where}.hidden_act '${act}' is not supported (gelu_pytorch_tanh, gelu, quick_gelu)`);
  return act as Activation;
}

/** Defaults are transformers' SiglipVisionConfig defaults. */
export function resolveSiglipVisionConfig(json: SiglipVisionConfigJson): SiglipVisionConfig {
  const problems: string[] = [];
  const int = checker(problems, json, "vision_config");
  const config: SiglipVisionConfig = {
    hiddenSize: int("hidden_size", 768),
    intermediateSize: int("intermediate_size", 3072),
    numHiddenLayers: int("num_hidden_layers", 12),
    numAttentionHeads: int("num_attention_heads", 12),
    numChannels: int("num_channels", 3),
    imageSize: int("image_size", 224),
    patchSize: int("patch_size", 16),
    hiddenAct: activation(problems, json.hidden_act, "vision_config"),
    layerNormEps: json.layer_norm_eps ?? 1e-6,
    visionUseHead: json.vision_use_head ?? true,
  };
  if (config.hiddenSize % config.numAttentionHeads) problems.push("vision_config.hidden_size must be divisible by num_attention_heads");
  if (config.imageSize % config.patchSize) problems.push("vision_config.image_size must be divisible by patch_size");
  if (problems.length) throw new SiglipConfigError(`invalid SigLIP config: ${problems.join("; ")}`);
  return config;
}

/** Defaults are transformers' SiglipTextConfig defaults. */
export function resolveSiglipTextConfig(json: SiglipTextConfigJson): SiglipTextConfig {
  const problems: string[] = [];
  const int = checker(problems, json, "text_config");
  const hiddenSize = int("hidden_size", 768);
  const config: SiglipTextConfig = {
    vocabSize: int("vocab_size", 32000),
    hiddenSize,
    intermediateSize: int("intermediate_size", 3072),
    numHiddenLayers: int("num_hidden_layers", 12),
    numAttentionHeads: int("num_attention_heads", 12),
    maxPositionEmbeddings: int("max_position_embeddings", 64),
    hiddenAct: activation(problems, json.hidden_act, "text_config"),
    layerNormEps: json.layer_norm_eps ?? 1e-6,
    projectionSize: int("projection_size", hiddenSize),
  };
  if (config.hiddenSize % config.numAttentionHeads) problems.push("text_config.hidden_size must be divisible by num_attention_heads");
  if (problems.length) throw new SiglipConfigError(`invalid SigLIP config: ${problems.join("; ")}`);
  return config;
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
