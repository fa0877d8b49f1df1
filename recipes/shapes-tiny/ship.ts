// Ships a finished shapes-tiny model: copies WORK/model (run.ts's output) into the
// @pisces/pisces-shapes-tiny package and measures the model card's figures into model/scores.json:
// the full evaluation (GenEval-shapes on every prompt, VQA-shapes and captions on held-out scenes,
// the decoder's ceiling from true gen-CLIP vectors) and the fixed subset CI re-scores.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/ship.ts WORK_DIR [--prompts-per-task N] [--vqa-scenes N] [--ceiling-scenes N]
import { cpSync, existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { evalDecoderCeiling } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { evaluate } from "./evaluate.js";

/**
 * Rewrites every float32 .safetensors under `dir` in float16 (half the bytes in the repository; the
 * loaders cast to the dtype asked for, float32 on CPU). The scores are measured on these files.
 */
export function storeInFloat16(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) storeInFloat16(path);
    else if (name.endsWith(".safetensors")) {
      const reader = T.loadSafetensors(path);
      const tensors = reader.toMap();
      try {
        const half = new Map([...tensors].map(([k, t]) => [k, t.dtype === "float32" ? t.to("float16") : t] as const));
        saveReplacing(path, half, reader.metadata);
        for (const [k, t] of half) if (t !== tensors.get(k)) t.dispose();
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    }
  }
}

function saveReplacing(path: string, tensors: Map<string, T.Tensor>, metadata: Record<string, string>): void {
  const tmp = `${path}.tmp`;
  T.saveSafetensors(tmp, tensors, metadata);
  renameSync(tmp, path);
}

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
  storeInFloat16(tmp);
  const started = performance.now();
  const full = { promptsPerTask: o.promptsPerTask ?? Number.POSITIVE_INFINITY, imagesPerPrompt: 4, steps: 30, guidanceScale: 3, vqaScenes: o.vqaScenes ?? 100 };
  log(`scoring ${source}: the full evaluation (and GenEval-shapes with rewritten prompts)`);
  const fullScores = await evaluate(tmp, { ...full, rewrite: true });
  log(`scoring: the CI subset`);
  const ciScores = await evaluate(tmp, CI_SUBSET);
  log(`scoring: the decoder ceiling`);
  const model = PiscesForConditionalGeneration.fromPretrained(tmp);
  let ceiling: { exact: number; scenes: number };
  let ceilingZeros: { exact: number; scenes: number };
  try {
    // guided as the sampler guides (against the empty caption's vectors), and against zeros
    ceiling = await evalDecoderCeiling(model, { scenes: o.ceilingScenes ?? 200 });
    ceilingZeros = await evalDecoderCeiling(model, { scenes: o.ceilingScenes ?? 200, unconditional: "zeros" });
  } finally {
    model.dispose();
  }
  const settings = (s: typeof full | typeof CI_SUBSET) => ({ ...s, promptsPerTask: Number.isFinite(s.promptsPerTask) ? s.promptsPerTask : 0 });
  const scores = {
    full: { ...fullScores, settings: settings(full) },
    ci: { ...ciScores, settings: settings(CI_SUBSET) },
    decoderCeiling: ceiling,
    decoderCeilingZeros: ceilingZeros,
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
