// Euler (Karras et al. 2022, Algorithm 2 without churn) over the discrete training noise levels,
// as diffusers' EulerDiscreteScheduler (SDXL's default): sigma = sqrt((1 - ᾱ) / ᾱ) interpolated at
// the inference timesteps, a final sigma of 0, epsilon or v-prediction.
import * as T from "@pisces/tensor-cuda";
import {
  type Scheduler,
  SchedulerConfigError,
  type SchedulerConfigJson,
  type SchedulerStepOutput,
  spacedTimesteps,
  checkSchedulerClass,
  TrainedSchedule,
  trainingSigmas,
} from "./scheduler.js";

export class EulerDiscreteScheduler extends TrainedSchedule implements Scheduler {
  /** sqrt((1 - ᾱ_t) / ᾱ_t) for every training timestep (float32). */
  private readonly trainSigmas: number[];
  timesteps: number[] = [];
  /** One per inference step, then a final 0. */
  sigmas: number[] = [];
  private stepIndex = 0;

  constructor(readonly config: SchedulerConfigJson = {}) {
    super(config, "linspace", [
      "use_karras_sigmas",
      "use_exponential_sigmas",
      "use_beta_sigmas",
      "rescale_betas_zero_snr",
      "interpolation_type",
      "final_sigmas_type",
      "timestep_type",
      "sigma_min",
      "sigma_max",
    ]);
    const unsupported = ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr"].filter((k) => config[k] === true);
    if (unsupported.length) throw new SchedulerConfigError(`EulerDiscreteScheduler: ${unsupported.join(", ")} not supported yet`);
    if (config.interpolation_type !== undefined && config.interpolation_type !== "linear")
      throw new SchedulerConfigError(`EulerDiscreteScheduler: interpolation_type '${String(config.interpolation_type)}' is not supported (linear)`);
    for (const [key, allowed] of [
      ["timestep_type", ["discrete"]],
      ["sigma_min", [null]],
      ["sigma_max", [null]],
    ] as const)
      if (config[key] !== undefined && !(allowed as readonly unknown[]).includes(config[key]))
        throw new SchedulerConfigError(`EulerDiscreteScheduler: ${key} = ${JSON.stringify(config[key])} is not supported (${allowed.join(", ") || "null"})`);
    if (config.final_sigmas_type !== undefined && config.final_sigmas_type !== "zero")
      throw new SchedulerConfigError(`EulerDiscreteScheduler: final_sigmas_type '${String(config.final_sigmas_type)}' is not supported (zero)`);
    this.trainSigmas = trainingSigmas(this.alphasCumprod);
  }

  /** From a scheduler_config.json object (diffusers' `from_config`). */
  static fromConfig(json: SchedulerConfigJson): EulerDiscreteScheduler {
    checkSchedulerClass(json, "EulerDiscreteScheduler");
    return new EulerDiscreteScheduler(json);
  }

  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = spacedTimesteps(this.timestepSpacing, this.numTrainTimesteps, numInferenceSteps, this.stepsOffset);
    // np.interp over the training sigmas, in float64, then float32
    const interp = (t: number) => {
      if (t <= 0) return this.trainSigmas[0]!;
      if (t >= this.numTrainTimesteps - 1) return this.trainSigmas[this.numTrainTimesteps - 1]!;
      const j = Math.floor(t);
      const slope = this.trainSigmas[j + 1]! - this.trainSigmas[j]!;
      return slope * (t - j) + this.trainSigmas[j]!;
    };
    this.sigmas = [...this.timesteps.map((t) => Math.fround(interp(t))), 0];
    this.stepIndex = 0;
  }

  get initNoiseSigma(): number {
    const max = Math.max(...this.sigmas);
    return this.timestepSpacing === "linspace" || this.timestepSpacing === "trailing" ? max : Math.fround(Math.sqrt(Math.fround(max * max) + 1));
  }

  private sigma(): number {
    const s = this.sigmas[this.stepIndex];
    if (s === undefined || this.stepIndex >= this.timesteps.length)
      throw new RangeError(`EulerDiscreteScheduler: no step ${this.stepIndex} (call setTimesteps, and step at most ${this.timesteps.length} times)`);
    return s;
  }

  scaleModelInput(sample: T.Tensor, _timestep: number): T.Tensor {
    const sigma = this.sigma();
    return sample.div(Math.fround(Math.sqrt(Math.fround(sigma * sigma) + 1)));
  }

  step(modelOutput: T.Tensor, _timestep: number, sample: T.Tensor): SchedulerStepOutput {
    const sigma = this.sigma();
    const next = this.sigmas[this.stepIndex + 1]!;
    const out = T.scope(() => {
      const x = sample.to("float32");
      const pred =
        this.predictionType === "epsilon"
          ? x.sub(modelOutput.mul(sigma))
          : modelOutput.mul(-sigma / Math.sqrt(sigma * sigma + 1)).add(x.div(sigma * sigma + 1));
      const derivative = x.sub(pred).div(sigma);
      const prev = x.add(derivative.mul(Math.fround(next - sigma))).to(modelOutput.dtype);
      return { prevSample: prev, predOriginalSample: pred };
    });
    this.stepIndex++;
    return out;
  }

  addNoise(original: T.Tensor, noise: T.Tensor, timesteps: readonly number[]): T.Tensor {
    return T.scope(() => {
      const sigmas = timesteps.map((t) => {
        const i = this.timesteps.indexOf(t);
        if (i < 0) throw new RangeError(`addNoise: timestep ${t} is not in the current schedule`);
        return this.sigmas[i]!;
      });
      const s = T.tensor(Float32Array.from(sigmas), { device: original.device }).reshape([sigmas.length, ...new Array(original.ndim - 1).fill(1)]);
      return original.add(noise.mul(s));
    });
  }
}
