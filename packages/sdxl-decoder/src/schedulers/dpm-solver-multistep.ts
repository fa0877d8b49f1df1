// DPM-Solver++ (Lu et al. 2022), multistep, order 2 with the midpoint update, as diffusers'
// DPMSolverMultistepScheduler with its defaults (algorithm dpmsolver++, lower-order final steps,
// final sigma 0). Works in the data-prediction (x̂0) space with half-log-SNR steps λ = log(α/σ).
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
  trainingSigmas,
} from "./scheduler.js";

/** (α_t, σ_t) of the variance-preserving process for a sigma of the variance-exploding one. */
function alphaSigma(sigma: number): [number, number] {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  return [alpha, sigma * alpha];
}

export class DPMSolverMultistepScheduler extends TrainedSchedule implements Scheduler {
  readonly solverOrder = 2;
  private readonly trainSigmas: number[];
  timesteps: number[] = [];
  sigmas: number[] = [];
  readonly initNoiseSigma = 1;
  private stepIndex = 0;
  private lowerOrderNums = 0;
  private previousX0: T.Tensor | null = null;

  constructor(readonly config: SchedulerConfigJson = {}) {
    super(config, "linspace", [
      "algorithm_type",
      "solver_order",
      "solver_type",
      "use_karras_sigmas",
      "thresholding",
      "final_sigmas_type",
      "euler_at_final",
      "lower_order_final",
    ]);
    const check = (key: string, allowed: unknown[]) => {
      if (config[key] !== undefined && !allowed.includes(config[key]))
        throw new SchedulerConfigError(`DPMSolverMultistepScheduler: ${key} = ${JSON.stringify(config[key])} is not supported (${allowed.join(", ")})`);
    };
    check("algorithm_type", ["dpmsolver++"]);
    check("solver_order", [2]);
    check("solver_type", ["midpoint"]);
    check("use_karras_sigmas", [false]);
    check("thresholding", [false]);
    check("final_sigmas_type", ["zero"]);
    check("euler_at_final", [false]);
    check("lower_order_final", [true]);
    this.trainSigmas = trainingSigmas(this.alphasCumprod);
  }

  static fromConfig(json: SchedulerConfigJson): DPMSolverMultistepScheduler {
    checkSchedulerClass(json, "DPMSolverMultistepScheduler");
    return new DPMSolverMultistepScheduler(json);
  }

  setTimesteps(numInferenceSteps: number): void {
    const N = this.numTrainTimesteps;
    const n = numInferenceSteps;
    checkSteps(n, N);
    // n + 1 points with the last dropped, as diffusers does for linspace and leading
    if (this.timestepSpacing === "linspace")
      this.timesteps = linspaceDescending(N - 1, n + 1)
        .map(roundHalfEven)
        .slice(0, n);
    else if (this.timestepSpacing === "leading") this.timesteps = leadingTimesteps(N, n + 1, this.stepsOffset).slice(0, n);
    else if (this.timestepSpacing === "trailing") this.timesteps = trailingTimesteps(N, n);
    else throw new SchedulerConfigError(`timestep_spacing '${String(this.timestepSpacing)}' is not supported`);
    this.sigmas = [...this.timesteps.map((t) => this.trainSigmas[t]!), 0];
    this.stepIndex = 0;
    this.lowerOrderNums = 0;
    this.previousX0?.dispose();
    this.previousX0 = null;
  }

  scaleModelInput(sample: T.Tensor, _timestep: number): T.Tensor {
    return sample;
  }

  step(modelOutput: T.Tensor, _timestep: number, sample: T.Tensor): SchedulerStepOutput {
    const i = this.stepIndex;
    const n = this.timesteps.length;
    if (i >= n) throw new RangeError(`DPMSolverMultistepScheduler: no step ${i} (call setTimesteps, and step at most ${n} times)`);
    const [alphaS0, sigmaS0] = alphaSigma(this.sigmas[i]!);
    const [alphaT, sigmaT] = alphaSigma(this.sigmas[i + 1]!);
    const lambda = (a: number, s: number) => Math.log(a) - Math.log(s);
    const h = lambda(alphaT, sigmaT) - lambda(alphaS0, sigmaS0);
    const lowerOrderFinal = i === n - 1; // final sigma 0: the last step is first order
    const out = T.scope(() => {
      const x = sample.to("float32");
      // data prediction x̂0 from the model output
      const x0 = this.predictionType === "epsilon" ? x.sub(modelOutput.mul(sigmaS0)).div(alphaS0) : x.mul(alphaS0).sub(modelOutput.mul(sigmaS0));
      const expm1 = Math.exp(-h) - 1;
      let prev: T.Tensor;
      if (this.lowerOrderNums < 1 || lowerOrderFinal || !this.previousX0) {
        prev = x.mul(sigmaT / sigmaS0).sub(x0.mul(alphaT * expm1));
      } else {
        const [alphaS1, sigmaS1] = alphaSigma(this.sigmas[i - 1]!);
        const h0 = lambda(alphaS0, sigmaS0) - lambda(alphaS1, sigmaS1);
        const r0 = h0 / h;
        const d1 = x0.sub(this.previousX0).mul(1 / r0);
        prev = x
          .mul(sigmaT / sigmaS0)
          .sub(x0.mul(alphaT * expm1))
          .sub(d1.mul(0.5 * alphaT * expm1));
      }
      return { prevSample: prev.to(modelOutput.dtype), predOriginalSample: x0 };
    });
    this.previousX0?.dispose();
    this.previousX0 = T.keep(out.predOriginalSample.clone());
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.stepIndex++;
    return out;
  }

  addNoise(original: T.Tensor, noise: T.Tensor, timesteps: readonly number[]): T.Tensor {
    return T.scope(() => {
      const shape = [timesteps.length, ...new Array(original.ndim - 1).fill(1)];
      const pairs = timesteps.map((t) => {
        const i = this.timesteps.indexOf(t);
        if (i < 0) throw new RangeError(`addNoise: timestep ${t} is not in the current schedule`);
        return alphaSigma(this.sigmas[i]!);
      });
      const a = T.tensor(Float32Array.from(pairs.map((p) => p[0])), { device: original.device }).reshape(shape);
      const s = T.tensor(Float32Array.from(pairs.map((p) => p[1])), { device: original.device }).reshape(shape);
      return original.mul(a).add(noise.mul(s));
    });
  }
}
