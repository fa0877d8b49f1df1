// @pisces/image: turns image files and pixels into normalized tensors for vision encoders.
export {
  centerCrop,
  DEFAULT_LIMIT_INPUT_PIXELS,
  detectImageFormat,
  type ImageFormat,
  type ImageInput,
  ImageLoadError,
  loadImage,
  loadImageResized,
  type LoadOptions,
  type ResizeTarget,
  resize,
  type ResampleName,
  type RgbImage,
} from "./image.js";
export { readImageProcessorConfig } from "./config.js";
export { type NormalizeOptions, toPixelValues } from "./pixels.js";
export { type PilFilter, pilFilterFromCode, resizePil } from "./resample.js";
