// Scores a shapes Pisces folder (what `pisces eval` runs, both benchmarks at once): GenEval-shapes
// on the first n prompts of each task (4 images per prompt, 64 autoregressive vectors,
// empty-caption guidance 3), VQA-shapes and detailed-caption exact match on held-out scenes, each
// beside its baseline (random scenes; the answer prior without the image).
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/evaluate.ts PISCES_DIR [--prompts-per-task 8] [--vqa-scenes 50] [--steps 30] [--rewrite]
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { evalGeneval, evalVqa } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import type { GenevalScores, VqaScores } from "@pisces/shapes";

export interface Evaluation {
  geneval: GenevalScores;
  /** With rewritten prompts (the `rewrite` option): reported apart, as GenEval marks rewritten prompts. */
  genevalRewritten?: GenevalScores;
  genevalChance: GenevalScores;
  vqa: VqaScores;
  vqaBlind: VqaScores;
  captionExactMatch: number;
}

export async function evaluate(
  dir: string,
  options: { promptsPerTask?: number; imagesPerPrompt?: number; steps?: number; guidanceScale?: number; vqaScenes?: number; rewrite?: boolean } = {},
): Promise<Evaluation> {
  const model = PiscesForConditionalGeneration.fromPretrained(dir);
  try {
    const g = await evalGeneval(model, {
      promptsPerTask: options.promptsPerTask ?? 8,
      imagesPerPrompt: options.imagesPerPrompt,
      steps: options.steps,
      guidanceScale: options.guidanceScale,
    });
    const rewritten = options.rewrite
      ? await evalGeneval(model, {
          promptsPerTask: options.promptsPerTask ?? 8,
          imagesPerPrompt: options.imagesPerPrompt,
          steps: options.steps,
          guidanceScale: options.guidanceScale,
          rewrite: true,
        })
      : null;
    const v = await evalVqa(model, { scenes: options.vqaScenes ?? 50 });
    return {
      geneval: g.scores,
      ...(rewritten ? { genevalRewritten: rewritten.scores } : {}),
      genevalChance: g.chance,
      vqa: v.scores,
      vqaBlind: v.blind,
      captionExactMatch: v.captionExactMatch,
    };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "prompts-per-task": { type: "string", default: "8" },
      "vqa-scenes": { type: "string", default: "50" },
      steps: { type: "string", default: "30" },
      rewrite: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write("usage: evaluate.ts PISCES_DIR [--prompts-per-task N] [--vqa-scenes N] [--steps N] [--rewrite]\n");
    process.exit(2);
  }
  evaluate(resolve(positionals[0]!), {
    promptsPerTask: Number(values["prompts-per-task"]),
    vqaScenes: Number(values["vqa-scenes"]),
    steps: Number(values.steps),
    rewrite: values.rewrite,
  }).then(
    (e) => process.stdout.write(`${JSON.stringify(e, null, 1)}\n`),
    (e) => {
      process.stderr.write(`evaluate: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
