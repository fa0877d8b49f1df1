// The paper's ablations in miniature, each arm with the same step budget, two seeds (the
// recipe's seed: data order, input noise and scheduled-sampling draws; every arm of a study
// starts from the same checkpoint of the shapes-tiny run in WORK):
//   synergy  stage 3 from stage 2's final model: joint (the shipped mixture), understanding only
//            (captions + questions), generation only (short + detailed captions)
//   captions stage 2 from stage 1's final model: detailed captions (shipped) or short ones
// Each arm is scored with the trained decoder: GenEval-shapes, the free-running rollout error,
// VQA-shapes and detailed-caption exact match. Finished arms are kept in results/ablation.json and
// skipped; an interrupted arm resumes from its checkpoint.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/ablate.ts WORK_DIR [--steps 400] [--seeds 0,1] [--arms synergy-joint,...]
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { evalRollout } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import type { VqaScores } from "@pisces/shapes";
import * as T from "@pisces/tensor-cuda";
import { latestCheckpoint, readRecipe, trainPisces } from "@pisces/trainer";
import { evaluate } from "./evaluate.js";
import { recipeFor, type Scale } from "./run.js";

/** The arms: which stage they retrain, from which of the main run's models, on which manifests. */
export const ARMS = {
  "synergy-joint": { stage: "stage3", from: "stage2", data: { "gen-short": 1, "gen-detailed": 1, caption: 1, chat: 2 } },
  "synergy-understanding": { stage: "stage3", from: "stage2", data: { caption: 1, chat: 2 } },
  "synergy-generation": { stage: "stage3", from: "stage2", data: { "gen-short": 1, "gen-detailed": 1 } },
  "captions-detailed": { stage: "stage2", from: "stage1", data: { "gen-detailed": 1, caption: 1 } },
  "captions-short": { stage: "stage2", from: "stage1", data: { "gen-short": 1, caption: 1 } },
} as const;
export type Arm = keyof typeof ARMS;

/** What each arm is scored on (fixed for every arm: same prompts, scenes and sampling). */
export const ABLATION_EVAL = { promptsPerTask: 4, imagesPerPrompt: 4, steps: 30, guidanceScale: 3, vqaScenes: 30, rolloutScenes: 32 } as const;

const here = dirname(fileURLToPath(import.meta.url));
export const ABLATION_RESULTS = join(here, "results", "ablation.json");

export interface ArmResult {
  arm: Arm;
  seed: number;
  steps: number;
  trainSeconds: number;
  geneval: number;
  genevalTasks: Record<string, number>;
  genevalChance: number;
  rollout: { teacherForced: number; freeRunningDetailed: number; freeRunningShort: number };
  vqa: number;
  vqaBlind: number;
  vqaTypes: VqaScores["types"];
  captionExactMatch: number;
}

/** Trains one arm (resuming or skipping what is done) and scores it. `scale` picks the batch (the smoke test's is small). */
export async function runArm(
  work: string,
  arm: Arm,
  seed: number,
  steps: number,
  log: (m: string) => void,
  o: { scale?: Scale; evaluation?: typeof ABLATION_EVAL | { [K in keyof typeof ABLATION_EVAL]: number } } = {},
): Promise<ArmResult> {
  const evaluation = o.evaluation ?? ABLATION_EVAL;
  const spec = ARMS[arm];
  const start = join(work, "runs", spec.from, "final");
  const decoder = join(work, "runs", "decoder", "final", "decoder");
  for (const dir of [start, decoder]) if (!existsSync(dir)) throw new Error(`${dir} does not exist: run the shapes-tiny recipe in ${work} first (run.ts)`);
  const out = join(work, "ablation", `${arm}-s${seed}`);
  const base = recipeFor(work, spec.stage, o.scale ?? "full");
  const recipe = {
    ...base,
    name: `ablation-${arm}-s${seed}`,
    output_dir: out,
    model: start,
    max_steps: steps,
    save_every: Math.min(250, steps),
    seed,
    data: Object.entries(spec.data).map(([n, weight]) => ({ manifest: join(work, "data", `train-${n}.jsonl`), weight })),
  };
  mkdirSync(out, { recursive: true });
  const recipePath = join(out, "recipe.json");
  writeFileSync(recipePath, `${JSON.stringify(recipe, null, 1)}\n`);
  const started = performance.now();
  if (!existsSync(join(out, "final"))) {
    for await (const e of trainPisces(readRecipe(recipePath), { resume: latestCheckpoint(out) !== null, warn: (m) => log(`${arm}: warning: ${m}`) }))
      if (e.type === "step" && e.step % 50 === 0) log(`${arm} s${seed}: step ${e.step}/${steps} loss ${e.loss.toFixed(4)}`);
  }
  const trainSeconds = Math.round((performance.now() - started) / 1000);
  // the arm's model with the trained decoder, as finish() assembles the shipped one
  const model = join(out, "model");
  if (!existsSync(model)) {
    const tmp = `${model}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    cpSync(join(out, "final"), tmp, { recursive: true });
    rmSync(join(tmp, "decoder"), { recursive: true, force: true });
    cpSync(decoder, join(tmp, "decoder"), { recursive: true });
    renameSync(tmp, model);
  }
  log(`${arm} s${seed}: scoring`);
  const e = await evaluate(model, evaluation);
  const m = PiscesForConditionalGeneration.fromPretrained(model);
  let rollout: ArmResult["rollout"];
  try {
    const detailed = await evalRollout(m, { scenes: evaluation.rolloutScenes, captions: "detailed" });
    const short = await evalRollout(m, { scenes: evaluation.rolloutScenes, captions: "short" });
    rollout = { teacherForced: detailed.teacherForced, freeRunningDetailed: detailed.freeRunning, freeRunningShort: short.freeRunning };
  } finally {
    m.dispose();
  }
  return {
    arm,
    seed,
    steps,
    trainSeconds,
    geneval: e.geneval.overall,
    genevalTasks: e.geneval.tasks,
    genevalChance: e.genevalChance.overall,
    rollout,
    vqa: e.vqa.overall,
    vqaBlind: e.vqaBlind.overall,
    vqaTypes: e.vqa.types,
    captionExactMatch: e.captionExactMatch,
  };
}

/** The arms' results gathered (each arm writes WORK/ablation/<arm>-s<seed>/result.json when scored). */
export function gather(work: string): ArmResult[] {
  const results: ArmResult[] = [];
  for (const seed of [0, 1, 2, 3])
    for (const arm of Object.keys(ARMS)) {
      const file = join(work, "ablation", `${arm}-s${seed}`, "result.json");
      if (existsSync(file)) results.push(JSON.parse(readFileSync(file, "utf8")) as ArmResult);
    }
  return results;
}

/** A markdown table: each arm's mean over its seeds, and the seeds' values. */
export function table(results: ArmResult[]): string {
  const byArm = new Map<string, ArmResult[]>();
  for (const r of results) byArm.set(`${r.arm}@${r.steps}`, [...(byArm.get(`${r.arm}@${r.steps}`) ?? []), r]);
  const cell = (rs: ArmResult[], f: (r: ArmResult) => number) => {
    const v = rs.map(f);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return `${mean.toFixed(3)} (${v.map((x) => x.toFixed(3)).join(", ")})`;
  };
  const rows = [...byArm.values()].map(
    (rs) =>
      `| ${rs[0]!.arm} | ${rs[0]!.steps} | ${rs.map((r) => r.seed).join(", ")} | ${cell(rs, (r) => r.geneval)} | ${cell(rs, (r) => r.rollout.freeRunningDetailed)} | ${cell(rs, (r) => r.rollout.freeRunningShort)} | ${cell(rs, (r) => r.rollout.teacherForced)} | ${cell(rs, (r) => r.vqa)} | ${cell(rs, (r) => r.captionExactMatch)} |`,
  );
  const r0 = results[0];
  return [
    "| arm | steps | seeds | GenEval-shapes | rollout error, detailed | rollout error, short | teacher-forced error | VQA-shapes | caption exact |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
    ...(r0 ? [`| baselines | | | chance ${r0.genevalChance.toFixed(3)} | | | | blind ${r0.vqaBlind.toFixed(3)} | |`] : []),
  ].join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(fileURLToPath(import.meta.url))) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      steps: { type: "string", default: "400" },
      seeds: { type: "string", default: "0,1" },
      arms: { type: "string" },
      table: { type: "boolean", default: false },
    },
  });
  const arms = (values.arms?.split(",") ?? Object.keys(ARMS)) as Arm[];
  const unknown = arms.filter((a) => !(a in ARMS));
  if (positionals.length !== 1 || unknown.length > 0) {
    process.stderr.write(
      `usage: ablate.ts WORK_DIR [--steps N] [--seeds 0,1] [--arms ${Object.keys(ARMS).join(",")}] [--table]${unknown.length ? ` (unknown arms: ${unknown})` : ""}\n`,
    );
    process.exit(2);
  }
  T.setNumThreads(T.getNumThreads());
  const work = resolve(positionals[0]!);
  const steps = Number(values.steps);
  const seeds = values.seeds!.split(",").map(Number);
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  (async () => {
    if (!values.table)
      for (const seed of seeds)
        for (const arm of arms) {
          const file = join(work, "ablation", `${arm}-s${seed}`, "result.json");
          if (existsSync(file)) continue;
          const result = await runArm(work, arm, seed, steps, log);
          log(JSON.stringify(result));
          writeFileSync(`${file}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
          renameSync(`${file}.tmp`, file);
        }
    // what the docs quote: every arm scored so far, and its table
    const results = gather(work);
    mkdirSync(dirname(ABLATION_RESULTS), { recursive: true });
    writeFileSync(
      ABLATION_RESULTS,
      `${JSON.stringify({ machine: "AMD EPYC, 2 shared cores, CPU only", evaluation: ABLATION_EVAL, arms: results }, null, 1)}\n`,
    );
    process.stdout.write(`${table(results)}\n`);
  })().catch((e) => {
    process.stderr.write(`ablate: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
