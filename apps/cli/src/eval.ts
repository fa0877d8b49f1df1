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
  scoreCaptions,
  scoreGeneval,
  scoreVqa,
  type VqaScores,
} from "@pisces/shapes";
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
    const pngs = await generateImages(model, {
      prompts: p.prompt,
      numImagesPerPrompt: perPrompt,
      seed: 42 + i * perPrompt,
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
