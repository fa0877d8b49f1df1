// Text to image with Pisces: the LLM predicts each prompt's gen-CLIP vectors (and the empty
// caption's, for classifier-free guidance, in the same batch), and the SDXL-architecture decoder
// denoises guided between the two sets, Emu2 / BLIP3-o style (guidance 3, Euler, 50 steps).
// An async generator of progress events; an AbortSignal stops it between steps and frees everything.
import type { PiscesForConditionalGeneration } from "@pisces/model";
import { type Scheduler, type SchedulerConfigJson, schedulerFromConfig, toPng, trainingScheduleConfig } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { abortError, checkSignal, SamplerError, yieldToEventLoop } from "./errors.js";

export type SchedulerName = "euler" | "ddim" | "dpm";

export interface TextToImageOptions {
  prompts: string | readonly string[];
  /** Images per prompt (default 1). */
  numImagesPerPrompt?: number;
  /**
   * One seed per image (prompt-major: prompt 0's images first), or one base seed: image j then
   * uses seed + j. The same seeds give the same images whatever the chunking. Default: random.
   */
  seed?: number | readonly number[];
  /** Denoising steps (default 50). */
  steps?: number;
  /** Classifier-free guidance between the caption's and the empty caption's vectors (default 3; 1 disables). */
  guidanceScale?: number;
  /** The folder's scheduler settings with another algorithm, or a scheduler object (default: the folder's). */
  scheduler?: SchedulerName | Scheduler;
  /** Pixels; multiples of 8 (of the VAE x UNet down-sampling). Default: the UNet's sample_size x the VAE factor. */
  width?: number;
  height?: number;
  /** Decode a preview PNG every N denoising steps (0, the default: none; each preview costs one VAE decode). */
  previewEvery?: number;
  /** Images denoised together (default 4): bounds memory for big requests. */
  batchSize?: number;
  signal?: AbortSignal;
}

export type TextToImageEvent =
  | { stage: "vectors"; i: number; of: number }
  | { stage: "denoise"; step: number; of: number /** images of this chunk, [first, last) */; images: [number, number]; preview?: Buffer[] }
  | { stage: "done"; images: Buffer[]; seeds: number[] };

function positiveInt(value: unknown, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 1) throw new SamplerError(`${what} must be a positive integer, got ${String(value)}`);
  return value as number;
}

const SCHEDULER_CLASSES = { euler: "EulerDiscreteScheduler", ddim: "DDIMScheduler", dpm: "DPMSolverMultistepScheduler" } as const;

/** The folder's training schedule run by the named algorithm (with that algorithm's default settings). */
function makeScheduler(model: PiscesForConditionalGeneration, choice: SchedulerName | Scheduler | undefined): Scheduler | undefined {
  if (choice === undefined || typeof choice === "object") return choice;
  const className = Object.hasOwn(SCHEDULER_CLASSES, choice) ? SCHEDULER_CLASSES[choice] : undefined;
  if (!className) throw new SamplerError(`scheduler must be "euler", "ddim" or "dpm", got ${JSON.stringify(choice)}`);
  const raw = model.folderFiles.get("decoder/scheduler/scheduler_config.json");
  const folder = (raw ? JSON.parse(raw.toString("utf8")) : {}) as SchedulerConfigJson;
  return schedulerFromConfig({ ...trainingScheduleConfig(folder), _class_name: className }, "decoder/scheduler/scheduler_config.json");
}

/**
 * Generates PNG images from text prompts. Yields `vectors` events while the LLM predicts the
 * vectors, `denoise` events per step (per chunk of `batchSize` images), then `done` with the images.
 */
export async function* textToImage(model: PiscesForConditionalGeneration, options: TextToImageOptions): AsyncGenerator<TextToImageEvent> {
  const decoder = model.decoder;
  if (!decoder) throw new SamplerError("this model was loaded without its decoder (fromPretrained(dir, {decoder: false})): it cannot make images");
  const prompts = typeof options.prompts === "string" ? [options.prompts] : options.prompts;
  if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => typeof p !== "string"))
    throw new SamplerError("prompts must be a string or a non-empty list of strings");
  const perPrompt = positiveInt(options.numImagesPerPrompt ?? 1, "numImagesPerPrompt");
  const steps = positiveInt(options.steps ?? 50, "steps");
  const batchSize = positiveInt(options.batchSize ?? 4, "batchSize");
  const guidance = options.guidanceScale ?? 3;
  if (typeof guidance !== "number" || !(guidance > 0) || !Number.isFinite(guidance))
    throw new SamplerError(`guidanceScale must be a positive number (1 disables guidance), got ${String(guidance)}`);
  const previewEvery = options.previewEvery ?? 0;
  if (!Number.isInteger(previewEvery) || previewEvery < 0) throw new SamplerError(`previewEvery must be 0 or a positive integer, got ${previewEvery}`);
  const size = decoder.defaultImageSize;
  const width = options.width ?? size;
  const height = options.height ?? size;
  const factor = decoder.vae.downsampleFactor * decoder.unet.downsampleFactor;
  for (const [what, v] of [
    ["width", width],
    ["height", height],
  ] as const)
    if (!Number.isInteger(v) || v < factor || v % factor !== 0 || v > 8192)
      throw new SamplerError(`${what} must be a multiple of ${factor} between ${factor} and 8192 pixels, got ${v}`);
  const total = prompts.length * perPrompt;
  const seeds =
    options.seed === undefined
      ? Array.from({ length: total }, () => Math.floor(Math.random() * 2 ** 31))
      : typeof options.seed === "number"
        ? Array.from({ length: total }, (_, j) => (options.seed as number) + j)
        : [...options.seed];
  if (seeds.length !== total) throw new SamplerError(`seed lists ${seeds.length} seeds for ${total} images (${prompts.length} prompts x ${perPrompt})`);
  for (const s of seeds) if (!Number.isSafeInteger(s) || s < 0) throw new SamplerError(`seeds must be non-negative integers, got ${s}`);
  const scheduler = makeScheduler(model, options.scheduler);
  const signal = options.signal;
  checkSignal(signal);

  const owned = new T.Owned();
  try {
    // 1. the vectors of every prompt, in chunks of batchSize prompts (the empty caption rides in each chunk)
    const conditional: T.Tensor[] = [];
    let unconditional: T.Tensor | null = null;
    const m = model.numGenerationVectors;
    const chunks = Math.ceil(prompts.length / batchSize);
    for (let start = 0; start < prompts.length; start += batchSize) {
      const chunk = prompts.slice(start, start + batchSize);
      const loop = model.imageEmbeddingSteps({ captions: chunk, guidanceScale: guidance });
      try {
        for (;;) {
          const r = loop.next();
          if (r.done) {
            conditional.push(owned.hold(r.value.conditional));
            if (r.value.unconditional) unconditional = owned.replace(unconditional, r.value.unconditional);
            break;
          }
          yield { stage: "vectors", i: (start / batchSize) * m + r.value.i, of: chunks * m };
          await yieldToEventLoop();
          if (signal?.aborted) throw abortError(signal);
        }
      } finally {
        loop.return(undefined as never);
      }
    }
    const cond = owned.hold(T.scope(() => T.cat(conditional, 0)));
    for (const c of conditional) owned.release(c).dispose();

    // 2. denoise in chunks of batchSize images, each image from its own seeded noise
    const images: Buffer[] = [];
    const f = decoder.vae.downsampleFactor;
    const latentShape = [1, decoder.unet.config.inChannels, height / f, width / f];
    for (let first = 0; first < total; first += batchSize) {
      const last = Math.min(first + batchSize, total);
      const rows = Array.from({ length: last - first }, (_, j) => Math.floor((first + j) / perPrompt));
      const chunk = new T.Owned();
      try {
        const c = chunk.hold(T.scope(() => cond.index([T.tensor(rows, { dtype: "int64", device: cond.device })])));
        const u = unconditional ? chunk.hold(T.scope(() => unconditional!.expand(c.shape).contiguous())) : undefined;
        const noise = chunk.hold(
          T.scope(() =>
            T.cat(
              seeds.slice(first, last).map((s) => T.randn(latentShape, { dtype: "float32", generator: new T.Generator({ seed: s }) })),
              0,
            ),
          ),
        );
        const loop = decoder.decodeSteps(c, { uncond: u, guidanceScale: guidance, steps, scheduler, height, width, latents: noise });
        try {
          for (;;) {
            const r = await loop.next();
            if (r.done) {
              const result = r.value;
              try {
                images.push(...(await toPng(result.images)));
              } finally {
                result.images.dispose();
                result.latents.dispose();
              }
              break;
            }
            const event: TextToImageEvent = { stage: "denoise", step: r.value.step + 1, of: steps, images: [first, last] };
            if (previewEvery > 0 && (r.value.step + 1) % previewEvery === 0 && r.value.step + 1 < steps) event.preview = await preview(model, r.value.latents);
            yield event;
            if (signal?.aborted) throw abortError(signal);
          }
        } finally {
          await loop.return(undefined as never);
        }
      } finally {
        chunk.dispose();
      }
    }
    yield { stage: "done", images, seeds };
  } finally {
    owned.dispose();
  }
}

/** The current latents through the VAE, as PNGs (a true preview, at the cost of one decode). */
async function preview(model: PiscesForConditionalGeneration, latents: T.Tensor): Promise<Buffer[]> {
  const vae = model.decoder!.vae;
  const images = T.noGrad(() =>
    T.scope(() => vae.decode(latents.to(vae.decoder.conv_in.weight.dtype).div(vae.config.scalingFactor)).to("float32").div(2).add(0.5).clamp(0, 1)),
  );
  try {
    return await toPng(images);
  } finally {
    images.dispose();
  }
}

/** Runs textToImage to the end and returns the PNGs. */
export async function generateImages(model: PiscesForConditionalGeneration, options: TextToImageOptions): Promise<Buffer[]> {
  for await (const event of textToImage(model, options)) if (event.stage === "done") return event.images;
  throw new SamplerError("textToImage ended without images");
}
