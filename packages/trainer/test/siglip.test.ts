// The SigLIP trainer: one step equals transformers' SiglipModel sigmoid loss under torch.optim.AdamW;
// a run learns the pairs and resumes bit-exactly, and its folder loads as SiglipModel and SiglipVisionModel.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SiglipModel, SiglipVisionModel } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { siglipTextFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { readRecipe, siglipLoss, type TrainEvent, trainSiglip } from "../src/index.js";
import { makeOptimizer } from "../src/loop.js";
import { piscesReference, piscesReferenceScript, python, stepAndCompare, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-siglip-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const siglipDir = () => join(siglipTextFixtures(), "zero_shot"); // a tiny SiglipModel with tokenizer and processor, 32 px

async function run(recipePath: string, resume = false): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of trainSiglip(readRecipe(recipePath), { resume })) events.push(e);
  return events;
}

describe("the trainer's AdamW", () => {
  it("decays parameters of 2+ dimensions only, unless decay_1d", () => {
    for (const decay1d of [false, true]) {
      const matrix = new T.nn.Parameter(T.ones([2, 2]));
      const vector = new T.nn.Parameter(T.ones([2]));
      const scalar = new T.nn.Parameter(T.ones([1]));
      const params = [matrix, vector, scalar];
      const optimizer = makeOptimizer(params, { lr: 0.1, weightDecay: 0.5, decay1d, betas: [0.9, 0.999], eps: 1e-8 });
      for (const p of params) p.grad = T.zeros(p.shape); // no gradient: only the decay moves a weight
      optimizer.step();
      expect(matrix.max().item()).toBeCloseTo(1 - 0.1 * 0.5, 6);
      for (const p of [vector, scalar]) expect(p.max().item()).toBeCloseTo(decay1d ? 0.95 : 1, 6);
      optimizer.dispose();
      for (const p of params) p.dispose();
    }
  });
});

describe("SigLIP training", () => {
  it("from a config alone starts at the paper's logit scale log 10 and bias -10", async () => {
    const dir = join(work, "config-only");
    cpSync(siglipDir(), dir, { recursive: true, filter: (src) => !src.endsWith(".safetensors") });
    const settings = { kind: "siglip" as const, model: dir, max_steps: 1, global_batch_size: 2, optimizer: { lr: 1e-12 } };
    await run(writeRecipe(join(work, "fresh"), settings));
    const weights = T.loadSafetensors(join(work, "fresh", "run", "final", "model.safetensors"));
    expect(weights.get("logit_scale").item()).toBeCloseTo(Math.log(10), 5);
    expect(weights.get("logit_bias").item()).toBeCloseTo(-10, 5);
  });

  it("one step equals the PyTorch reference: loss within 1e-5, updated weights within 0.2 x lr", () => {
    const refPath = join(work, "siglip-step.safetensors");
    execFileSync(python, [piscesReferenceScript, "siglip_step", siglipDir(), piscesReference("tied_k2"), refPath], { stdio: "pipe" });
    const r = T.loadSafetensors(refPath);
    const model = SiglipModel.fromPretrained(siglipDir());
    try {
      model.train();
      const loss = siglipLoss(model, r.get("input_ids"), r.get("pixel_values"));
      expect(Math.abs(loss.item() - r.get("loss").item())).toBeLessThanOrEqual(1e-5);
      expect(stepAndCompare(model, loss, r, (k) => `siglip.${k}`)).toBeLessThanOrEqual(0.2 * 1e-4);
    } finally {
      model.dispose();
    }
  });

  it("learns the pairs, resumes bit-exactly, writes a folder both SigLIP loaders read", async () => {
    const settings = { kind: "siglip" as const, model: siglipDir(), max_steps: 30, save_every: 10, global_batch_size: 4, optimizer: { lr: 1e-3 } };
    const events = await run(writeRecipe(join(work, "whole"), settings));
    const losses = events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
    expect(Math.min(...losses.slice(-5))).toBeLessThan(losses[0]! * 0.5);
    const recipe = writeRecipe(join(work, "parted"), settings);
    for await (const e of trainSiglip(readRecipe(recipe))) if (e.type === "step" && e.step === 12) break;
    await run(recipe, true);
    const a = SiglipModel.fromPretrained(join(work, "whole", "run", "final"));
    const b = SiglipModel.fromPretrained(join(work, "parted", "run", "final"));
    for (const [k, t] of a.stateDict())
      expect(
        T.scope(() => t.equal(b.stateDict().get(k)!)),
        k,
      ).toBe(true);
    const vision = SiglipVisionModel.fromPretrained(join(work, "whole", "run", "final"));
    expect(vision.numParameters()).toBeGreaterThan(0);
    for (const m of [a, b, vision]) m.dispose();
  });
});
