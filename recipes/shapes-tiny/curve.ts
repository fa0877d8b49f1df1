// The learning curve of a shapes-tiny run: each Pisces stage's final weights (with the trained
// decoder in place) scored on a small fixed subset (GenEval-shapes, VQA-shapes, captions, the
// vector rollout's drift), and every stage's training loss at a few steps with its wall time.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/curve.ts WORK_DIR [DECODER_DIR] > curve.json
// (DECODER_DIR: a diffusers folder to decode with instead of WORK_DIR/runs/decoder/final/decoder.)
import { cpSync, existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { evalRollout } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { evaluate } from "./evaluate.js";
import { STAGES } from "./run.js";

const SUBSET = { promptsPerTask: 2, imagesPerPrompt: 4, steps: 30, guidanceScale: 3, vqaScenes: 10 } as const;

/** Loss at a few steps of a stage's metrics.jsonl (the mean of the 10 logged points up to each). */
function lossCurve(file: string): { step: number; loss: number }[] {
  if (!existsSync(file)) return [];
  const rows = readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step?: number; loss?: number })
    .filter((r) => typeof r.step === "number" && typeof r.loss === "number") as { step: number; loss: number }[];
  const out: { step: number; loss: number }[] = [];
  for (const f of [0.1, 0.25, 0.5, 0.75, 1]) {
    const upto = rows.filter((r) => r.step <= rows.at(-1)!.step * f);
    const last = upto.slice(-10);
    if (last.length) out.push({ step: last.at(-1)!.step, loss: last.reduce((a, r) => a + r.loss, 0) / last.length });
  }
  return out;
}

export async function curve(work: string, decoder = join(work, "runs", "decoder", "final", "decoder")) {
  const losses = Object.fromEntries(STAGES.map((s) => [s, lossCurve(join(work, "runs", s, "metrics.jsonl"))]));
  const scores: Record<string, unknown> = {};
  for (const stage of ["stage1", "stage2", "stage3"]) {
    const final = join(work, "runs", stage, "final");
    if (!existsSync(final) || !existsSync(decoder)) continue;
    const dir = join(work, `curve-${stage}`);
    rmSync(dir, { recursive: true, force: true });
    cpSync(final, dir, { recursive: true });
    rmSync(join(dir, "decoder"), { recursive: true, force: true });
    cpSync(decoder, join(dir, "decoder"), { recursive: true });
    const e = await evaluate(dir, SUBSET);
    const model = PiscesForConditionalGeneration.fromPretrained(dir, { decoder: false });
    try {
      scores[stage] = {
        geneval: e.geneval,
        vqa: e.vqa.overall,
        vqaBlind: e.vqaBlind.overall,
        captionExactMatch: e.captionExactMatch,
        rolloutShort: await evalRollout(model, { scenes: 32, captions: "short" }),
        rolloutDetailed: await evalRollout(model, { scenes: 32, captions: "detailed" }),
      };
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
    process.stderr.write(`${stage}: ${JSON.stringify(scores[stage])}\n`);
  }
  return { subset: SUBSET, losses, scores };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  if (process.argv.length !== 3 && process.argv.length !== 4) {
    process.stderr.write("usage: curve.ts WORK_DIR [DECODER_DIR]\n");
    process.exit(2);
  }
  curve(resolve(process.argv[2]!), process.argv[3] ? resolve(process.argv[3]) : undefined).then(
    (c) => process.stdout.write(`${JSON.stringify(c, null, 1)}\n`),
    (e) => {
      process.stderr.write(`curve: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
