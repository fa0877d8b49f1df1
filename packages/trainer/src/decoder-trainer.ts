// Trains the decoder's UNet to reconstruct images from the frozen gen-CLIP's pooled vectors, as
// Pisces does (its diffusion model is updated, its encoder frozen): VAE latents of each image,
// DDPM noise at uniform timesteps, the UNet conditioned Emu2-style (the vectors as cross-attention
// context, their mean in the pooled slot, SDXL time ids), MSE against the scheduler's target, and
// conditioning dropout (zeros) so classifier-free guidance works. Same recipes, checkpoints and
// resume as the Pisces stages; the final folder is the Pisces folder with the trained UNet.
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { ClipImageProcessor, GenClipEncoder } from "@pisces/gen-clip";
import { loadImageResized, toPixelValues } from "@pisces/image";
import { type PiscesConfigJson, resolvePiscesConfig } from "@pisces/model";
import {
  AutoencoderKL,
  NoiseSchedule,
  resolveUNetConfig,
  SdxlDecoder,
  type SchedulerConfigJson,
  schedulerFromConfig,
  UNet2DConditionModel,
  type UNetConfigJson,
} from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { DataError, isImage } from "./data.js";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import type { Recipe } from "./recipe.js";

export interface DecoderLossInput {
  /** (B, 4, h, w) VAE latents, already multiplied by the VAE's scaling factor. */
  latents: T.Tensor;
  /** (B, m, D) gen-CLIP vectors. */
  vectors: T.Tensor;
  /** (B, 4, h, w) Gaussian noise. */
  noise: T.Tensor;
  /** (B) int64 training timesteps. */
  timesteps: T.Tensor;
  /** (B) 1 keeps a sample's vectors, 0 replaces them with zeros (conditioning dropout). */
  keep: T.Tensor;
  /** Pixels of the images, for SDXL's time ids. */
  height: number;
  width: number;
}

/** The denoising loss of one batch (differentiable in the UNet's parameters). */
export function decoderLoss(unet: UNet2DConditionModel, schedule: NoiseSchedule, b: DecoderLossInput): T.Tensor {
  return T.scope(() => {
    const B = b.latents.size(0);
    const dtype = unet.conv_in.weight.dtype;
    const cond = b.vectors.mul(b.keep.to(b.vectors.dtype).reshape([B, 1, 1])).to(dtype);
    const noisy = schedule.addNoise(b.latents, b.noise, b.timesteps).to(dtype);
    const timeIds = T.tensor([b.height, b.width, 0, 0, b.height, b.width], { dtype, device: b.latents.device }).unsqueeze(0).expand([B, 6]);
    const pred = unet.forward({
      sample: noisy,
      timestep: b.timesteps,
      encoderHiddenStates: cond,
      addedCondKwargs: { textEmbeds: cond.mean(1), timeIds },
    }).sample;
    return T.mseLoss(pred.to("float32"), schedule.target(b.latents, b.noise, b.timesteps).to("float32"));
  });
}

/** The decoder folder; a unet/ with only its config.json starts from that config (seeded), the VAE must be trained already. */
function loadOrCreateDecoder(dir: string, seed: number): SdxlDecoder {
  const unetDir = join(dir, "unet");
  if (existsSync(join(unetDir, "diffusion_pytorch_model.safetensors")) || existsSync(join(unetDir, "diffusion_pytorch_model.safetensors.index.json")))
    return SdxlDecoder.fromPretrained(dir);
  const { json, path } = T.readConfigJson(unetDir, "UNet2DConditionModel");
  T.manualSeed(seed);
  const unet = new UNet2DConditionModel(resolveUNetConfig(json as UNetConfigJson, path));
  try {
    const vae = AutoencoderKL.fromPretrained(join(dir, "vae"));
    const schedulerPath = join(dir, "scheduler", "scheduler_config.json");
    return new SdxlDecoder(unet, vae, schedulerFromConfig(T.readJsonFile(schedulerPath, "scheduler config") as SchedulerConfigJson, schedulerPath));
  } catch (e) {
    unet.dispose();
    throw e;
  }
}

export async function* trainDecoder(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const { json, path } = T.readConfigJson(recipe.model, "Pisces model");
  const { config } = resolvePiscesConfig(json as PiscesConfigJson, path);
  const genClip = GenClipEncoder.fromPretrained(join(recipe.model, "gen_clip"), {
    kernel: config.generationPoolKernel,
    featureLayer: config.generationFeatureLayer,
  });
  const clipProcessor = ClipImageProcessor.fromPretrained(join(recipe.model, "gen_clip"));
  const decoder = loadOrCreateDecoder(join(recipe.model, "decoder"), recipe.seed);
  const schedulerJson = T.readJsonFile(join(recipe.model, "decoder", "scheduler", "scheduler_config.json"), "scheduler config") as SchedulerConfigJson;
  const schedule = new NoiseSchedule(schedulerJson);
  const { unet, vae } = decoder;
  const size = recipe.resolution;
  const ema = new Map<string, T.Tensor>();
  try {
    const factor = vae.downsampleFactor * unet.downsampleFactor;
    if (size % factor) throw new DataError(`resolution ${size} is not a multiple of ${factor} (the VAE x UNet down-sampling)`);
    const named = [...unet.namedParameters()];
    if (recipe.emaDecay !== null) for (const [k, p] of named) ema.set(k, T.keep(T.noGrad(() => p.clone())));
    yield* runTraining<[T.Tensor, T.Tensor]>(
      recipe,
      {
        module: unet,
        // one image -> its gen-CLIP pixels and its VAE pixels ([-1, 1] at resolution x resolution)
        async prepare(record, source) {
          const image = (record as { image?: unknown }).image;
          if (!isImage(image)) return `${source}: no image`;
          const clip = (await clipProcessor.preprocess(image)).pixelValues;
          try {
            const rgb = await loadImageResized(image, { width: size, height: size }, "bicubic");
            return [clip, toPixelValues([rgb], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })];
          } catch (e) {
            clip.dispose();
            throw e;
          }
        },
        disposeExample: (pair) => {
          for (const t of pair) t.dispose();
        },
        loss(pairs, generator) {
          const B = pairs.length;
          const { vectors, latents } = T.noGrad(() =>
            T.scope(() => ({
              vectors: genClip.encode(T.cat(pairs.map((p) => p[0]))),
              latents: vae
                .encode(T.cat(pairs.map((p) => p[1])))
                .sample(generator)
                .mul(vae.config.scalingFactor),
            })),
          );
          const noise = T.randn(latents.shape, { generator });
          const timesteps = schedule.sampleTimesteps(B, { generator });
          const keep = T.rand([B], { generator }).ge(recipe.conditioningDropout);
          const loss = decoderLoss(unet, schedule, { latents, vectors, noise, timesteps, keep, height: size, width: size });
          return { loss, parts: {} };
        },
        afterStep() {
          if (recipe.emaDecay === null) return;
          const d = recipe.emaDecay;
          T.noGrad(() => {
            for (const [k, p] of named) ema.get(k)!.lerp_(p, 1 - d);
          });
        },
        extraState: () => new Map([...ema].map(([k, t]) => [`ema.${k}`, t])),
        restoreExtraState(tensors) {
          T.noGrad(() => {
            for (const [k, t] of tensors) if (k.startsWith("ema.")) ema.get(k.slice(4))?.copy_(t);
          });
        },
        finish() {
          // the Pisces folder with the trained (or averaged) UNet, written aside and renamed
          const final = join(recipe.outputDir, "final");
          const tmp = join(recipe.outputDir, `.final.tmp-${process.pid}`);
          rmSync(tmp, { recursive: true, force: true });
          const unetWeights = join("decoder", "unet", "diffusion_pytorch_model.safetensors");
          cpSync(recipe.model, tmp, { recursive: true, filter: (src) => !src.endsWith(unetWeights) });
          const file = join(tmp, unetWeights);
          mkdirSync(dirname(file), { recursive: true });
          const weights = ema.size ? new Map([...unet.stateDict()].map(([k, t]) => [k, ema.get(k) ?? t])) : unet.stateDict();
          T.saveSafetensors(file, weights, { format: "pt" });
          if (existsSync(final)) rmSync(final, { recursive: true, force: true });
          renameSync(tmp, final);
          return final;
        },
      },
      options,
    );
  } finally {
    for (const t of ema.values()) t.dispose();
    genClip.clip.dispose();
    unet.dispose();
    vae.dispose();
  }
}
