// Pisces' config.json (model_type "pisces"): the LLM's own config under text_config, which encoder
// layers feed the two paths, the gen-CLIP pooling kernel, the [IMG] / [/IMG] ids, loss weights and
// the paper's prompts. Mirrors the file (PiscesConfigJson), resolved into a readonly PiscesConfig.
import { type LlamaConfig, type LlamaConfigJson, resolveLlamaConfig } from "@pisces/llama";
import * as T from "@pisces/tensor-cuda";

/** The prompts of the paper (arXiv 2506.10395, section 3). */
export const GENERATION_PROMPT = "Please generate an image based on the following caption: {caption}";
export const CAPTIONING_PROMPT = "Please provide a detailed description of the given image.";
/** The special tokens delimiting image vectors in a sequence. */
export const IMAGE_START_TOKEN = "[IMG]";
export const IMAGE_END_TOKEN = "[/IMG]";

export interface PiscesConfigJson {
  model_type?: "pisces";
  architectures?: string[];
  /** A Llama config.json body. */
  text_config: LlamaConfigJson;
  /** Index into SigLIP's hidden states (embeddings first): -1 the last layer, -2 the penultimate. */
  understanding_feature_layer?: number;
  /** Index into gen-CLIP's hidden states whose patch tokens are the generation targets. */
  generation_feature_layer?: number;
  /** Average-pooling kernel (and stride) over gen-CLIP's patch grid: 4 gives 64 vectors from 32x32. */
  generation_pool_kernel?: number;
  image_start_token_id: number;
  image_end_token_id: number;
  projector_hidden_act?: "gelu" | "gelu_pytorch_tanh";
  text_loss_weight?: number;
  image_loss_weight?: number;
  /** Training options, off by default: a cosine term beside the MSE, Gaussian noise on teacher-forced inputs. */
  image_cosine_loss_weight?: number;
  generation_input_noise_std?: number;
  /**
   * Parallel scheduled sampling (training only, off by default): the share of teacher-forced input
   * vectors replaced by the model's own predictions of them from a first, gradient-free pass, so
   * the LLM learns to continue from its own (imperfect) vectors as it must at inference.
   */
  generation_scheduled_sampling?: number;
  /**
   * Rollout sampling (training only, off by default): the share of generation samples whose input
   * vectors are the model's own free-running rollout from the sample's prompt (gradient-free, as at
   * inference), the loss still against the true vectors: the LLM learns to steer back from its own
   * drift, which parallel scheduled sampling (one step of it) does not reach.
   */
  generation_rollout_sampling?: number;
  /**
   * Whether each predicted vector is fed back as the next input (default true, as the paper). false:
   * every generation place holds the same input (the generation projector of a zero vector), so the
   * LLM predicts each vector from the prompt and its position alone, teacher forcing and inference
   * see the same inputs, and the rollout cannot drift (a deviation, for ablations).
   */
  generation_input_feedback?: boolean;
  /** Normalise the generation targets per dimension with statistics stored in model.safetensors (generation_target_mean / _std). */
  generation_target_normalization?: boolean;
  /** Predict the caption of generation samples too (off by default, as the paper). */
  generation_caption_loss?: boolean;
  /** `{caption}` is replaced by the caption. */
  generation_prompt?: string;
  captioning_prompt?: string;
  [key: string]: unknown;
}

export interface PiscesConfig {
  readonly textConfig: LlamaConfig;
  readonly understandingFeatureLayer: number;
  readonly generationFeatureLayer: number;
  readonly generationPoolKernel: number;
  readonly imageStartTokenId: number;
  readonly imageEndTokenId: number;
  readonly projectorHiddenAct: "gelu" | "gelu_pytorch_tanh";
  readonly textLossWeight: number;
  readonly imageLossWeight: number;
  readonly imageCosineLossWeight: number;
  readonly generationInputNoiseStd: number;
  readonly generationScheduledSampling: number;
  readonly generationRolloutSampling: number;
  readonly generationInputFeedback: boolean;
  readonly generationCaptionLoss: boolean;
  readonly generationTargetNormalization: boolean;
  readonly generationPrompt: string;
  readonly captioningPrompt: string;
}

export class PiscesConfigError extends T.ConfigError {
  override name = "PiscesConfigError";
}

/** Validates a Pisces config.json; every problem is reported at once, naming its key. */
export function resolvePiscesConfig(json: PiscesConfigJson, where = "Pisces config"): { config: PiscesConfig; unknownKeys: string[] } {
  const r = new T.ConfigReader(json, where);
  r.ignore(...T.BOOKKEEPING_KEYS, "architectures");
  r.string("model_type", undefined, ["pisces"]);
  const text = r.raw("text_config");
  let textConfig: LlamaConfig | undefined;
  let textUnknown: string[] = [];
  if (text === undefined || text === null || typeof text !== "object" || Array.isArray(text)) r.fail("text_config must be a Llama config object");
  else
    try {
      const resolved = resolveLlamaConfig(text as LlamaConfigJson, `${where}: text_config`);
      textConfig = resolved.config;
      textUnknown = resolved.unknownKeys.map((k) => `text_config.${k}`);
    } catch (e) {
      if (!(e instanceof T.ConfigError)) throw e;
      for (const p of e.problems) r.fail(`text_config.${p}`);
    }
  const layer = (key: string) => {
    const v = r.int(key, -1, { min: -T.CONFIG_LIMITS.layers, max: T.CONFIG_LIMITS.layers });
    if (v === 0) r.fail(`${key} = 0 would take the patch embeddings, not an encoder layer: use -1 (last layer) or -2 (penultimate)`);
    return v;
  };
  const understandingFeatureLayer = layer("understanding_feature_layer");
  const generationFeatureLayer = layer("generation_feature_layer");
  const generationPoolKernel = r.int("generation_pool_kernel", 4, { max: 64 });
  const vocab = textConfig?.vocabSize ?? Number.POSITIVE_INFINITY;
  const imageStartTokenId = r.int("image_start_token_id", undefined, { min: 0 });
  const imageEndTokenId = r.int("image_end_token_id", undefined, { min: 0 });
  for (const [key, id] of [
    ["image_start_token_id", imageStartTokenId],
    ["image_end_token_id", imageEndTokenId],
  ] as const)
    if (id >= vocab) r.fail(`${key} = ${id} is outside the LLM's vocabulary of ${vocab} (resize the embeddings after adding [IMG] and [/IMG])`);
  if (imageStartTokenId === imageEndTokenId) r.fail(`image_start_token_id and image_end_token_id are both ${imageStartTokenId}: they must differ`);
  const projectorHiddenAct = r.string("projector_hidden_act", "gelu", ["gelu", "gelu_pytorch_tanh"]);
  const weight = (key: string, fallback: number) => r.number(key, fallback, { min: 0, max: 1e6 });
  const textLossWeight = weight("text_loss_weight", 1);
  const imageLossWeight = weight("image_loss_weight", 1);
  const imageCosineLossWeight = weight("image_cosine_loss_weight", 0);
  const generationInputNoiseStd = weight("generation_input_noise_std", 0);
  const generationScheduledSampling = r.number("generation_scheduled_sampling", 0, { min: 0, max: 1 });
  const generationRolloutSampling = r.number("generation_rollout_sampling", 0, { min: 0, max: 1 });
  const generationInputFeedback = r.bool("generation_input_feedback", true);
  const generationCaptionLoss = r.bool("generation_caption_loss", false);
  const generationTargetNormalization = r.bool("generation_target_normalization", false);
  const generationPrompt = r.string("generation_prompt", GENERATION_PROMPT);
  const captioningPrompt = r.string("captioning_prompt", CAPTIONING_PROMPT);
  if (!generationPrompt.includes("{caption}")) r.fail("generation_prompt must contain {caption}, where the caption goes");
  for (const [key, p] of [
    ["generation_prompt", generationPrompt],
    ["captioning_prompt", captioningPrompt],
  ] as const)
    if (p.includes(IMAGE_START_TOKEN) || p.includes(IMAGE_END_TOKEN))
      r.fail(`${key} must not contain ${IMAGE_START_TOKEN} or ${IMAGE_END_TOKEN}: the image is placed by the processor`);
  r.ignore("text_config");
  const { unknownKeys } = r.finish();
  return {
    config: {
      textConfig: textConfig!,
      understandingFeatureLayer,
      generationFeatureLayer,
      generationPoolKernel,
      imageStartTokenId,
      imageEndTokenId,
      projectorHiddenAct,
      textLossWeight,
      imageLossWeight,
      imageCosineLossWeight,
      generationInputNoiseStd,
      generationScheduledSampling,
      generationRolloutSampling,
      generationInputFeedback,
      generationCaptionLoss,
      generationTargetNormalization,
      generationPrompt,
      captioningPrompt,
    },
    unknownKeys: [...unknownKeys, ...textUnknown],
  };
}
