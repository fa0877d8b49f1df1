// @pisces/gen-clip: the CLIP vision tower and the gen-CLIP pooling used by Pisces' generation path.
export {
  type ClipActivation,
  ClipConfigError,
  clipVitB16,
  type ClipVisionConfig,
  type ClipVisionConfigJson,
  genClip448,
  resolveClipVisionConfig,
} from "./config.js";
export { GenClipEncoder, type GenClipOptions, gridToTokens, poolTokens, tokensToGrid } from "./gen-clip-encoder.js";
export { CLIP_MEAN, CLIP_STD, ClipImageProcessor, type ClipImageProcessorConfig } from "./image-processor.js";
export { ClipVisionModel, type ClipVisionOutput, ClipVisionTransformer, type ModelOptions } from "./model.js";
