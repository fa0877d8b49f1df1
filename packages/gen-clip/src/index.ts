// @pisces/gen-clip: the CLIP vision tower and the gen-CLIP pooling used by Pisces' generation path.
export { ClipModel, type ClipOutput, clipContrastiveLoss, ClipTextEmbeddings, ClipTextModel, type ClipTextOutput } from "./clip-model.js";
export {
  type ClipActivation,
  type ClipConfig,
  ClipConfigError,
  type ClipTextConfig,
  type ClipTextConfigJson,
  clipVitB16,
  type ClipVisionConfig,
  type ClipVisionConfigJson,
  genClip448,
  resolveClipConfig,
  resolveClipVisionConfig,
} from "./config.js";
export { GenClipEncoder, type GenClipOptions, gridToTokens, poolTokens, tokensToGrid } from "./gen-clip-encoder.js";
export { CLIP_MEAN, CLIP_STD, ClipImageProcessor, type ClipImageProcessorConfig } from "./image-processor.js";
export { ClipEncoder, type ClipLayerConfig, ClipVisionModel, type ClipVisionOutput, ClipVisionTransformer, type ModelOptions } from "./model.js";
