// @pisces/tensor-cuda: PyTorch-style tensors for Node.js over libtorch (CPU and CUDA).
export { type Device, Generator, pow, type RandomOptions, type Scalar, type Shape, Tensor, type TensorOptions } from "./tensor.js";
export { type DType, DTYPE_SIZE, isFloatingPoint } from "./dtype.js";
export {
  arange,
  type AutocastOptions,
  autocast,
  cat,
  cudaDeviceCount,
  empty,
  fromFile,
  emptyLike,
  eye,
  full,
  fullLike,
  getNumThreads,
  isCudaAvailable,
  isGradEnabled,
  libtorchVersion,
  linspace,
  MAX_NUM_THREADS,
  manualSeed,
  noGrad,
  ones,
  onesLike,
  rand,
  randint,
  randLike,
  randn,
  randnLike,
  setGradEnabled,
  setNumThreads,
  stack,
  synchronize,
  tensor,
  where,
  zeros,
  zerosLike,
} from "./creation.js";
export {
  avgPool2d,
  conv2d,
  crossEntropy,
  dropout,
  embedding,
  gelu,
  groupNorm,
  interpolate,
  layerNorm,
  linear,
  logSoftmax,
  mseLoss,
  pad,
  relu,
  rmsNorm,
  scaledDotProductAttention,
  silu,
  softmax,
} from "./functional.js";
export { checkpoint, discardCheckpoints } from "./checkpoint.js";
export { type DecoderLayerWeights, fusedDecoderLayer, fusedDecoderLayerApplies } from "./fused.js";
export {
  dequantizeGgml,
  GGML_FORMATS,
  type GgmlFormat,
  ggmlFormatOf,
  packedRowBytes,
  packTogether,
  QuantizedEmbedding,
  QuantizedLinear,
  quantizedLinear,
  quantizeGgml,
} from "./quantized.js";
export { inference, keep, type MemoryStats, memoryStats, Owned, scope, scopeAsync } from "./memory.js";
export { OutOfMemoryError, SafetensorsError, type SafetensorsErrorCode, StateDictError, TorchError } from "./errors.js";
export { loadSafetensors, MAX_HEADER_SIZE, saveSafetensors, SafetensorsFile, SafetensorsReader, type TensorInfo } from "./safetensors.js";
export { BOOKKEEPING_KEYS, CONFIG_LIMITS, ConfigError, ConfigReader, MAX_CONFIG_BYTES, readJsonFile } from "./config.js";
export { checkedDir, checkedFile, FileError, removeStaleTemporaries } from "./files.js";
export {
  configReader,
  loadPretrained,
  openWeights,
  type PretrainedOptions,
  readConfigJson,
  resolveLoadOptions,
  withOptionalPrefix,
} from "./pretrained.js";
export * as nn from "./nn/index.js";
export * as optim from "./optim/index.js";
export * as distributed from "./distributed.js";
