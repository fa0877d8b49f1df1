// NaN/inf in the loss or the gradients: the step is skipped (weights and optimizer untouched) and
// counted; too many in a row stop the run, naming the step, the batch's records and the last good
// checkpoint.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { resolveRecipe, runTraining, type TrainEvent, TrainingError } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-nonfinite-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

class Scale extends T.nn.Module {
  weight = new T.nn.Parameter(T.ones([3]));
}

/** A one-parameter regression whose loss is NaN (or whose gradient is inf) on the steps listed. */
async function train(name: string, poisoned: (step: number) => "nan" | "inf" | null, extra: Record<string, unknown> = {}) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "data.jsonl"), Array.from({ length: 8 }, (_, i) => JSON.stringify({ task: "generation", caption: `x${i}`, value: i })).join("\n"));
  const recipe = resolveRecipe(
    {
      model: ".",
      output_dir: "run",
      data: [{ manifest: "data.jsonl" }],
      global_batch_size: 2,
      max_steps: 6,
      save_every: 2,
      shuffle: false,
      schedule: { warmup_ratio: 0 },
      optimizer: { lr: 0.1 },
      ...extra,
    },
    join(dir, "recipe.json"),
  );
  const module = new Scale();
  const snapshots: number[][] = [];
  const events: TrainEvent[] = [];
  const warnings: string[] = [];
  let error: unknown = null;
  try {
    for await (const e of runTraining<number>(
      recipe,
      {
        module,
        prepare: async (record) => (record as { value: number }).value,
        disposeExample: () => {},
        loss(examples, _generator, step) {
          const target = T.tensor(examples, { dtype: "float32" }).mean();
          let loss = module.weight.sum().sub(target).pow(2);
          const poison = poisoned(step);
          if (poison === "nan") loss = loss.mul(Number.NaN);
          // sqrt at 0: the value adds 0, the gradient is +inf
          if (poison === "inf") loss = loss.add(module.weight.sub(module.weight.detach()).sqrt().sum());
          return { loss, parts: {} };
        },
        finish: () => join(dir, "run", "final"),
      },
      { warn: (m) => warnings.push(m) },
    )) {
      events.push(e);
      if (e.type === "step") snapshots.push(Array.from(module.weight.toArray() as Float32Array));
    }
  } catch (e) {
    error = e;
  }
  return { events, snapshots, warnings, error, dir };
}

describe("non-finite steps", () => {
  it("a NaN loss skips that step only: weights unchanged, counted, logged, the run goes on", async () => {
    const r = await train("one-nan", (step) => (step === 3 ? "nan" : null));
    expect(r.error).toBeNull();
    expect(r.snapshots).toHaveLength(6);
    expect(r.snapshots[2]).toEqual(r.snapshots[1]); // step 3 changed nothing
    expect(r.snapshots[3]).not.toEqual(r.snapshots[2]); // step 4 trained again
    const steps = r.events.flatMap((e) => (e.type === "step" ? [e] : []));
    expect(steps.map((s) => s.nonfinite)).toEqual([0, 0, 1, 1, 1, 1]);
    expect(r.warnings.join("\n")).toMatch(/step 3: the loss is not finite; the step is skipped \(1 in a row\)/);
    const metrics = readFileSync(join(r.dir, "run", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(metrics[5].nonfinite).toBe(1);
  });

  it("too many in a row stop the run with the step, the records and the last good checkpoint", async () => {
    const r = await train("many-nan", (step) => (step >= 4 ? "nan" : null), { max_nonfinite_steps: 2 });
    expect(r.error).toBeInstanceOf(TrainingError);
    const message = (r.error as Error).message;
    expect(message).toMatch(/2 steps in a row had a NaN\/inf loss or gradient \(max_nonfinite_steps 2\), the last at step 5/);
    expect(message).toMatch(/with the records manifest 0 record 0, manifest 0 record 1/); // step 5 wraps to the file's start
    expect(message).toMatch(/the last good checkpoint is .*step-00000004/);
  });

  it("an infinite gradient with a finite loss is caught by the gradient norm", async () => {
    const r = await train("inf-grad", (step) => (step === 2 ? "inf" : null));
    expect(r.error).toBeNull();
    expect(r.snapshots[1]).toEqual(r.snapshots[0]);
    expect(r.warnings.join("\n")).toMatch(/step 2: the (gradient norm|loss) is not finite/);
  });
});
