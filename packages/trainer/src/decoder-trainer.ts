// Trains the decoder's UNet to reconstruct images from the frozen gen-CLIP's pooled vectors, as
// Pisces does (its diffusion model is updated, its encoder frozen): VAE latents of each image,
// DDPM noise at uniform timesteps, the UNet conditioned Emu2-style (the vectors as cross-attention
// context, their mean in the pooled slot, SDXL time ids), MSE against the scheduler's target, and
// conditioning dropout (zeros) so classifier-free guidance works. Same recipes, checkpoints and
// resume as the Pisces stages; the final folder is the Pisces folder with the trained UNet.
import { appendFileSync, cpSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { ClipImageProcessor, GenClipEncoder } from "@pisces/gen-clip";
import { loadImageResized, toPixelValues } from "@pisces/image";
import { type PiscesConfigJson, resolvePiscesConfig } from "@pisces/model";
import { NoiseSchedule, SdxlDecoder, type SchedulerConfigJson, type UNet2DConditionModel } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { CheckpointError, latestCheckpoint, saveCheckpoint, trimMetrics } from "./checkpoint.js";
import { DataError, type DataPosition, RecordStream } from "./data.js";
import type { TrainEvent, TrainOptions } from "./pisces-trainer.js";
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

export async function* trainDecoder(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const out = recipe.outputDir;
  mkdirSync(out, { recursive: true });
  const checkpoint = latestCheckpoint(out);
  if (checkpoint && !options.resume)
    throw new CheckpointError(`${out} already holds checkpoints (latest ${checkpoint.dir}): pass --resume to continue, or choose another output_dir`);
  const { json, path } = T.readConfigJson(recipe.model, "Pisces model");
  const { config } = resolvePiscesConfig(json as PiscesConfigJson, path);
  const genClip = GenClipEncoder.fromPretrained(join(recipe.model, "gen_clip"), {
    kernel: config.generationPoolKernel,
    featureLayer: config.generationFeatureLayer,
  });
  const clipProcessor = ClipImageProcessor.fromPretrained(join(recipe.model, "gen_clip"));
  const decoder = SdxlDecoder.fromPretrained(join(recipe.model, "decoder"));
  const schedulerJson = T.readJsonFile(join(recipe.model, "decoder", "scheduler", "scheduler_config.json"), "scheduler config") as SchedulerConfigJson;
  const schedule = new NoiseSchedule(schedulerJson);
  const { unet, vae } = decoder;
  const size = recipe.resolution;
  const factor = vae.downsampleFactor * unet.downsampleFactor;
  let optimizer: T.optim.AdamW | null = null;
  const ema = new Map<string, T.Tensor>();
  try {
    if (size % factor) throw new DataError(`resolution ${size} is not a multiple of ${factor} (the VAE x UNet down-sampling)`);
    const params = unet.parameters();
    const o = recipe.optimizer;
    optimizer = new T.optim.AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, betas: o.betas, eps: o.eps });
    const scheduler =
      recipe.schedule.type === "constant_with_warmup"
        ? T.optim.getConstantScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps })
        : T.optim.getCosineScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps, numTrainingSteps: recipe.maxSteps });
    const named = [...unet.namedParameters()];
    const state = checkpoint?.state ?? null;
    if (checkpoint && state) {
      const weights = T.loadSafetensors(join(checkpoint.dir, "model.safetensors"));
      const emaKeys = weights.keys().filter((k) => k.startsWith("ema."));
      unet.loadStateDict(
        Object.assign({
          keys: () => weights.keys().filter((k) => !k.startsWith("ema.")),
          get: (k: string) => weights.get(k),
          shapeOf: (k: string) => weights.shapeOf(k),
        }),
      );
      for (const k of emaKeys) ema.set(k.slice(4), T.keep(weights.get(k)));
      const moments = T.loadSafetensors(join(checkpoint.dir, "optimizer.safetensors"));
      const tensors = new Map(moments.keys().map((k) => [k, moments.get(k)] as const));
      optimizer.loadStateDict({ tensors, scalars: state.optimizerScalars });
      for (const t of tensors.values()) t.dispose();
      for (let i = 0; i < state.schedulerStep; i++) scheduler.step();
    } else if (recipe.emaDecay !== null) for (const [k, p] of named) ema.set(k, T.keep(T.noGrad(() => p.clone())));
    unet.train();
    const stream = new RecordStream(recipe.data, recipe.seed, recipe.shuffle, state?.data as DataPosition | undefined);
    let skipped = state?.skipped ?? 0;
    let read = state?.read ?? 0;
    const startStep = state?.step ?? 0;
    const metrics = join(out, "metrics.jsonl");
    trimMetrics(metrics, startStep);
    const warn = options.warn ?? (() => {});

    // one image -> its gen-CLIP pixels and its VAE pixels ([-1, 1] at resolution x resolution)
    const draw = async (): Promise<[T.Tensor, T.Tensor]> => {
      for (;;) {
        const { record, source } = stream.next();
        read++;
        const image = "bad" in record ? undefined : (record as { image?: unknown }).image;
        let problem = "bad" in record ? record.bad : image === undefined ? `${source}: no image` : null;
        if (problem === null) {
          let clip: T.Tensor | null = null;
          try {
            clip = (await clipProcessor.preprocess(image as string)).pixelValues;
            const rgb = await loadImageResized(image as string, { width: size, height: size }, "bicubic");
            return [clip, toPixelValues([rgb], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })];
          } catch (e) {
            clip?.dispose();
            problem = `${source}: ${(e as Error).message}`;
          }
        }
        skipped++;
        if (skipped <= 5) warn(`skipped ${problem}`);
        if (read >= 20 && skipped / read > recipe.maxSkippedFraction)
          throw new DataError(`${skipped} of ${read} records were bad (more than max_skipped_fraction ${recipe.maxSkippedFraction}); the last: ${problem}`);
      }
    };

    yield { type: "start", step: startStep, maxSteps: recipe.maxSteps, resumedFrom: checkpoint?.dir ?? null, parameters: unet.numParameters() };
    for (let step = startStep + 1; step <= recipe.maxSteps; step++) {
      const t0 = performance.now();
      const lr = optimizer.lr;
      let loss = 0;
      for (let micro = 0; micro < recipe.accumulationSteps; micro++) {
        const pairs: [T.Tensor, T.Tensor][] = [];
        try {
          for (let i = 0; i < recipe.microBatchSize; i++) pairs.push(await draw());
          loss +=
            T.scope(() => {
              // every random choice from one generator per (step, micro): a resumed run draws the same
              const generator = new T.Generator({ seed: recipe.seed * 1_000_003 + step * 1_009 + micro });
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
              const l = decoderLoss(unet, schedule, { latents, vectors, noise, timesteps, keep, height: size, width: size });
              l.div(recipe.accumulationSteps).backward();
              return l.item();
            }) / recipe.accumulationSteps;
        } finally {
          for (const p of pairs) for (const t of p) t.dispose();
        }
      }
      const gradNorm = T.optim.clipGradNorm(params, recipe.maxGradNorm > 0 ? recipe.maxGradNorm : Number.POSITIVE_INFINITY);
      optimizer.step();
      scheduler.step();
      unet.zeroGrad();
      if (recipe.emaDecay !== null) {
        const d = recipe.emaDecay;
        T.noGrad(() => {
          for (const [k, p] of named) ema.get(k)!.lerp_(p, 1 - d);
        });
      }
      if (step % recipe.logEvery === 0 || step === recipe.maxSteps)
        appendFileSync(metrics, `${JSON.stringify({ step, loss, lr, grad_norm: gradNorm, skipped })}\n`);
      yield {
        type: "step",
        step,
        loss,
        textLoss: 0,
        imageLoss: loss,
        lr,
        gradNorm,
        skipped,
        recordsPerSecond: (recipe.globalBatchSize * 1000) / (performance.now() - t0),
      };
      if (step % recipe.saveEvery === 0 || step === recipe.maxSteps) {
        const moments = optimizer.stateDict();
        const weights = new Map(unet.stateDict());
        for (const [k, t] of ema) weights.set(`ema.${k}`, t);
        const dir = saveCheckpoint(
          out,
          {
            model: weights,
            optimizer: moments.tensors,
            state: { step, data: stream.position, skipped, read, schedulerStep: step, optimizerScalars: moments.scalars, recipeName: recipe.name },
          },
          recipe.keepLast,
        );
        yield { type: "checkpoint", step, dir };
      }
    }
    // the Pisces folder with the trained (or averaged) UNet, written aside and renamed
    const final = join(out, "final");
    const tmp = join(out, `.final.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    cpSync(recipe.model, tmp, {
      recursive: true,
      filter: (src) => !src.endsWith("diffusion_pytorch_model.safetensors") || !src.includes(join("decoder", "unet")),
    });
    const unetFile = join(tmp, "decoder", "unet", "diffusion_pytorch_model.safetensors");
    mkdirSync(dirname(unetFile), { recursive: true });
    const weights = ema.size ? new Map([...unet.stateDict()].map(([k, t]) => [k, ema.get(k) ?? t])) : unet.stateDict();
    T.saveSafetensors(unetFile, weights, { format: "pt" });
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    yield { type: "done", step: recipe.maxSteps, dir: final };
  } finally {
    optimizer?.dispose();
    for (const t of ema.values()) t.dispose();
    genClip.clip.dispose();
    unet.dispose();
    vae.dispose();
  }
}
