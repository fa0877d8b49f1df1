// The shipped shapes-world Pisces: where its folder is, and the figures of its model card.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The model folder (the @pisces/model layout): pass it to `PiscesForConditionalGeneration.fromPretrained`. */
export const modelPath: string = join(dirname(fileURLToPath(import.meta.url)), "..", "model");

/** One evaluation (recipes/shapes-tiny/evaluate.ts) with the settings it ran with. */
export interface Evaluation {
  /** GenEval-shapes: accuracy per task, their mean, images scored. */
  geneval: { tasks: Record<string, number>; overall: number; images: number };
  /** The same prompts scored on random ground-truth scenes (chance). */
  genevalChance: { tasks: Record<string, number>; overall: number; images: number };
  /** VQA-shapes: exact match per question type and over all questions, on held-out scenes. */
  vqa: { types: Record<string, number>; overall: number; questions: number };
  /** The blind baseline: the training answer prior, without the image. */
  vqaBlind: { types: Record<string, number>; overall: number; questions: number };
  /** Share of held-out scenes whose greedy detailed caption is exactly right. */
  captionExactMatch: number;
  settings: { promptsPerTask: number; imagesPerPrompt: number; steps: number; guidanceScale: number; vqaScenes: number };
}

/** model/scores.json: what ship.ts measured when the model shipped. */
export interface ModelCardScores {
  /** The model card's evaluation (promptsPerTask 0 = every prompt). */
  full: Evaluation;
  /** The fixed subset CI re-scores on every run. */
  ci: Evaluation;
  /**
   * Held-out scenes decoded from their true gen-CLIP vectors: the share detected exactly (the ceiling
   * of generation), guided against the empty caption's vectors as the sampler guides.
   */
  decoderCeiling: { exact: number; scenes: number; unconditional?: "empty-caption" };
  /** The same guided against zeros (what the trainer's default dropout teaches as unconditional). */
  decoderCeilingZeros?: { exact: number; scenes: number; unconditional?: "zeros" };
  evaluationSeconds: number;
}

/** The figures of the model card, read from the model folder. */
export function modelCardScores(): ModelCardScores {
  return JSON.parse(readFileSync(join(modelPath, "scores.json"), "utf8")) as ModelCardScores;
}
