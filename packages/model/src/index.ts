// @pisces/model: Pisces itself, the LLM and its two visual paths joined, with the folder layout, processor and losses.
export {
  CAPTIONING_PROMPT,
  GENERATION_PROMPT,
  IMAGE_END_TOKEN,
  IMAGE_START_TOKEN,
  type PiscesConfig,
  PiscesConfigError,
  type PiscesConfigJson,
  resolvePiscesConfig,
} from "./config.js";
export {
  type ForwardInput,
  type FolderFiles,
  type ImageEmbeddingStep,
  type ImageEmbeddings,
  type ImageEmbeddingsOptions,
  type ModelOptions,
  PiscesError,
  PiscesForConditionalGeneration,
  type PiscesOutput,
  type PiscesParts,
  PiscesProjector,
} from "./model.js";
export {
  type EncodedRecord,
  type MessagePart,
  type PiscesBatch,
  type PiscesMessage,
  PiscesProcessor,
  PiscesProcessorError,
  type PiscesRecord,
  type ProcessorOptions,
} from "./processor.js";
