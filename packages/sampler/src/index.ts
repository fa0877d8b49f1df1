// @pisces/sampler: Pisces inference pipelines (text to image, image to text) as async generators of events.
export { SamplerError } from "./errors.js";
export { describeImages, type ImageToTextEvent, type ImageToTextOptions, imageToText, type SamplingOptions } from "./image-to-text.js";
export { generateImages, type SchedulerName, type TextToImageEvent, type TextToImageOptions, textToImage } from "./text-to-image.js";
