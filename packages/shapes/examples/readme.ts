// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { detect, makeGenevalPrompts, type RgbImage, sceneForPrompt, renderScene, scoreGeneval } from "@pisces/shapes";

/** Scores an image generator on GenEval-shapes: 4 images per prompt, GenEval's rules, the exact detector. */
export async function genevalShapes(generate: (prompt: string, seed: number) => Promise<RgbImage>) {
  const prompts = makeGenevalPrompts(); // the committed set: geneval-shapes/prompts.jsonl
  const images: RgbImage[][] = [];
  for (const [i, p] of prompts.entries()) images.push(await Promise.all([0, 1, 2, 3].map((k) => generate(p.prompt, i * 4 + k))));
  return scoreGeneval(prompts, images); // {tasks: {single_object, ...}, overall}
}

/** A perfect "generator": renders a scene made to the prompt (scores 1.00). */
export async function oracle(prompt: string, seed: number): Promise<RgbImage> {
  const p = makeGenevalPrompts().find((q) => q.prompt === prompt)!;
  return { data: renderScene(sceneForPrompt(p, seed)), width: 64, height: 64 };
}

export const firstDetections = () => detect({ data: renderScene(sceneForPrompt(makeGenevalPrompts()[0]!, 0)), width: 64, height: 64 });
