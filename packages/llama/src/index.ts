// @pisces/llama: Llama 3.x over @pisces/tensor-cuda, numerically equal to transformers.
export {
  type LlamaConfig,
  type LlamaConfigJson,
  LlamaConfigError,
  llama31_8bInstruct,
  llama32_1b,
  resolveLlamaConfig,
  type RopeScaling,
  smolLM2_135m,
} from "./config.js";
export { StaticCache } from "./cache.js";
export { type GgmlQuantizationConfig, type QuantizationBits, quantize, quantizedModules, saveQuantized } from "./quantize.js";
export { AutoTokenizer, type ChatMessage } from "./tokenizer.js";
export { dequantize, GGUFError, type GGUFFile, type GGUFTensorInfo, type GGUFValue, ggufConfig, ggufTokenizer, loadGGUF, readGGUF } from "./gguf.js";
export { type Decoder, decodeSteps, type GenerateOptions, type GenerationStep, generate, generateStream, processLogits, type StreamChunk } from "./generate.js";
export {
  applyRotaryPosEmb,
  causalLmLoss,
  LlamaAttention,
  LlamaDecoderLayer,
  LlamaForCausalLM,
  type LlamaForwardInput,
  LlamaMLP,
  LlamaModel,
  type LlamaOutput,
  LlamaRMSNorm,
  LlamaRotaryEmbedding,
  type ModelOptions,
} from "./model.js";
export { ChatTemplate, ChatTemplateError, type ChatTemplateLimits, DEFAULT_CHAT_TEMPLATE_LIMITS } from "./chat-template.js";
