// Scores a shapes Pisces folder with @pisces/sampler: GenEval-shapes (the paper's sampling:
// 64 autoregressive vectors, empty-caption guidance, the decoder), VQA-shapes and detailed-caption
// exact match on held-out scenes, each beside its baseline (random scenes; the answer prior without
// the image). A subset (the first n prompts of each task) keeps CPU runs short.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/evaluate.ts PISCES_DIR [--prompts-per-task 8] [--vqa-scenes 50]
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { PiscesForConditionalGeneration } from "@pisces/model";
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

export interface Evaluation {
  geneval: GenevalScores;
  genevalChance: GenevalScores;
  vqa: VqaScores;
  vqaBlind: VqaScores;
  captionExactMatch: number;
}

async function toRgb(png: Buffer): Promise<RgbImage> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

export async function evaluate(
  dir: string,
  options: { promptsPerTask?: number; imagesPerPrompt?: number; steps?: number; guidanceScale?: number; vqaScenes?: number } = {},
): Promise<Evaluation> {
  const perTask = options.promptsPerTask ?? 8;
  const perPrompt = options.imagesPerPrompt ?? 4;
  const all = makeGenevalPrompts();
  const prompts = all.filter((p, i) => all.slice(0, i).filter((q) => q.tag === p.tag).length < perTask);
  const model = PiscesForConditionalGeneration.fromPretrained(dir);
  try {
    const images: RgbImage[][] = [];
    for (const [i, p] of prompts.entries()) {
      const pngs = await generateImages(model, {
        prompts: p.prompt,
        numImagesPerPrompt: perPrompt,
        seed: 42 + i * perPrompt,
        steps: options.steps ?? 30,
        guidanceScale: options.guidanceScale ?? 3,
      });
      images.push(await Promise.all(pngs.map(toRgb)));
    }
    const items = makeVqaSet(options.vqaScenes ?? 50);
    const pngOf = new Map<number, Buffer>();
    for (const it of items) if (!pngOf.has(it.seed)) pngOf.set(it.seed, await encodePng(it.scene));
    const answers: string[] = [];
    for (const it of items) answers.push((await describeImages(model, { images: pngOf.get(it.seed)!, prompt: it.question, maxNewTokens: 4 }))[0]!);
    const scenes = [...new Map(items.map((i) => [i.seed, i.scene])).values()];
    const captions = await describeImages(model, { images: scenes.map((s) => pngOf.get(items.find((i) => i.scene === s)!.seed)!), maxNewTokens: 64 });
    return {
      geneval: scoreGeneval(prompts, images),
      genevalChance: chanceBaseline(prompts, perPrompt),
      vqa: scoreVqa(items, answers),
      vqaBlind: scoreVqa(items, blindAnswers(items)),
      captionExactMatch: scoreCaptions(scenes, captions),
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
    },
  });
  if (positionals.length !== 1) {
    process.stderr.write("usage: evaluate.ts PISCES_DIR [--prompts-per-task N] [--vqa-scenes N] [--steps N]\n");
    process.exit(2);
  }
  evaluate(resolve(positionals[0]!), {
    promptsPerTask: Number(values["prompts-per-task"]),
    vqaScenes: Number(values["vqa-scenes"]),
    steps: Number(values.steps),
  }).then(
    (e) => process.stdout.write(`${JSON.stringify(e, null, 1)}\n`),
    (e) => {
      process.stderr.write(`evaluate: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
