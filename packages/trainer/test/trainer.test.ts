// The Pisces stage trainer: steps equal a PyTorch reference loop, recipes are checked, bad records are
// skipped and counted, checkpoints are atomic and a resumed run continues bit-exactly.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { readRecipe, RecipeError, resolveRecipe, type TrainEvent, trainPisces } from "../src/index.js";
import { piscesReference, piscesReferenceScript, python, worstWeightDifference, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-trainer-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function run(recipePath: string, resume = false): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of trainPisces(readRecipe(recipePath), { resume })) events.push(e);
  return events;
}

describe("trainPisces", () => {
  it("two steps equal the PyTorch reference loop (AdamW, clipping): losses and updated weights within 1e-5, with and without gradient checkpointing", async () => {
    const refPath = join(work, "reference-steps.safetensors");
    execFileSync(python, [piscesReferenceScript, "train_steps", piscesReference("tied_k2"), refPath], { stdio: "pipe" });
    const refLosses = (JSON.parse(readFileSync(`${refPath}.json`, "utf8")) as { losses: number[] }).losses;
    const theirs = T.loadSafetensors(refPath);
    for (const checkpointing of [false, true]) {
      const dir = join(work, checkpointing ? "parity-checkpointing" : "parity");
      const events = await run(writeRecipe(dir, { gradient_checkpointing: checkpointing }));
      const losses = events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
      expect(losses.length).toBe(2);
      for (const [i, l] of losses.entries()) expect(Math.abs(l - refLosses[i]!)).toBeLessThanOrEqual(1e-5);
      expect(losses[1]).toBeLessThan(losses[0]!); // it learns
      const worst = worstWeightDifference(join(dir, "run", "final", "model.safetensors"), theirs);
      expect(worst, checkpointing ? "checkpointed" : "plain").toBeLessThanOrEqual(1e-5);
    }
  });

  it("a resumed run continues bit-exactly (losses, metrics and final weights)", async () => {
    const whole = join(work, "whole");
    await run(writeRecipe(whole, { max_steps: 6, save_every: 2, global_batch_size: 2, micro_batch_size: 1, shuffle: true, seed: 3 }));
    const parted = join(work, "parted");
    const recipe = writeRecipe(parted, { max_steps: 6, save_every: 2, global_batch_size: 2, micro_batch_size: 1, shuffle: true, seed: 3 });
    // stop after step 3 (one step past the checkpoint at 2), as a kill would
    for await (const e of trainPisces(readRecipe(recipe))) if (e.type === "step" && e.step === 3) break;
    await expect(run(recipe)).rejects.toThrow(/already holds checkpoints .*pass --resume/);
    const resumed = await run(recipe, true);
    expect(resumed[0]).toMatchObject({ type: "start", step: 2 });
    expect(readFileSync(join(parted, "run", "metrics.jsonl"), "utf8")).toBe(readFileSync(join(whole, "run", "metrics.jsonl"), "utf8"));
    const a = T.loadSafetensors(join(whole, "run", "final", "model.safetensors"));
    const b = T.loadSafetensors(join(parted, "run", "final", "model.safetensors"));
    for (const k of a.keys())
      expect(
        T.scope(() => a.get(k).equal(b.get(k))),
        k,
      ).toBe(true);
    expect(readFileSync(join(parted, "run", "latest"), "utf8").trim()).toBe("step-00000006");
  });

  it("bad records are skipped and counted; too many stop the run with a clear error", async () => {
    const dir = join(work, "bad");
    const bad = ['{"task": "captioning", "image": "missing.png", "caption": "x"}', "not json", '{"task": "captioning", "image": "x.png", "caption": ""}'];
    const events = await run(writeRecipe(dir, { max_steps: 1, global_batch_size: 6 }, bad));
    const step = events.find((e) => e.type === "step");
    expect(step?.type === "step" && step.skipped).toBe(3);
    const many = join(work, "many");
    const lines = Array.from({ length: 30 }, () => "not json");
    await expect(run(writeRecipe(many, { max_steps: 3, global_batch_size: 8, max_skipped_fraction: 0.2 }, lines))).rejects.toThrow(
      /records were bad \(more than max_skipped_fraction 0.2\)/,
    );
  });

  it("recipes are checked: every problem named, unknown keys refused", () => {
    const base = { model: "m", output_dir: "o", data: [{ manifest: "d.jsonl" }], global_batch_size: 4, max_steps: 10 };
    expect(resolveRecipe(base, "/r/recipe.json")).toMatchObject({ accumulationSteps: 1, optimizer: { lr: 2e-5 }, schedule: { warmupSteps: 0 } });
    expect(resolveRecipe({ ...base, max_steps: 100 }, "/r/recipe.json").schedule.warmupSteps).toBe(3); // the paper's 0.03
    const bad = (change: object, message: RegExp) => expect(() => resolveRecipe({ ...base, ...change }, "recipe.json")).toThrow(message);
    bad({ micro_batch_size: 3 }, /global_batch_size 4 is not a multiple of micro_batch_size 3/);
    bad({ data: [] }, /data must be a non-empty list/);
    bad({ learning_rate: 1 }, /learning_rate is not a recipe key/);
    bad({ optimizer: { lr: -1 } }, /optimizer.lr/);
    bad({ optimizer: { momentum: 0.9 } }, /optimizer.momentum is not a recipe key/);
    bad({ tasks: ["painting"] }, /tasks/);
    bad({ generation_scheduled_sampling: 1.5 }, /generation_scheduled_sampling/);
    bad({ generation_rollout_sampling: -0.1 }, /generation_rollout_sampling/);
    bad({ generation_input_noise_std: -1 }, /generation_input_noise_std/);
    bad({ kind: "decoder", gradient_checkpointing: true }, /gradient_checkpointing applies to kind "pisces" only/);
    bad({ rollout_conditioning: 0.5 }, /rollout_conditioning applies to kind "decoder" only/);
    bad({ kind: "decoder", rollout_conditioning: 2 }, /rollout_conditioning/);
    expect(resolveRecipe({ ...base, kind: "decoder" }, "r.json").rolloutConditioning).toBe(0);
    // training options override the model's config only when given
    expect(resolveRecipe({ ...base, generation_scheduled_sampling: 0.5 }, "r.json")).toMatchObject({
      generationScheduledSampling: 0.5,
      generationInputNoiseStd: null,
      generationRolloutSampling: null,
    });
    expect(resolveRecipe({ ...base, generation_rollout_sampling: 0.5 }, "r.json")).toMatchObject({ generationRolloutSampling: 0.5 });
    expect(() => resolveRecipe({ ...base, max_steps: 0, global_batch_size: 0 }, "recipe.json")).toThrow(RecipeError);
  });
});

describe("training options in the recipe", () => {
  it("generation_scheduled_sampling and generation_rollout_sampling reach the model: the same first batch, a different image loss", async () => {
    const step1 = async (name: string, change: object) => {
      const events = await run(writeRecipe(join(work, name), { max_steps: 1, global_batch_size: 4, ...change }));
      const e = events.find((x) => x.type === "step");
      return e?.type === "step" ? e.parts : {};
    };
    const plain = await step1("plain", {});
    const sampled = await step1("sampled", { generation_scheduled_sampling: 1 });
    // (the text after an image sees its vectors, so the text loss moves a little too)
    expect(Math.abs(sampled.text_loss! - plain.text_loss!)).toBeLessThan(0.1 * plain.text_loss!);
    expect(sampled.image_loss).toBeGreaterThan(0);
    expect(sampled.image_loss).not.toBe(plain.image_loss);
    const rolled = await step1("rolled", { generation_rollout_sampling: 1 });
    expect(rolled.image_loss).toBeGreaterThan(0);
    expect(rolled.image_loss).not.toBe(plain.image_loss);
    expect(rolled.image_loss).not.toBe(sampled.image_loss);
  });
});

describe("the paper's recipes", () => {
  it.each([1, 2, 3])("recipes/pisces-stage%i.json is a valid recipe with the paper's settings", (stage) => {
    const r = readRecipe(join(__dirname, "..", "recipes", `pisces-stage${stage}.json`));
    expect(r.globalBatchSize).toBe(stage === 3 ? 1024 : 2048);
    expect(r.optimizer.lr).toBe(2e-5);
    expect(r.schedule).toEqual({ type: "constant_with_warmup", warmupSteps: Math.round(0.03 * r.maxSteps) });
  });
});

describe("fitting a tiny set", () => {
  it("200 steps on the four reference records cut the loss by more than 20x (measured 168x)", async () => {
    const events = await run(
      writeRecipe(join(work, "fit"), { max_steps: 200, save_every: 200, global_batch_size: 4, optimizer: { lr: 1e-3 }, schedule: { warmup_ratio: 0.05 } }),
    );
    const losses = events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
    const first = losses[0]!;
    const last = Math.min(...losses.slice(-10));
    console.log(`tiny set: loss ${first.toFixed(3)} -> ${last.toFixed(3)} (${(first / last).toFixed(1)}x)`);
    expect(first / last).toBeGreaterThan(20);
  });
});

describe("generation_target_normalization", () => {
  it("the trainer measures the targets' per-dimension mean and std before training and the final folder carries them", async () => {
    const ref = piscesReference("tied_k2");
    const folder = join(work, "normalized-model");
    cpSync(join(ref, "model"), folder, { recursive: true });
    const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
    writeFileSync(join(folder, "config.json"), JSON.stringify({ ...config, generation_target_normalization: true }));
    // the folder a fresh stage 1 starts from: identity statistics stored with the weights
    const weights = T.loadSafetensors(join(folder, "model.safetensors"));
    const tensors = new Map(weights.keys().map((k) => [k, weights.get(k)] as const));
    const D = JSON.parse(readFileSync(join(folder, "gen_clip", "config.json"), "utf8")).hidden_size as number;
    tensors.set("generation_target_mean", T.zeros([D]));
    tensors.set("generation_target_std", T.ones([D]));
    T.saveSafetensors(join(folder, "model.safetensors"), tensors);
    const dir = join(work, "normalized");
    const warnings: string[] = [];
    for await (const _ of trainPisces(readRecipe(writeRecipe(dir, { model: folder, max_steps: 1, target_statistics_records: 2 })), {
      warn: (m) => warnings.push(m),
    })) {
    }
    expect(warnings.join("\n")).toMatch(/target statistics measured over 2 generation images/);
    // the same statistics measured here, from the two generation records in file order
    const model = PiscesForConditionalGeneration.fromPretrained(folder);
    const info = JSON.parse(readFileSync(join(ref, "reference.json"), "utf8")) as { records: { task: string; image: string }[] };
    const targets = T.cat(
      await Promise.all(
        info.records
          .filter((r) => r.task === "generation")
          .map(async (r) => model.generationTargets((await model.processor!.genClipProcessor.preprocess(join(ref, r.image))).pixelValues).flatten(0, 1)),
      ),
      0,
    ).to("float64");
    const mean = targets.mean(0);
    const std = targets.sub(mean).pow(2).mean(0).sqrt();
    const final = T.loadSafetensors(join(dir, "run", "final", "model.safetensors"));
    expect(T.scope(() => final.get("generation_target_mean").to("float64").sub(mean).abs().max().item())).toBeLessThan(1e-6);
    expect(T.scope(() => final.get("generation_target_std").to("float64").sub(std).abs().max().item())).toBeLessThan(1e-6);
    expect(T.scope(() => std.min().item())).toBeGreaterThan(0);
    model.dispose();
  });
});

describe("validation", () => {
  it("scores held-out records every N steps without touching training, logged beside the training lines", async () => {
    const plain = join(work, "no-validation");
    const scored = join(work, "validation");
    const settings = { max_steps: 4, global_batch_size: 2, shuffle: true, seed: 2 };
    await run(writeRecipe(plain, settings));
    const recipe = writeRecipe(scored, { ...settings, validation: { data: [{ manifest: "train.jsonl" }], every: 2 } });
    const events = await run(recipe);
    const validations = events.flatMap((e) => (e.type === "validation" ? [e] : []));
    expect(validations.map((v) => v.step)).toEqual([2, 4]);
    expect(validations.every((v) => v.records === 4)).toBe(true); // every held-out record once
    expect(validations[1]!.loss).toBeLessThan(validations[0]!.loss); // trained on the same records
    expect(validations[0]!.parts).toHaveProperty("image_loss");
    const lines = (dir: string) =>
      readFileSync(join(dir, "run", "metrics.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
    const training = lines(scored).filter((l) => l.split !== "validation");
    expect(training).toEqual(lines(plain)); // the training run is unchanged
    expect(lines(scored).filter((l) => l.split === "validation")).toHaveLength(2);
  });
});

describe("mixed precision", () => {
  it("bf16 autocast: the losses follow the float32 run's closely, the weights stay float32, the model learns", async () => {
    const settings = { max_steps: 6, global_batch_size: 4, optimizer: { lr: 1e-3 } };
    const fp32 = (await run(writeRecipe(join(work, "fp32"), settings))).flatMap((e) => (e.type === "step" ? [e.loss] : []));
    const bf16 = (await run(writeRecipe(join(work, "bf16"), { ...settings, mixed_precision: "bf16" }))).flatMap((e) => (e.type === "step" ? [e.loss] : []));
    expect(bf16).toHaveLength(6);
    for (let i = 0; i < 6; i++) expect(Math.abs(bf16[i]! - fp32[i]!) / fp32[i]!, `step ${i + 1}`).toBeLessThan(0.05);
    expect(bf16[5]!).toBeLessThan(bf16[0]!);
    expect(bf16).not.toEqual(fp32); // it did run in bfloat16
    const final = T.loadSafetensors(join(work, "bf16", "run", "final", "model.safetensors"));
    for (const k of final.keys()) expect(final.info(k).dtype, k).toBe("float32");
  });
});
