// The small interface every diffusion scheduler implements (as diffusers' schedulers), and the
// pieces they share: the training noise schedule (betas -> cumulative alphas) and configs that
// mirror scheduler_config.json.
import * as T from "@pisces/tensor-cuda";

export type PredictionType = "epsilon" | "v_prediction";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

/** The fields of diffusers' scheduler_config.json that the schedulers here read. */
export interface SchedulerConfigJson {
  _class_name?: string;
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: "linear" | "scaled_linear";
  prediction_type?: PredictionType;
  timestep_spacing?: TimestepSpacing;
  steps_offset?: number;
  [key: string]: unknown;
}

export interface SchedulerStepOutput {
  prevSample: T.Tensor;
  predOriginalSample: T.Tensor;
}

export interface Scheduler {
  /** The timesteps of the current schedule, most noisy first. */
  readonly timesteps: number[];
  /** Multiply initial Gaussian noise by this to start sampling. */
  readonly initNoiseSigma: number;
  setTimesteps(numInferenceSteps: number): void;
  /** Scales the model input at the current step (identity for DDIM, 1 / sqrt(sigma² + 1) for Euler). */
  scaleModelInput(sample: T.Tensor, timestep: number): T.Tensor;
  /** One denoising step from `sample` at `timestep`, given the model's output; steps advance in order. */
  step(modelOutput: T.Tensor, timestep: number, sample: T.Tensor): SchedulerStepOutput;
  /** Noises clean samples to the given training timesteps (for training the decoder). */
  addNoise(original: T.Tensor, noise: T.Tensor, timesteps: readonly number[]): T.Tensor;
}

export class SchedulerConfigError extends Error {
  override name = "SchedulerConfigError";
}

/** Cumulative product of alphas (float32), as diffusers computes it with torch. */
export function alphasCumprod(config: Required<Pick<SchedulerConfigJson, "num_train_timesteps" | "beta_start" | "beta_end" | "beta_schedule">>): number[] {
  return T.scope(() => {
    const { num_train_timesteps: n, beta_start: b0, beta_end: b1, beta_schedule: schedule } = config;
    let betas: T.Tensor;
    if (schedule === "linear") betas = T.linspace(b0, b1, n, { dtype: "float32" });
    else if (schedule === "scaled_linear") betas = T.linspace(b0 ** 0.5, b1 ** 0.5, n, { dtype: "float32" }).pow(2);
    else throw new SchedulerConfigError(`beta_schedule '${String(schedule)}' is not supported (linear, scaled_linear)`);
    return Array.from(betas.neg().add(1).cumprod(0).toArray() as Float32Array);
  });
}

/** numpy's round: halves to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function checkSteps(steps: number, numTrain: number): void {
  if (!Number.isInteger(steps) || steps <= 0) throw new RangeError(`setTimesteps: the number of steps must be a positive integer, got ${steps}`);
  if (steps > numTrain) throw new RangeError(`setTimesteps: ${steps} steps exceed the ${numTrain} training timesteps`);
}

/** np.linspace(0, stop, count)[::-1] in float64 (the last point is `stop` exactly, as numpy). */
export function linspaceDescending(stop: number, count: number): number[] {
  const delta = stop / (count - 1 || 1);
  return Array.from({ length: count }, (_, i) => (i === count - 1 && count > 1 ? stop : i * delta)).reverse();
}

/** (arange(steps) * (numTrain // steps))[::-1] + offset. */
export function leadingTimesteps(numTrain: number, steps: number, offset: number): number[] {
  const ratio = Math.floor(numTrain / steps);
  return Array.from({ length: steps }, (_, i) => i * ratio + offset).reverse();
}

/** round(arange(numTrain, 0, -numTrain / steps)) - 1. */
export function trailingTimesteps(numTrain: number, steps: number): number[] {
  const ratio = numTrain / steps;
  const ts: number[] = [];
  for (let i = 0; numTrain - i * ratio > 0; i++) ts.push(roundHalfEven(numTrain + i * -ratio) - 1);
  return ts;
}

/** The inference timesteps for a spacing, as diffusers' Euler scheduler computes them (float32 values). */
export function spacedTimesteps(spacing: TimestepSpacing, numTrain: number, steps: number, stepsOffset: number): number[] {
  checkSteps(steps, numTrain);
  if (spacing === "linspace") return linspaceDescending(numTrain - 1, steps).map(Math.fround);
  if (spacing === "leading") return leadingTimesteps(numTrain, steps, stepsOffset);
  if (spacing === "trailing") return trailingTimesteps(numTrain, steps);
  throw new SchedulerConfigError(`timestep_spacing '${String(spacing)}' is not supported (leading, trailing, linspace)`);
}

/** The settings all three schedulers share, validated, with the training ᾱ_t. */
export interface TrainingSchedule {
  numTrainTimesteps: number;
  predictionType: PredictionType;
  timestepSpacing: TimestepSpacing;
  stepsOffset: number;
  alphasCumprod: number[];
}

export function trainingSchedule(config: SchedulerConfigJson, defaultSpacing: TimestepSpacing): TrainingSchedule {
  // the shared fields, typed and bounded (a 1e9-step training schedule is a bad file, not a model)
  const r = new T.ConfigReader(config, "scheduler config");
  const predictionType = r.string<PredictionType>("prediction_type", "epsilon", ["epsilon", "v_prediction"]);
  const numTrainTimesteps = r.int("num_train_timesteps", 1000, { min: 2, max: 100_000 });
  const timestepSpacing = r.string<TimestepSpacing>("timestep_spacing", defaultSpacing, ["leading", "trailing", "linspace"]);
  const stepsOffset = r.int("steps_offset", 0, { min: 0, max: numTrainTimesteps - 1 });
  const betaStart = r.number("beta_start", 0.0001, { gt: 0, max: 1 });
  const betaEnd = r.number("beta_end", 0.02, { gt: 0, max: 1 });
  const betaSchedule = r.string<"linear" | "scaled_linear">("beta_schedule", "linear", ["linear", "scaled_linear"]);
  r.expect("trained_betas", null, "explicit betas are not implemented; use beta_start, beta_end and beta_schedule");
  if (r.problems.length) throw new SchedulerConfigError(`invalid scheduler config: ${r.problems.join("; ")}`);
  return {
    numTrainTimesteps,
    predictionType,
    timestepSpacing,
    stepsOffset,
    alphasCumprod: alphasCumprod({ num_train_timesteps: numTrainTimesteps, beta_start: betaStart, beta_end: betaEnd, beta_schedule: betaSchedule }),
  };
}

/** sqrt((1 - ᾱ) / ᾱ) per training timestep, in float32 as diffusers computes it with torch. */
export function trainingSigmas(alphas: readonly number[]): number[] {
  return T.scope(() => {
    const a = T.tensor(Float32Array.from(alphas));
    return Array.from(a.neg().add(1).div(a).pow(0.5).toArray() as Float32Array);
  });
}

/** Keys every scheduler reads (trainingSchedule) or that carry no meaning (bookkeeping). */
const SHARED_KEYS = [
  "_class_name",
  "_diffusers_version",
  "num_train_timesteps",
  "beta_start",
  "beta_end",
  "beta_schedule",
  "prediction_type",
  "timestep_spacing",
  "steps_offset",
  "trained_betas",
];

/**
 * The training noise schedule of a scheduler_config.json (the keys every scheduler shares), without
 * the algorithm's own settings: to run the same trained model with another scheduler.
 */
export function trainingScheduleConfig(json: SchedulerConfigJson): SchedulerConfigJson {
  const out: SchedulerConfigJson = {};
  for (const key of SHARED_KEYS) if (!key.startsWith("_") && json[key] !== undefined) out[key] = json[key];
  return out;
}

/**
 * The settings every scheduler here shares, read and validated from scheduler_config.json once
 * (each scheduler extends this, then reads its own keys).
 */
export abstract class TrainedSchedule {
  readonly numTrainTimesteps: number;
  readonly predictionType: PredictionType;
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
  /** Keys of scheduler_config.json this scheduler does not read (reported, not silently dropped). */
  readonly unknownConfigKeys: string[];
  /** ᾱ_t per training timestep (float32 values). */
  protected readonly alphasCumprod: number[];
  /** `ownKeys`: the keys the subclass reads or checks itself. */
  protected constructor(config: SchedulerConfigJson, defaultSpacing: TimestepSpacing, ownKeys: readonly string[]) {
    const schedule = trainingSchedule(config, defaultSpacing);
    const known = new Set([...SHARED_KEYS, ...ownKeys]);
    this.unknownConfigKeys = Object.keys(config ?? {}).filter((k) => !known.has(k));
    this.numTrainTimesteps = schedule.numTrainTimesteps;
    this.predictionType = schedule.predictionType;
    this.timestepSpacing = schedule.timestepSpacing;
    this.stepsOffset = schedule.stepsOffset;
    this.alphasCumprod = schedule.alphasCumprod;
  }
}

/** `fromConfig`'s check: a config written for another scheduler class is refused. */
export function checkSchedulerClass(json: SchedulerConfigJson, name: string): void {
  if (json._class_name !== undefined && json._class_name !== name) throw new SchedulerConfigError(`config is for ${json._class_name}, not ${name}`);
}
