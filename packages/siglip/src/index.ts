// @pisces/siglip: SigLIP vision and text towers, tokenizer and processors over @pisces/tensor-cuda, equal to transformers.
export {
  type Activation,
  resolveSiglipTextConfig,
  resolveSiglipVisionConfig,
  SiglipConfigError,
  type SiglipConfigJson,
  type SiglipTextConfig,
  type SiglipTextConfigJson,
  type SiglipVisionConfig,
  type SiglipVisionConfigJson,
  siglipBase224,
  siglipSo400m384,
} from "./config.js";
export { SiglipImageProcessor, type SiglipImageProcessorConfig } from "./image-processor.js";
export {
  type FeatureLayer,
  type ModelOptions,
  SiglipModel,
  type SiglipOutput,
  SiglipTextTransformer,
  SiglipVisionModel,
  SiglipVisionTransformer,
  type TextOutput,
  type VisionOutput,
} from "./model.js";
export { type SiglipInputs, SiglipProcessor } from "./processor.js";
export {
  type BatchEncodeOptions,
  parseSentencePieceModel,
  type SentencePiece,
  type SentencePieceModel,
  SiglipTokenizer,
  type SiglipTokenizerConfig,
} from "./tokenizer.js";
