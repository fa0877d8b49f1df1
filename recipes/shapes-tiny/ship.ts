// Ships a finished shapes-tiny model: copies WORK/model (run.ts's output) into the
// @pisces/pisces-shapes-tiny package and measures the model card's figures into model/scores.json:
// the full evaluation (GenEval-shapes on every prompt, VQA-shapes and captions on held-out scenes,
// the decoder's ceiling from true gen-CLIP vectors) and the fixed subset CI re-scores.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/ship.ts WORK_DIR [--prompts-per-task N] [--vqa-scenes N] [--ceiling-scenes N]
import { cpSync, existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { evalDecoderCeiling } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { evaluate } from "./evaluate.js";

/** The package folder the model ships in. */
export const PACKAGE_MODEL = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "packages", "pisces-shapes-tiny", "model");

/** What CI re-scores on every run (inference only, a few minutes): the first prompts of each task and the first held-out scenes. */
export const CI_SUBSET = { promptsPerTask: 2, imagesPerPrompt: 4, steps: 30, guidanceScale: 3, vqaScenes: 10 } as const;

export async function ship(work: string, o: { promptsPerTask?: number; vqaScenes?: number; ceilingScenes?: number; log?: (m: string) => void } = {}) {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const source = join(work, "model");
  if (!existsSync(join(source, "config.json"))) throw new Error(`${source} is not a finished model: run run.ts ${work} first`);
  const tmp = `${PACKAGE_MODEL}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(source, tmp, { recursive: true });
  const started = performance.now();
  const full = { promptsPerTask: o.promptsPerTask ?? Number.POSITIVE_INFINITY, imagesPerPrompt: 4, steps: 30, guidanceScale: 3, vqaScenes: o.vqaScenes ?? 100 };
  log(`scoring ${source}: the full evaluation (and GenEval-shapes with rewritten prompts)`);
  const fullScores = await evaluate(tmp, { ...full, rewrite: true });
  log(`scoring: the CI subset`);
  const ciScores = await evaluate(tmp, CI_SUBSET);
  log(`scoring: the decoder ceiling`);
  const model = PiscesForConditionalGeneration.fromPretrained(tmp);
  let ceiling: { exact: number; scenes: number };
  try {
    ceiling = await evalDecoderCeiling(model, { scenes: o.ceilingScenes ?? 200 });
  } finally {
    model.dispose();
  }
  const settings = (s: typeof full | typeof CI_SUBSET) => ({ ...s, promptsPerTask: Number.isFinite(s.promptsPerTask) ? s.promptsPerTask : 0 });
  const scores = {
    full: { ...fullScores, settings: settings(full) },
    ci: { ...ciScores, settings: settings(CI_SUBSET) },
    decoderCeiling: ceiling,
    evaluationSeconds: Math.round((performance.now() - started) / 1000),
  };
  writeFileSync(join(tmp, "scores.json"), `${JSON.stringify(scores, null, 1)}\n`);
  rmSync(PACKAGE_MODEL, { recursive: true, force: true });
  renameSync(tmp, PACKAGE_MODEL);
  log(`shipped ${PACKAGE_MODEL}`);
  return scores;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { "prompts-per-task": { type: "string" }, "vqa-scenes": { type: "string" }, "ceiling-scenes": { type: "string" } },
  });
  if (positionals.length !== 1) {
    process.stderr.write("usage: ship.ts WORK_DIR [--prompts-per-task N] [--vqa-scenes N] [--ceiling-scenes N]\n");
    process.exit(2);
  }
  const n = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  ship(resolve(positionals[0]!), {
    promptsPerTask: n(values["prompts-per-task"]),
    vqaScenes: n(values["vqa-scenes"]),
    ceilingScenes: n(values["ceiling-scenes"]),
  }).then(
    (s) => process.stdout.write(`${JSON.stringify(s, null, 1)}\n`),
    (e) => {
      process.stderr.write(`ship: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
