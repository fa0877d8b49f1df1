// DDIM (Song et al. 2020), deterministic (eta = 0), as diffusers' DDIMScheduler: x_{t-1} =
// sqrt(ᾱ_prev) x̂0 + sqrt(1 - ᾱ_prev) ε̂, with x̂0 and ε̂ from an epsilon or v prediction.
import * as T from "@pisces/tensor-cuda";
import {
  checkSteps,
  leadingTimesteps,
  linspaceDescending,
  roundHalfEven,
  type Scheduler,
  SchedulerConfigError,
  type SchedulerConfigJson,
  type SchedulerStepOutput,
  trailingTimesteps,
  checkSchedulerClass,
  TrainedSchedule,
} from "./scheduler.js";

const f = Math.fround;

export class DDIMScheduler extends TrainedSchedule implements Scheduler {
  readonly clipSample: boolean;
  readonly clipSampleRange: number;
  private readonly alphas: number[];
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  readonly initNoiseSigma = 1;
  private numInferenceSteps = 0;

  constructor(readonly config: SchedulerConfigJson = {}) {
    super(config, "leading", ["thresholding", "rescale_betas_zero_snr", "clip_sample", "clip_sample_range", "set_alpha_to_one"]);
    const unsupported = ["thresholding", "rescale_betas_zero_snr"].filter((k) => config[k] === true);
    if (unsupported.length) throw new SchedulerConfigError(`DDIMScheduler: ${unsupported.join(", ")} not supported yet`);
    this.alphas = this.alphasCumprod;
    this.clipSample = (config.clip_sample as boolean | undefined) ?? true;
    this.clipSampleRange = (config.clip_sample_range as number | undefined) ?? 1;
    this.finalAlphaCumprod = ((config.set_alpha_to_one as boolean | undefined) ?? true) ? 1 : this.alphas[0]!;
  }

  static fromConfig(json: SchedulerConfigJson): DDIMScheduler {
    checkSchedulerClass(json, "DDIMScheduler");
    return new DDIMScheduler(json);
  }

  setTimesteps(numInferenceSteps: number): void {
    const N = this.numTrainTimesteps;
    const n = numInferenceSteps;
    checkSteps(n, N);
    if (this.timestepSpacing === "linspace") this.timesteps = linspaceDescending(N - 1, n).map(roundHalfEven);
    else if (this.timestepSpacing === "leading") this.timesteps = leadingTimesteps(N, n, this.stepsOffset);
    else if (this.timestepSpacing === "trailing") this.timesteps = trailingTimesteps(N, n);
    else throw new SchedulerConfigError(`timestep_spacing '${String(this.timestepSpacing)}' is not supported`);
    this.numInferenceSteps = n;
  }

  scaleModelInput(sample: T.Tensor, _timestep: number): T.Tensor {
    return sample;
  }

  step(modelOutput: T.Tensor, timestep: number, sample: T.Tensor): SchedulerStepOutput {
    if (this.numInferenceSteps === 0) throw new RangeError("DDIMScheduler: call setTimesteps before step");
    const alphaT = this.alphas[timestep];
    if (alphaT === undefined) throw new RangeError(`DDIMScheduler: timestep ${timestep} is outside [0, ${this.numTrainTimesteps})`);
    const prevT = timestep - Math.floor(this.numTrainTimesteps / this.numInferenceSteps);
    const alphaPrev = prevT >= 0 ? this.alphas[prevT]! : this.finalAlphaCumprod;
    const betaT = f(1 - alphaT);
    return T.scope(() => {
      let pred: T.Tensor;
      let eps: T.Tensor;
      if (this.predictionType === "epsilon") {
        pred = sample.sub(modelOutput.mul(f(Math.sqrt(betaT)))).div(f(Math.sqrt(alphaT)));
        eps = modelOutput;
      } else {
        pred = sample.mul(f(Math.sqrt(alphaT))).sub(modelOutput.mul(f(Math.sqrt(betaT))));
        eps = modelOutput.mul(f(Math.sqrt(alphaT))).add(sample.mul(f(Math.sqrt(betaT))));
      }
      if (this.clipSample) pred = pred.clamp(-this.clipSampleRange, this.clipSampleRange);
      const direction = eps.mul(f(Math.sqrt(f(1 - alphaPrev))));
      const prev = pred.mul(f(Math.sqrt(alphaPrev))).add(direction);
      return { prevSample: prev, predOriginalSample: pred };
    });
  }

  addNoise(original: T.Tensor, noise: T.Tensor, timesteps: readonly number[]): T.Tensor {
    return T.scope(() => {
      const shape = [timesteps.length, ...new Array(original.ndim - 1).fill(1)];
      const a = timesteps.map((t) => {
        const v = this.alphas[t];
        if (v === undefined) throw new RangeError(`addNoise: timestep ${t} is outside [0, ${this.numTrainTimesteps})`);
        return v;
      });
      const sqrtA = T.tensor(Float32Array.from(a.map((v) => f(Math.sqrt(v)))), { device: original.device }).reshape(shape);
      const sqrt1mA = T.tensor(Float32Array.from(a.map((v) => f(Math.sqrt(f(1 - v))))), { device: original.device }).reshape(shape);
      return original.mul(sqrtA).add(noise.mul(sqrt1mA));
    });
  }
}
