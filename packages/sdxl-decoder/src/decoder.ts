// SdxlDecoder: turns a sequence of image vectors (Pisces' 64 gen-CLIP vectors) into pixels with
// an SDXL UNet conditioned Emu2-style (the vectors as cross-attention context, their mean in the
// pooled slot, time ids from the size), classifier-free guidance against an unconditional input,
// a scheduler, and the VAE decoder. The loop is an async generator yielding every step.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import sharp from "sharp";
import { DDIMScheduler } from "./schedulers/ddim.js";
import { DPMSolverMultistepScheduler } from "./schedulers/dpm-solver-multistep.js";
import { EulerDiscreteScheduler } from "./schedulers/euler-discrete.js";
import { type Scheduler, SchedulerConfigError, type SchedulerConfigJson } from "./schedulers/scheduler.js";
import { UNet2DConditionModel } from "./unet.js";
import { AutoencoderKL } from "./vae.js";

type Tensor = T.Tensor;

export interface DecodeOptions {
  /** Unconditional vectors for classifier-free guidance (default: zeros like `cond`). */
  uncond?: Tensor;
  /** Pooled vector (B, P) for SDXL's addition embedding (default: the mean of `cond`). */
  pooled?: Tensor;
  /** Guidance scale; 1 (or less) disables classifier-free guidance. Default 3.0 (Emu2). */
  guidanceScale?: number;
  /** Denoising steps (default 50). */
  steps?: number;
  /** Use another scheduler than the folder's (e.g. a DPMSolverMultistepScheduler). */
  scheduler?: Scheduler;
  /** Seeds the initial noise. */
  seed?: number;
  /** Output size in pixels (default: the UNet's sample_size x the VAE factor, else 1024 x 1024); multiples of the VAE and UNet down-sampling. */
  height?: number;
  width?: number;
  /** Start from these latents (B, 4, h, w) instead of seeded noise (they are multiplied by initNoiseSigma). */
  latents?: Tensor;
}

export interface DecodeStep {
  step: number;
  timestep: number;
  /** Current latents (B, 4, h, w); valid until the next step. */
  latents: Tensor;
}

export interface DecodeResult {
  /** (B, 3, H, W) float32 in [0, 1]. */
  images: Tensor;
  /** Final latents (B, 4, h, w), before the VAE. */
  latents: Tensor;
}

export class DecoderError extends Error {
  override name = "DecoderError";
}

/** Makes the scheduler a scheduler_config.json names. */
export function schedulerFromConfig(json: SchedulerConfigJson, where?: string): Scheduler {
  try {
    switch (json._class_name) {
      case "EulerDiscreteScheduler":
      case undefined:
        return EulerDiscreteScheduler.fromConfig(json);
      case "DDIMScheduler":
        return DDIMScheduler.fromConfig(json);
      case "DPMSolverMultistepScheduler":
        return DPMSolverMultistepScheduler.fromConfig(json);
      default:
        throw new DecoderError(
          `scheduler ${JSON.stringify(json._class_name)} is not supported (EulerDiscreteScheduler, DDIMScheduler, DPMSolverMultistepScheduler)`,
        );
    }
  } catch (e) {
    // name the file the settings came from
    if (where && (e instanceof SchedulerConfigError || e instanceof DecoderError)) e.message = `${where}: ${e.message}`;
    throw e;
  }
}

export class SdxlDecoder {
  constructor(
    readonly unet: UNet2DConditionModel,
    readonly vae: AutoencoderKL,
    readonly scheduler: Scheduler,
  ) {}

  /** The image side made when none is asked: the UNet's sample_size x the VAE factor (as diffusers' pipelines), else 1024. */
  get defaultImageSize(): number {
    const s = this.unet.config.sampleSize;
    return s === null ? 1024 : s * this.vae.downsampleFactor;
  }

  /** A diffusers-style folder with unet/, vae/ and scheduler/ (other parts, e.g. text encoders, are ignored). */
  static fromPretrained(dir: string, options: { dtype?: T.DType; device?: T.Device; vaeDtype?: T.DType } = {}): SdxlDecoder {
    for (const part of ["unet", "vae", "scheduler"])
      if (!existsSync(join(dir, part)))
        throw new DecoderError(`${dir}: the '${part}' folder is missing; expected a diffusers-style folder with unet/, vae/ and scheduler/`);
    const schedulerPath = join(dir, "scheduler", "scheduler_config.json");
    if (!existsSync(schedulerPath)) throw new DecoderError(`${schedulerPath} is missing`);
    const unet = UNet2DConditionModel.fromPretrained(join(dir, "unet"), options);
    // SDXL's VAE overflows in float16: keep it in float32 unless told otherwise
    const vae = AutoencoderKL.fromPretrained(join(dir, "vae"), { device: options.device, dtype: options.vaeDtype ?? "float32" });
    const schedulerJson = T.readJsonFile(schedulerPath, "scheduler config");
    if (schedulerJson === null || typeof schedulerJson !== "object" || Array.isArray(schedulerJson))
      throw new DecoderError(`${schedulerPath}: the scheduler config must be a JSON object`);
    return new SdxlDecoder(unet, vae, schedulerFromConfig(schedulerJson as SchedulerConfigJson, schedulerPath));
  }

  private check(cond: Tensor, o: DecodeOptions): { height: number; width: number; steps: number; guidance: number } {
    const D = this.unet.config.crossAttentionDim;
    if (cond.ndim !== 3 || cond.size(2) !== D) throw new DecoderError(`cond must be (batch, vectors, ${D}), got [${cond.shape}]`);
    if (o.uncond && o.uncond.shape.join() !== cond.shape.join())
      throw new DecoderError(`uncond must have cond's shape [${cond.shape}], got [${o.uncond.shape}]`);
    const steps = o.steps ?? 50;
    if (!Number.isInteger(steps) || steps <= 0) throw new DecoderError(`steps must be a positive integer, got ${steps}`);
    const guidance = o.guidanceScale ?? 3;
    if (!Number.isFinite(guidance)) throw new DecoderError(`guidanceScale must be a finite number, got ${guidance}`);
    const factor = this.vae.downsampleFactor * this.unet.downsampleFactor;
    const height = o.height ?? this.defaultImageSize;
    const width = o.width ?? this.defaultImageSize;
    if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0 || height % factor || width % factor)
      throw new DecoderError(`height and width must be positive multiples of ${factor}, got ${height}x${width}`);
    return { height, width, steps, guidance };
  }

  /** The denoising loop: yields each step, returns the decoded images. Tensors of a step are freed by the next. */
  async *decodeSteps(cond: Tensor, options: DecodeOptions = {}): AsyncGenerator<DecodeStep, DecodeResult> {
    const { height, width, steps, guidance } = this.check(cond, options);
    const scheduler = options.scheduler ?? this.scheduler;
    const unet = this.unet;
    const dtype = unet.conv_in.weight.dtype;
    const device = unet.conv_in.weight.device;
    const B = cond.size(0);
    const cfg = guidance > 1;
    const f = this.vae.downsampleFactor;
    const owned = new T.Owned(); // the loop's state across steps; freed however the loop ends
    try {
      const { context, pooled, timeIds } = T.noGrad(() =>
        T.scope(() => {
          const c = cond.to({ dtype, device });
          const u = options.uncond ? options.uncond.to({ dtype, device }) : T.zerosLike(c);
          const p = options.pooled ? options.pooled.to({ dtype, device }) : c.mean(1);
          const ids = T.tensor([height, width, 0, 0, height, width], { dtype, device }).unsqueeze(0).expand([B, 6]);
          return cfg
            ? { context: T.cat([u, c]), pooled: T.cat([u.mean(1), p]), timeIds: T.cat([ids, ids]) }
            : { context: c, pooled: p, timeIds: ids.contiguous() };
        }),
      );
      for (const t of [context, pooled, timeIds]) owned.hold(t);
      scheduler.setTimesteps(steps);
      const shape = [B, this.unet.config.inChannels, height / f, width / f];
      let latents = owned.hold(
        T.noGrad(() =>
          T.scope(() => {
            const start =
              options.latents ??
              T.randn(shape, { dtype: "float32", device, generator: new T.Generator({ seed: options.seed ?? Math.floor(Math.random() * 2 ** 31), device }) });
            if (start.shape.join() !== shape.join()) throw new DecoderError(`latents must be [${shape}], got [${start.shape}]`);
            return start.to({ dtype: "float32", device }).mul(scheduler.initNoiseSigma);
          }),
        ),
      );
      for (const [i, t] of scheduler.timesteps.entries()) {
        const next = T.noGrad(() =>
          T.scope(() => {
            const input = scheduler.scaleModelInput(cfg ? T.cat([latents, latents]) : latents, t);
            let noise = unet
              .forward({ sample: input, timestep: t, encoderHiddenStates: context, addedCondKwargs: { textEmbeds: pooled, timeIds } })
              .sample.to("float32");
            if (cfg) {
              const [noiseUncond, noiseCond] = noise.chunk(2) as [Tensor, Tensor];
              noise = noiseUncond.add(noiseCond.sub(noiseUncond).mul(guidance));
            }
            return scheduler.step(noise, t, latents).prevSample;
          }),
        );
        latents = owned.replace(latents, next);
        yield { step: i, timestep: t, latents };
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const images = T.noGrad(() =>
        T.scope(() =>
          this.vae.decode(latents.to(this.vae.decoder.conv_in.weight.dtype).div(this.vae.config.scalingFactor)).to("float32").div(2).add(0.5).clamp(0, 1),
        ),
      );
      return { images, latents: latents.clone() };
    } finally {
      owned.dispose();
    }
  }

  /** Runs the whole loop and returns the images (and PNG files of them). */
  async decode(cond: Tensor, options: DecodeOptions = {}): Promise<DecodeResult & { png: Buffer[] }> {
    const loop = this.decodeSteps(cond, options);
    let r = await loop.next();
    while (!r.done) r = await loop.next();
    const result = r.value;
    return { ...result, png: await toPng(result.images) };
  }
}

/** Images (B, 3, H, W) in [0, 1] -> PNG files. */
export async function toPng(images: Tensor): Promise<Buffer[]> {
  const [B, C, H, W] = images.shape as [number, number, number, number];
  if (images.ndim !== 4 || C !== 3) throw new DecoderError(`toPng: images must be (batch, 3, H, W), got [${images.shape}]`);
  const bytes = T.scope(() => images.mul(255).round().clamp(0, 255).to("uint8").permute([0, 2, 3, 1]).contiguous().toArray() as Uint8Array);
  const out: Buffer[] = [];
  for (let b = 0; b < B; b++) {
    const frame = Buffer.from(bytes.buffer, bytes.byteOffset + b * H * W * 3, H * W * 3);
    out.push(
      await sharp(frame, { raw: { width: W, height: H, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return out;
}
