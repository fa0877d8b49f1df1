// A training recipe: one JSON file that says what a run trains, on what data, with which
// optimizer and schedule, for how long, and where it writes. Validated up front (every problem
// named with its key; unknown keys refused), paths resolved against the recipe's folder.
import { dirname, isAbsolute, resolve } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { type DataSource, expandShardPattern } from "./data.js";

export interface RecipeJson {
  /** What is trained: a Pisces stage (the LLM and the three MLPs, the default) or the decoder's UNet. */
  kind?: "pisces" | "decoder" | "vae" | "siglip" | "gen_clip";
  /** gen_clip only: share of patches masked for reconstruction (default 0.75, as MAE). */
  mask_ratio?: number;
  /** gen_clip only: weight of the contrastive image-text term (default 1 with a text tower, none without). */
  contrastive_weight?: number;
  /** VAE only: weight of the KL term (default 1e-6, as Stable Diffusion's VAE). */
  kl_weight?: number;
  /** VAE only: "mse" (default) or "l1" reconstruction loss. */
  reconstruction_loss?: "mse" | "l1";
  /** Decoder and VAE: training images are resized to resolution x resolution for the VAE (default 256). */
  resolution?: number;
  /** Decoder only: share of samples whose vectors are replaced by zeros, for classifier-free guidance (default 0.1). */
  conditioning_dropout?: number;
  /**
   * Decoder only: share of samples conditioned on the Pisces LLM's own vectors, rolled out from the
   * record's caption as at inference, instead of the image's true gen-CLIP vectors (default 0; the
   * model folder must then hold a trained LLM). With it, dropped samples get the empty caption's
   * rolled-out vectors (the sampler's unconditional branch) instead of zeros.
   */
  rollout_conditioning?: number;
  /** Decoder only: keep an exponential moving average of the UNet's weights with this decay; the final folder gets the average. */
  ema_decay?: number;
  /** A name for logs (e.g. "pisces-stage1"). */
  name?: string;
  /** The Pisces folder to start from (the @pisces/model layout). */
  model: string;
  /** Where checkpoints, metrics and the final folder go. */
  output_dir: string;
  /**
   * Sources with mixture weights (sampled per record): JSONL manifests, or WebDataset tar shards
   * (a list of paths or one pattern with a {000..099} range; `task` for samples whose json names
   * none, default "generation"; `shuffle_buffer` samples, default 1000).
   */
  data: ({ manifest: string; weight?: number } | { shards: string | string[]; weight?: number; task?: "captioning" | "generation"; shuffle_buffer?: number })[];
  /** Records of other tasks are skipped (default: captioning, generation, chat). */
  tasks?: ("captioning" | "generation" | "chat")[];
  global_batch_size: number;
  /** Records per forward pass; global / micro passes are accumulated per step (default: global). */
  micro_batch_size?: number;
  max_steps: number;
  optimizer?: { lr?: number; weight_decay?: number; decay_1d?: boolean; betas?: [number, number]; eps?: number };
  /** The paper's: constant with warm-up ratio 0.03. */
  schedule?: { type?: "constant_with_warmup" | "cosine_with_warmup"; warmup_ratio?: number };
  /** Gradient clipping by global norm (default 1.0; 0 disables). */
  max_grad_norm?: number;
  seed?: number;
  /** Shuffle each manifest per epoch (default true); false reads records in file order. */
  shuffle?: boolean;
  save_every?: number;
  keep_last?: number;
  log_every?: number;
  /** Pisces with generation_target_normalization: generation images measured for the target statistics before training (default 256). */
  target_statistics_records?: number;
  /** Held-out sources scored under no-grad every `every` steps (default 0: at the end) on up to max_records (default 64) records. */
  validation?: { data: RecipeJson["data"]; every?: number; max_records?: number };
  /** "bf16": the loss is computed under libtorch's bfloat16 autocast (float32 master weights and gradients); default "no" (float32). */
  mixed_precision?: "no" | "bf16";
  /** Pisces: activation checkpointing of the LLM's decoder layers (each keeps only its input; the backward runs it again). Default false. */
  gradient_checkpointing?: boolean;
  /** Records prepared ahead of the one in use (images decoded while the step runs); 0 reads one at a time; default micro_batch_size. */
  prefetch?: number;
  /** The run stops with an error when more than this share of the records read were bad (default 0.1). */
  max_skipped_fraction?: number;
  /** A step whose loss or gradients are NaN/inf is skipped; this many in a row stop the run (default 5). */
  max_nonfinite_steps?: number;
  /** Loss weights overriding the model's config. */
  text_loss_weight?: number;
  image_loss_weight?: number;
  /** Training options overriding the model's config (see @pisces/model's config): teacher-forcing noise, parallel scheduled sampling, rollout sampling. */
  generation_input_noise_std?: number;
  generation_scheduled_sampling?: number;
  generation_rollout_sampling?: number;
}

export interface Recipe {
  readonly kind: "pisces" | "decoder" | "vae" | "siglip" | "gen_clip";
  readonly maskRatio: number;
  /** null: the trainer's default (1 with a text tower). */
  readonly contrastiveWeight: number | null;
  readonly klWeight: number;
  readonly reconstructionLoss: "mse" | "l1";
  readonly resolution: number;
  readonly conditioningDropout: number;
  readonly rolloutConditioning: number;
  readonly emaDecay: number | null;
  readonly name: string;
  readonly model: string;
  readonly outputDir: string;
  readonly data: readonly DataSource[];
  /** Held-out data scored every `every` steps (0: at the end only) on up to `maxRecords` records; null: none. */
  readonly validation: { readonly data: readonly DataSource[]; readonly every: number; readonly maxRecords: number } | null;
  readonly tasks: readonly string[];
  readonly globalBatchSize: number;
  readonly microBatchSize: number;
  readonly accumulationSteps: number;
  readonly maxSteps: number;
  /** `decay1d`: weight decay on 1-D parameters too (biases, norm gains, logit scale and bias); off by default. */
  readonly optimizer: { lr: number; weightDecay: number; decay1d: boolean; betas: [number, number]; eps: number };
  readonly schedule: { type: "constant_with_warmup" | "cosine_with_warmup"; warmupSteps: number };
  readonly maxGradNorm: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly saveEvery: number;
  readonly keepLast: number;
  readonly logEvery: number;
  readonly maxSkippedFraction: number;
  readonly maxNonfiniteSteps: number;
  readonly prefetch: number;
  readonly mixedPrecision: "no" | "bf16";
  readonly gradientCheckpointing: boolean;
  readonly targetStatisticsRecords: number;
  readonly textLossWeight: number | null;
  readonly imageLossWeight: number | null;
  readonly generationInputNoiseStd: number | null;
  readonly generationScheduledSampling: number | null;
  readonly generationRolloutSampling: number | null;
}

export class RecipeError extends T.ConfigError {
  override name = "RecipeError";
}

/** Reads and checks a recipe file. */
export function readRecipe(path: string): Recipe {
  return resolveRecipe(T.readJsonFile(path, "recipe"), path);
}

export function resolveRecipe(json: unknown, path: string): Recipe {
  const r = new T.ConfigReader(json, path);
  const base = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const kind = r.string("kind", "pisces", ["pisces", "decoder", "vae", "siglip", "gen_clip"]);
  const only: Record<string, string[]> = {
    resolution: ["decoder", "vae"],
    conditioning_dropout: ["decoder"],
    rollout_conditioning: ["decoder"],
    ema_decay: ["decoder"],
    kl_weight: ["vae"],
    reconstruction_loss: ["vae"],
    gradient_checkpointing: ["pisces"],
  };
  for (const [k, kinds] of Object.entries(only))
    if (r.has(k) && !kinds.includes(kind)) r.fail(`${k} applies to kind ${kinds.map((x) => `"${x}"`).join(" or ")} only`);
  const maskRatio = r.number("mask_ratio", 0.75, { gt: 0, max: 1 });
  const contrastiveWeight = r.has("contrastive_weight") ? r.number("contrastive_weight", 1, { min: 0, max: 1e6 }) : null;
  const klWeight = r.number("kl_weight", 1e-6, { min: 0, max: 1e6 });
  const reconstructionLoss = r.string("reconstruction_loss", "mse", ["mse", "l1"]);
  const resolution = r.int("resolution", 256, { min: 8, max: 8192 });
  const conditioningDropout = r.number("conditioning_dropout", 0.1, { min: 0, max: 1 });
  const rolloutConditioning = r.number("rollout_conditioning", 0, { min: 0, max: 1 });
  const emaDecay = r.has("ema_decay") ? r.number("ema_decay", 0.999, { gt: 0, max: 0.999999999 }) : null;
  const name = r.string("name", kind);
  const model = r.string("model", undefined);
  const outputDir = r.string("output_dir", undefined);
  const data = readSources(r, "data", r.raw("data"), path, at);
  let validation: Recipe["validation"] = null;
  const v = r.object("validation");
  if (v) {
    validation = {
      data: readSources(r, "validation.data", v.raw("data"), path, at),
      every: v.int("every", 0, { min: 0, max: 1e9 }),
      maxRecords: v.int("max_records", 64, { max: 1e7 }),
    };
    for (const k of v.unreadKeys()) r.fail(`${k} is not a recipe key`);
  }
  const tasks = r.stringList("tasks", ["captioning", "generation", "chat"], ["captioning", "generation", "chat"]);
  const globalBatchSize = r.int("global_batch_size", undefined, { max: 1 << 20 });
  const microBatchSize = r.int("micro_batch_size", globalBatchSize, { max: 1 << 20 });
  if (globalBatchSize % microBatchSize !== 0) r.fail(`global_batch_size ${globalBatchSize} is not a multiple of micro_batch_size ${microBatchSize}`);
  const maxSteps = r.int("max_steps", undefined, { max: 1e9 });
  const o = r.object("optimizer");
  const optimizer = {
    lr: o ? o.number("lr", 2e-5, { gt: 0, max: 10 }) : 2e-5,
    weightDecay: o ? o.number("weight_decay", 0, { min: 0, max: 10 }) : 0,
    // Biases, norm gains and scalars (SigLIP's logit scale and bias) are not decayed unless asked,
    // as transformers' Trainer and open_clip do: decaying SigLIP's logit scale toward 0 (t = 1)
    // kept a small SigLIP at the trivial answer (loss ~ log(batch), retrieval at chance).
    decay1d: o ? o.bool("decay_1d", false) : false,
    betas: (o ? o.numberList("betas", [0.9, 0.999], { length: 2, min: 0, max: 0.999999 }) : [0.9, 0.999]) as [number, number],
    eps: o ? o.number("eps", 1e-8, { gt: 0, max: 1 }) : 1e-8,
  };
  const s = r.object("schedule");
  const type = s ? s.string("type", "constant_with_warmup", ["constant_with_warmup", "cosine_with_warmup"]) : "constant_with_warmup";
  const warmupRatio = s ? s.number("warmup_ratio", 0.03, { min: 0, max: 1 }) : 0.03;
  const maxGradNorm = r.number("max_grad_norm", 1, { min: 0, max: 1e9 });
  const seed = r.int("seed", 0, { min: 0, max: 2 ** 31 - 1 });
  const shuffle = r.bool("shuffle", true);
  const saveEvery = r.int("save_every", Math.max(1, Math.min(maxSteps || 1, 1000)), { max: 1e9 });
  const keepLast = r.int("keep_last", 2, { max: 1000 });
  const logEvery = r.int("log_every", 1, { max: 1e9 });
  const maxSkippedFraction = r.number("max_skipped_fraction", 0.1, { min: 0, max: 1 });
  const targetStatisticsRecords = r.int("target_statistics_records", 256, { max: 1e7 });
  const mixedPrecision = r.string("mixed_precision", "no", ["no", "bf16"]);
  const gradientCheckpointing = r.bool("gradient_checkpointing", false);
  const prefetch = r.int("prefetch", microBatchSize, { min: 0, max: 1 << 16 });
  const maxNonfiniteSteps = r.int("max_nonfinite_steps", 5, { max: 1e9 });
  const textLossWeight = r.has("text_loss_weight") ? r.number("text_loss_weight", 1, { min: 0, max: 1e6 }) : null;
  const imageLossWeight = r.has("image_loss_weight") ? r.number("image_loss_weight", 1, { min: 0, max: 1e6 }) : null;
  const generationInputNoiseStd = r.has("generation_input_noise_std") ? r.number("generation_input_noise_std", 0, { min: 0, max: 1e6 }) : null;
  const generationScheduledSampling = r.has("generation_scheduled_sampling") ? r.number("generation_scheduled_sampling", 0, { min: 0, max: 1 }) : null;
  const generationRolloutSampling = r.has("generation_rollout_sampling") ? r.number("generation_rollout_sampling", 0, { min: 0, max: 1 }) : null;
  for (const nested of [o, s]) for (const k of nested?.unreadKeys() ?? []) r.fail(`${k} is not a recipe key`);
  r.ignore("$schema", "comment");
  for (const k of r.unreadKeys()) r.fail(`${k} is not a recipe key (check the spelling; see the trainer README for the keys)`);
  if (r.problems.length) throw new RecipeError(r.problems, path);
  return {
    kind,
    maskRatio,
    contrastiveWeight,
    klWeight,
    reconstructionLoss,
    resolution,
    conditioningDropout,
    rolloutConditioning,
    emaDecay,
    name,
    model: at(model),
    outputDir: at(outputDir),
    data,
    validation,
    tasks,
    globalBatchSize,
    microBatchSize,
    accumulationSteps: globalBatchSize / microBatchSize,
    maxSteps,
    optimizer,
    schedule: { type, warmupSteps: Math.round(warmupRatio * maxSteps) },
    maxGradNorm,
    seed,
    shuffle,
    saveEvery,
    keepLast,
    logEvery,
    maxSkippedFraction,
    maxNonfiniteSteps,
    prefetch,
    mixedPrecision,
    gradientCheckpointing,
    targetStatisticsRecords,
    textLossWeight,
    imageLossWeight,
    generationInputNoiseStd,
    generationScheduledSampling,
    generationRolloutSampling,
  };
}

/** Reads a list of data sources (manifests or shards) at `key`, paths against the recipe's folder. */
function readSources(r: T.ConfigReader, key: string, rawData: unknown, path: string, at: (p: string) => string): DataSource[] {
  const data: DataSource[] = [];
  if (!Array.isArray(rawData) || rawData.length === 0) r.fail(`${key} must be a non-empty list of {manifest, weight} or {shards, weight}`);
  else
    rawData.forEach((d, i) => {
      const dr = new T.ConfigReader(d, path, `${key}.${i}.`, r.problems);
      const weight = dr.number("weight", 1, { gt: 0, max: 1e9 });
      if (dr.has("shards")) {
        const raw = dr.raw("shards");
        const list = typeof raw === "string" ? [raw] : Array.isArray(raw) && raw.every((x) => typeof x === "string") ? (raw as string[]) : null;
        if (!list || list.length === 0) r.fail(`${key}.${i}.shards must be a path, a pattern like shard-{000..009}.tar, or a list of paths`);
        let shards: string[] = [];
        try {
          shards = (list ?? []).flatMap((x) => expandShardPattern(x)).map((x) => at(x));
        } catch (e) {
          r.fail(`${key}.${i}.shards: ${(e as Error).message}`);
        }
        const task = dr.string("task", "generation", ["captioning", "generation"]);
        const shuffleBuffer = dr.int("shuffle_buffer", 1000, { max: 1_000_000 });
        data.push({ shards, weight, task, shuffleBuffer });
      } else {
        const manifest = dr.string("manifest", undefined);
        data.push({ manifest: at(manifest), weight });
      }
      for (const k of dr.unreadKeys()) r.fail(`${k} is not a recipe key`);
    });
  return data;
}
