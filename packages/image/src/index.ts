// @pisces/image: turns image files and pixels into normalized tensors for vision encoders.
export { centerCrop, type ImageInput, ImageLoadError, loadImage, type LoadOptions, resize, type ResampleName, resampleFromPil, type RgbImage } from "./image.js";
export { toPixelValues, type NormalizeOptions } from "./pixels.js";
