// @pisces/sdxl-decoder: SDXL diffusion decoding over @pisces/tensor-cuda, conditioned on image vectors.
export { DDIMScheduler } from "./schedulers/ddim.js";
export { DPMSolverMultistepScheduler } from "./schedulers/dpm-solver-multistep.js";
export { EulerDiscreteScheduler } from "./schedulers/euler-discrete.js";
export {
  alphasCumprod,
  type PredictionType,
  type Scheduler,
  SchedulerConfigError,
  type SchedulerConfigJson,
  type SchedulerStepOutput,
  spacedTimesteps,
  trainingScheduleConfig,
  type TimestepSpacing,
} from "./schedulers/scheduler.js";
export {
  type AutoencoderKLConfig,
  type AutoencoderKLConfigJson,
  resolveAutoencoderKLConfig,
  resolveUNetConfig,
  sdxlBaseUNet,
  sdxlVae,
  type UNetConfig,
  UNetConfigError,
  type UNetConfigJson,
  VaeConfigError,
} from "./config.js";
export { AutoencoderKL, DiagonalGaussian } from "./vae.js";
export { timestepEmbedding, UNet2DConditionModel, type UNetInput } from "./unet.js";
export { NoiseSchedule } from "./training.js";
export { type DecodeOptions, DecoderError, type DecodeResult, type DecodeStep, schedulerFromConfig, SdxlDecoder, toPng } from "./decoder.js";
