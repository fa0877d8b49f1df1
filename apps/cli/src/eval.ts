// `pisces eval`: GenEval-shapes and VQA-shapes on a Pisces folder, sampled with @pisces/sampler and
// scored by @pisces/shapes, each beside its baseline. The recipe's evaluate.ts uses these too.
import type { PiscesForConditionalGeneration } from "@pisces/model";
import { describeImages, generateImages } from "@pisces/sampler";
import {
  blindAnswers,
  chanceBaseline,
  encodePng,
  type GenevalScores,
  makeGenevalPrompts,
  makeVqaSet,
  type RgbImage,
  sceneForPrompt,
  scoreCaptions,
  scoreGeneval,
  detailedCaption,
  Random,
  randomScene,
  shortCaption,
  SPLIT_SEED,
  sceneMatches,
  detect,
  scoreVqa,
  type VqaScores,
} from "@pisces/shapes";
import * as T from "@pisces/tensor-cuda";
import sharp from "sharp";

export async function pngToRgb(png: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

export interface GenevalOptions {
  /** The first n prompts of each task (default: all 553). */
  promptsPerTask?: number;
  imagesPerPrompt?: number;
  steps?: number;
  guidanceScale?: number;
  /**
   * Prompt rewriting (GenEval reports such scores apart, marked as rewritten): each image's prompt
   * becomes the detailed caption of a scene drawn to satisfy it (every object's colour, shape, size
   * and grid cell named), so the model draws a layout it was told rather than one it must choose.
   */
  rewrite?: boolean;
  onPrompt?: (done: number, of: number) => void;
}

/** GenEval-shapes as the anchors sample it: 4 images per prompt, seed 42 + index, guidance 3. */
export async function evalGeneval(model: PiscesForConditionalGeneration, o: GenevalOptions = {}): Promise<{ scores: GenevalScores; chance: GenevalScores }> {
  const all = makeGenevalPrompts();
  const perTask = o.promptsPerTask ?? Number.POSITIVE_INFINITY;
  const prompts = all.filter((p, i) => all.slice(0, i).filter((q) => q.tag === p.tag).length < perTask);
  const perPrompt = o.imagesPerPrompt ?? 4;
  const images: RgbImage[][] = [];
  for (const [i, p] of prompts.entries()) {
    const seed = 42 + i * perPrompt;
    const pngs = await generateImages(model, {
      ...(o.rewrite
        ? { prompts: Array.from({ length: perPrompt }, (_, j) => detailedCaption(sceneForPrompt(p, seed + j))), numImagesPerPrompt: 1 }
        : { prompts: p.prompt, numImagesPerPrompt: perPrompt }),
      seed,
      steps: o.steps ?? 30,
      guidanceScale: o.guidanceScale ?? 3,
    });
    images.push(await Promise.all(pngs.map(pngToRgb)));
    o.onPrompt?.(i + 1, prompts.length);
  }
  return { scores: scoreGeneval(prompts, images), chance: chanceBaseline(prompts, perPrompt) };
}

/** VQA-shapes (exact match per question type) and detailed-caption exact match on held-out scenes, with the blind baseline. */
export async function evalVqa(
  model: PiscesForConditionalGeneration,
  o: { scenes?: number; onQuestion?: (done: number, of: number) => void } = {},
): Promise<{ scores: VqaScores; blind: VqaScores; captionExactMatch: number }> {
  const items = makeVqaSet(o.scenes ?? 100);
  const pngOf = new Map<number, Buffer>();
  for (const it of items) if (!pngOf.has(it.seed)) pngOf.set(it.seed, await encodePng(it.scene));
  const answers: string[] = [];
  for (const [i, it] of items.entries()) {
    answers.push((await describeImages(model, { images: pngOf.get(it.seed)!, prompt: it.question, maxNewTokens: 4 }))[0]!);
    o.onQuestion?.(i + 1, items.length);
  }
  const seeds = [...pngOf.keys()];
  const scenes = seeds.map((s) => items.find((i) => i.seed === s)!.scene);
  const captions = await describeImages(model, { images: seeds.map((s) => pngOf.get(s)!), maxNewTokens: 64 });
  return { scores: scoreVqa(items, answers), blind: scoreVqa(items, blindAnswers(items)), captionExactMatch: scoreCaptions(scenes, captions) };
}

/**
 * The decoder's ceiling: held-out scenes encoded by the model's own gen-CLIP (the true 64 vectors,
 * no LLM) and decoded; the share whose detected objects equal the scene's (every shape, colour and
 * centre within 2 px). Everything generated lives under this figure. Guidance is against
 * `unconditional`: the empty caption's rolled-out vectors, as the sampler guides (the default), or
 * zeros, what a decoder trained with zero dropout (the trainer's default) learnt as unconditional.
 */
export async function evalDecoderCeiling(
  model: PiscesForConditionalGeneration,
  o: {
    scenes?: number;
    steps?: number;
    guidanceScale?: number;
    batchSize?: number;
    unconditional?: "empty-caption" | "zeros";
    onScene?: (done: number, of: number) => void;
  } = {},
): Promise<{ exact: number; scenes: number; unconditional: "empty-caption" | "zeros" }> {
  const decoder = model.decoder;
  const processor = model.processor;
  if (!decoder || !processor) throw new Error("the decoder ceiling needs a model with its decoder and processor (load it with fromPretrained)");
  const unconditional = o.unconditional ?? "empty-caption";
  if (unconditional !== "empty-caption" && unconditional !== "zeros")
    throw new Error(`unconditional must be "empty-caption" or "zeros", got ${String(unconditional)}`);
  const n = o.scenes ?? 100;
  const batch = o.batchSize ?? 8;
  let exact = 0;
  const empty = unconditional === "empty-caption" ? model.generateImageEmbeddings({ captions: [""], guidanceScale: 1 }).conditional : null; // (1, 64, D)
  try {
    for (let start = 0; start < n; start += batch) {
      const scenes = Array.from({ length: Math.min(batch, n - start) }, (_, i) => randomScene(SPLIT_SEED.heldout + start + i));
      const pngs = await Promise.all(scenes.map(encodePng));
      const { pixelValues } = await processor.genClipProcessor.preprocess(pngs);
      let cond: T.Tensor | null = null;
      let uncond: T.Tensor | null = null;
      try {
        cond = T.noGrad(() => model.generationTargets(pixelValues)); // (B, 64, D)
        uncond = empty ? T.scope(() => empty.expand(cond!.shape).contiguous()) : null;
        const { png } = await decoder.decode(cond, {
          uncond: uncond ?? undefined,
          steps: o.steps ?? 30,
          guidanceScale: o.guidanceScale ?? 3,
          seed: 42 + start,
        });
        for (const [i, p] of png.entries()) if (sceneMatches(detect(await pngToRgb(p)), scenes[i]!)) exact++;
      } finally {
        cond?.dispose();
        uncond?.dispose();
        pixelValues.dispose();
      }
      o.onScene?.(start + scenes.length, n);
    }
  } finally {
    empty?.dispose();
  }
  return { exact: exact / n, scenes: n, unconditional };
}

/**
 * How far the free-running 64 vectors drift from teacher forcing, on held-out scenes: the mean
 * squared error against the scene's true gen-CLIP vectors of (a) the vectors predicted with the
 * true previous vectors as input (teacher forcing, as in training) and (b) the vectors the model
 * rolls out on its own (as at inference, no guidance), each divided by the targets' variance
 * (1 = no better than predicting the mean vector).
 */
export async function evalRollout(
  model: PiscesForConditionalGeneration,
  o: { scenes?: number; captions?: "short" | "detailed" } = {},
): Promise<{ teacherForced: number; freeRunning: number; scenes: number }> {
  const processor = model.processor;
  if (!processor) throw new Error("the rollout evaluation needs a model with its processor (load it with fromPretrained)");
  const n = o.scenes ?? 32;
  const scenes = Array.from({ length: n }, (_, i) => randomScene(SPLIT_SEED.heldout + i));
  const captions = scenes.map((s, i) => (o.captions === "detailed" ? detailedCaption(s) : shortCaption(s, new Random(SPLIT_SEED.heldout + i))));
  const pngs = await Promise.all(scenes.map(encodePng));
  const batch = await processor.call(scenes.map((_, i) => ({ task: "generation" as const, caption: captions[i]!, image: pngs[i]! })));
  try {
    return T.noGrad(() =>
      T.scope(() => {
        const targets = model.generationTargets(batch.generationPixelValues!).to("float32"); // (n, 64, D)
        const variance = targets
          .sub(targets.mean([0, 1], { keepdim: true }))
          .pow(2)
          .mean()
          .item();
        const forced = model.forward(batch).imageEmbeddings!;
        const free = model.generateImageEmbeddings({ captions, guidanceScale: 1 }).conditional.to("float32");
        return {
          teacherForced: forced.sub(targets).pow(2).mean().item() / variance,
          freeRunning: free.sub(targets).pow(2).mean().item() / variance,
          scenes: n,
        };
      }),
    );
  } finally {
    for (const t of Object.values(batch)) if (t instanceof T.Tensor) t.dispose();
  }
}
