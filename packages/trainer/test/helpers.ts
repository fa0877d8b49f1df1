// Test helpers: the tiny random Pisces of the PyTorch reference, and recipes over its images.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as T from "@pisces/tensor-cuda";
import { join } from "node:path";
import { expect } from "vitest";
import type { RecipeJson } from "../src/index.js";
import { makeOptimizer } from "../src/loop.js";
import { piscesReference, piscesReferenceScript } from "../../../tools/test-support/pisces-fixtures.js";

export { piscesReference, piscesReferenceScript };
export const python = process.env.PYTHON ?? "python3";

/** Writes the reference batch's records as a JSONL manifest (file order = the reference's order) and a recipe; returns the recipe path. */
export function writeRecipe(work: string, overrides: Partial<RecipeJson> = {}, extraLines: string[] = []): string {
  const ref = piscesReference("tied_k2");
  const info = JSON.parse(readFileSync(join(ref, "reference.json"), "utf8")) as { records: { image: string }[] };
  mkdirSync(work, { recursive: true });
  const lines = info.records.map((r) => JSON.stringify({ ...r, image: join(ref, r.image) }));
  writeFileSync(join(work, "train.jsonl"), [...lines, ...extraLines].join("\n"));
  const recipe: RecipeJson = {
    name: "test",
    model: join(ref, "model"),
    output_dir: "run",
    data: [{ manifest: "train.jsonl" }],
    global_batch_size: 4,
    max_steps: 2,
    shuffle: false,
    optimizer: { lr: 1e-3, weight_decay: 0.01 },
    schedule: { warmup_ratio: 0 },
    ...overrides,
  };
  const path = join(work, "recipe.json");
  writeFileSync(path, JSON.stringify(recipe));
  return path;
}

/**
 * Takes one step as the reference steps do (backward, clipping at norm 1, AdamW lr 1e-4 and weight
 * decay 0.01) and returns the largest difference of the updated weights from the reference's, whose
 * keys `referenceKey` gives.
 *
 * Parameters whose gradient is float noise on both sides (every |g| < 1e-7, against ~1e-3 for the
 * others) are checked apart, within one lr: attention key biases have an exact gradient of zero
 * (softmax ignores a shift shared by every key), so each side's first Adam update is lr x g /
 * (|g| + eps) for a g of ~1e-9 against eps 1e-8, anywhere in (-lr, lr) whatever the code does
 * (measured: a CLIP text k_proj.bias 0.42 x lr apart on one machine, under 0.2 x lr on another).
 */
export function stepAndCompare(module: T.nn.Module, loss: T.Tensor, reference: T.SafetensorsReader, referenceKey: (key: string) => string): number {
  const lr = 1e-4;
  const optimizer = makeOptimizer(module.parameters(), { lr, weightDecay: 0.01, decay1d: false, betas: [0.9, 0.999], eps: 1e-8 });
  try {
    loss.backward();
    T.optim.clipGradNorm(module.parameters(), 1);
    const noise = new Set([...module.namedParameters()].filter(([, p]) => T.scope(() => p.grad !== null && p.grad.abs().max().item() < 1e-7)).map(([k]) => k));
    optimizer.step();
    let worst = 0;
    for (const [k, p] of module.stateDict()) {
      const d = T.scope(() =>
        p
          .sub(reference.get(referenceKey(k)))
          .abs()
          .max()
          .item(),
      );
      if (noise.has(k)) expect(d, `${k} (a gradient of float noise)`).toBeLessThanOrEqual(lr);
      else worst = Math.max(worst, d);
    }
    return worst;
  } finally {
    optimizer.dispose();
  }
}

/** The largest |a - b| over every tensor of two weight files (or readers), which must hold the same keys. */
export function worstWeightDifference(a: string | T.SafetensorsReader, b: string | T.SafetensorsReader): number {
  const x = typeof a === "string" ? T.loadSafetensors(a) : a;
  const y = typeof b === "string" ? T.loadSafetensors(b) : b;
  expect(y.keys().sort()).toEqual(x.keys().sort());
  let worst = 0;
  for (const k of x.keys())
    worst = Math.max(
      worst,
      T.scope(() => x.get(k).sub(y.get(k)).abs().max().item()),
    );
  return worst;
}
