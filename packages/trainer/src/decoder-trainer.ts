// Trains the decoder's UNet to reconstruct images from the frozen gen-CLIP's pooled vectors, as
// Pisces does (its diffusion model is updated, its encoder frozen): VAE latents of each image,
// DDPM noise at uniform timesteps, the UNet conditioned Emu2-style (the vectors as cross-attention
// context, their mean in the pooled slot, SDXL time ids), MSE against the scheduler's target, and
// conditioning dropout (zeros) so classifier-free guidance works. Same recipes, checkpoints and
// resume as the Pisces stages; the final folder is the Pisces folder with the trained UNet.
// `rollout_conditioning` (a deviation from the paper, which trains the decoder on true vectors
// only): a share of samples is conditioned on the LLM's own rolled-out vectors for the record's
// caption, so the decoder learns to draw from what it is given at inference, and dropped samples
// get the empty caption's vectors, as the sampler's unconditional branch does.
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { ClipImageProcessor, GenClipEncoder } from "@pisces/gen-clip";
import { loadImageResized, toPixelValues } from "@pisces/image";
import { type PiscesConfigJson, PiscesForConditionalGeneration, resolvePiscesConfig } from "@pisces/model";
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

interface Example {
  clip: T.Tensor;
  pixels: T.Tensor;
  caption: string;
}

export interface DecoderLossInput {
  /** (B, 4, h, w) VAE latents, already multiplied by the VAE's scaling factor. */
  latents: T.Tensor;
  /** (B, m, D) gen-CLIP vectors. */
  vectors: T.Tensor;
  /** (B, 4, h, w) Gaussian noise. */
  noise: T.Tensor;
  /** (B) int64 training timesteps. */
  timesteps: T.Tensor;
  /** (B) 1 keeps a sample's vectors, 0 replaces them with `unconditional` (conditioning dropout). */
  keep: T.Tensor;
  /** (1, m, D) what a dropped sample is conditioned on; default zeros. */
  unconditional?: T.Tensor;
  /** Pixels of the images, for SDXL's time ids. */
  height: number;
  width: number;
}

/** The denoising loss of one batch (differentiable in the UNet's parameters). */
export function decoderLoss(unet: UNet2DConditionModel, schedule: NoiseSchedule, b: DecoderLossInput): T.Tensor {
  return T.scope(() => {
    const B = b.latents.size(0);
    const dtype = unet.conv_in.weight.dtype;
    const keep = b.keep.to(b.vectors.dtype).reshape([B, 1, 1]);
    let cond = b.vectors.mul(keep);
    if (b.unconditional) cond = cond.add(b.unconditional.mul(keep.neg().add(1)));
    cond = cond.to(dtype);
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

/**
 * The decoder's conditioning with the LLM's own vectors in some rows: row i is `llm`'s rollout
 * from `captions[i]` (no guidance, as the sampler's conditional branch) where `rolled[i]` is
 * nonzero, `vectors`' row i (the image's true gen-CLIP vectors) elsewhere. (B, m, D), no gradient.
 */
export function withRollouts(llm: PiscesForConditionalGeneration, vectors: T.Tensor, captions: readonly string[], rolled: ArrayLike<number>): T.Tensor {
  const B = vectors.size(0);
  if (captions.length !== B || rolled.length !== B)
    throw new DataError(`withRollouts: ${B} rows of vectors, ${captions.length} captions, ${rolled.length} choices`);
  const rows = Array.from({ length: B }, (_, i) => i).filter((i) => rolled[i]);
  if (rows.length === 0) return T.noGrad(() => vectors.clone());
  return T.noGrad(() =>
    T.scope(() => {
      const own = llm.generateImageEmbeddings({ captions: rows.map((i) => captions[i]!), guidanceScale: 1 }).conditional.to(vectors.dtype);
      let j = 0;
      return T.stack(
        Array.from({ length: B }, (_, i) => (rolled[i] ? own.select(0, j++) : vectors.select(0, i))),
        0,
      );
    }),
  );
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
  const rolloutShare = recipe.rolloutConditioning;
  let llm: PiscesForConditionalGeneration | null = null;
  if (rolloutShare > 0) {
    try {
      llm = PiscesForConditionalGeneration.fromPretrained(recipe.model, { decoder: false });
    } catch (e) {
      throw new DataError(`rollout_conditioning needs a trained Pisces LLM in ${recipe.model}: ${(e as Error).message}`);
    }
  }
  // the LLM's folder holds the same frozen gen-CLIP: one copy serves both
  const genClip =
    llm?.genClip ??
    GenClipEncoder.fromPretrained(join(recipe.model, "gen_clip"), {
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
  let empty: T.Tensor | null = null; // (1, m, D) the empty caption's vectors
  try {
    if (llm) empty = T.keep(llm.generateImageEmbeddings({ captions: [""], guidanceScale: 1 }).conditional);
    const factor = vae.downsampleFactor * unet.downsampleFactor;
    if (size % factor) throw new DataError(`resolution ${size} is not a multiple of ${factor} (the VAE x UNet down-sampling)`);
    const named = [...unet.namedParameters()];
    if (recipe.emaDecay !== null) for (const [k, p] of named) ema.set(k, T.keep(T.noGrad(() => p.clone())));
    yield* runTraining<Example>(
      recipe,
      {
        module: unet,
        // one image -> its gen-CLIP pixels and its VAE pixels ([-1, 1] at resolution x resolution), and its caption
        async prepare(record, source) {
          const { image, caption } = record as { image?: unknown; caption?: unknown };
          if (!isImage(image)) return `${source}: no image`;
          if (llm && typeof caption !== "string") return `${source}: no caption (rollout_conditioning rolls the LLM out from it)`;
          const clip = (await clipProcessor.preprocess(image)).pixelValues;
          try {
            const rgb = await loadImageResized(image, { width: size, height: size }, "bicubic");
            return { clip, pixels: toPixelValues([rgb], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }), caption: typeof caption === "string" ? caption : "" };
          } catch (e) {
            clip.dispose();
            throw e;
          }
        },
        disposeExample: (x) => {
          x.clip.dispose();
          x.pixels.dispose();
        },
        loss(examples, generator) {
          const B = examples.length;
          // which samples are conditioned on the LLM's rollout instead of their true vectors
          const rolled = llm ? T.scope(() => T.rand([B], { generator }).lt(rolloutShare).toArray() as Uint8Array) : null;
          const { vectors, latents } = T.noGrad(() =>
            T.scope(() => {
              let vectors = genClip.encode(T.cat(examples.map((x) => x.clip))); // (B, m, D)
              if (llm && rolled)
                vectors = withRollouts(
                  llm,
                  vectors,
                  examples.map((x) => x.caption),
                  rolled,
                );
              return {
                vectors,
                latents: vae
                  .encode(T.cat(examples.map((x) => x.pixels)))
                  .sample(generator)
                  .mul(vae.config.scalingFactor),
              };
            }),
          );
          const noise = T.randn(latents.shape, { generator });
          const timesteps = schedule.sampleTimesteps(B, { generator });
          const keep = T.rand([B], { generator }).ge(recipe.conditioningDropout);
          const loss = decoderLoss(unet, schedule, { latents, vectors, noise, timesteps, keep, unconditional: empty ?? undefined, height: size, width: size });
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
    empty?.dispose();
    llm?.dispose();
    for (const t of ema.values()) t.dispose();
    if (!llm) genClip.clip.dispose(); // else the LLM's own, disposed with it
    unet.dispose();
    vae.dispose();
  }
}
