// CLIP vision configuration: a type mirroring transformers' CLIPVisionConfig (config.json, or the
// vision_config of a CLIPConfig), validated and resolved into a config without optionals.

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

export class ClipConfigError extends Error {
  override name = "ClipConfigError";
}

/** Defaults are transformers' CLIPVisionConfig defaults (ViT-B/32). */
export function resolveClipVisionConfig(json: ClipVisionConfigJson): ClipVisionConfig {
  const problems: string[] = [];
  const int = (key: keyof ClipVisionConfigJson, fallback: number): number => {
    const v = json[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      problems.push(`${String(key)} must be a positive integer (got ${JSON.stringify(v)})`);
      return 1;
    }
    return v;
  };
  const act = (json.hidden_act ?? "quick_gelu") as ClipActivation;
  if (!["quick_gelu", "gelu", "gelu_pytorch_tanh"].includes(act)) problems.push(`hidden_act '${act}' is not supported (quick_gelu, gelu, gelu_pytorch_tanh)`);
  const config: ClipVisionConfig = {
    hiddenSize: int("hidden_size", 768),
    intermediateSize: int("intermediate_size", 3072),
    numHiddenLayers: int("num_hidden_layers", 12),
    numAttentionHeads: int("num_attention_heads", 12),
    numChannels: int("num_channels", 3),
    imageSize: int("image_size", 224),
    patchSize: int("patch_size", 32),
    hiddenAct: act,
    layerNormEps: json.layer_norm_eps ?? 1e-5,
  };
  if (config.hiddenSize % config.numAttentionHeads) problems.push("hidden_size must be divisible by num_attention_heads");
  if (config.imageSize % config.patchSize) problems.push("image_size must be divisible by patch_size");
  if (problems.length) throw new ClipConfigError(`invalid CLIP vision config: ${problems.join("; ")}`);
  return config;
}

/** A gen-CLIP-shaped encoder as in Emu2 / Pisces: 448 px, patch 14 -> a 32x32 grid (pooled 4x4 to 64 vectors). */
export function genClip448(): ClipVisionConfigJson {
  return { hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16, image_size: 448, patch_size: 14, hidden_act: "gelu" };
}

/** openai/clip-vit-base-patch16 vision tower (ViT-B/16 shape). */
export function clipVitB16(): ClipVisionConfigJson {
  return { hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, image_size: 224, patch_size: 16, hidden_act: "quick_gelu" };
}
