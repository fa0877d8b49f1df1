// The pieces a trainer needs to fine-tune the decoder on (image, gen-CLIP vectors) pairs, as in
// diffusers' training scripts: uniform timestep sampling, noise, the DDPM forward process
// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, and the epsilon or v-prediction target.
import * as T from "@pisces/tensor-cuda";
import { type PredictionType, type SchedulerConfigJson, trainingSchedule } from "./schedulers/scheduler.js";

export class NoiseSchedule {
  /** ᾱ_t for every training timestep (float32). */
  readonly alphasCumprod: number[];
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;

  constructor(config: SchedulerConfigJson = {}) {
    const schedule = trainingSchedule(config, "leading");
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = schedule.predictionType;
    this.alphasCumprod = schedule.alphasCumprod;
  }

  /** Uniform integer timesteps in [0, numTrainTimesteps), one per sample (int64). */
  sampleTimesteps(batch: number, options: { generator?: T.Generator; device?: T.Device } = {}): T.Tensor {
    return T.randint(0, this.numTrainTimesteps, [batch], options);
  }

  private coefficients(timesteps: T.Tensor, like: T.Tensor): [T.Tensor, T.Tensor] {
    return T.scope(() => {
      const a = T.tensor(Float32Array.from(this.alphasCumprod), { device: like.device }).indexSelect(0, timesteps.to({ device: like.device, dtype: "int64" }));
      const shape = [timesteps.size(0), ...new Array(like.ndim - 1).fill(1)];
      return [a.sqrt().reshape(shape).to(like.dtype), a.neg().add(1).sqrt().reshape(shape).to(like.dtype)] as [T.Tensor, T.Tensor];
    });
  }

  /** x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε (diffusers' DDPMScheduler.add_noise). */
  addNoise(original: T.Tensor, noise: T.Tensor, timesteps: T.Tensor): T.Tensor {
    return T.scope(() => {
      const [a, s] = this.coefficients(timesteps, original);
      return original.mul(a).add(noise.mul(s));
    });
  }

  /** What the UNet learns to predict: ε, or v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0. */
  target(original: T.Tensor, noise: T.Tensor, timesteps: T.Tensor): T.Tensor {
    if (this.predictionType === "epsilon") return noise.clone();
    return T.scope(() => {
      const [a, s] = this.coefficients(timesteps, original);
      return noise.mul(a).sub(original.mul(s));
    });
  }
}
