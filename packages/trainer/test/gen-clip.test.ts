// The gen-CLIP trainer (masked image modelling): one step equals the PyTorch reference on
// transformers' CLIPVisionModel; a tower from its config alone learns and resumes bit-exactly, and
// its folder loads as the gen_clip/ part of a Pisces folder.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClipModel, ClipVisionModel, GenClipEncoder } from "@pisces/gen-clip";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { MaskedImageModel, readRecipe, type TrainEvent, trainGenClip } from "../src/index.js";
import { clipFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { piscesReference, piscesReferenceScript, python, stepAndCompare, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-genclip-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The mask token and pixel head the reference started from; training mode. */
function startLike(model: MaskedImageModel, r: T.SafetensorsReader): void {
  T.noGrad(() => {
    model.mask_token.copy_(r.get("start.mask_token"));
    model.pixel_head.weight.copy_(r.get("start.pixel_head.weight"));
    model.pixel_head.bias!.copy_(r.get("start.pixel_head.bias"));
  });
  model.train();
}

async function run(recipePath: string, resume = false): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of trainGenClip(readRecipe(recipePath), { resume })) events.push(e);
  return events;
}

describe("gen-CLIP training (masked image modelling)", () => {
  it("one step equals the PyTorch reference: loss within 1e-5, updated weights within 0.2 x lr", () => {
    const ref = piscesReference("tied_k2");
    const refPath = join(work, "gen-clip-step.safetensors");
    execFileSync(python, [piscesReferenceScript, "gen_clip_step", ref, refPath], { stdio: "pipe" });
    const r = T.loadSafetensors(refPath);
    const model = new MaskedImageModel(ClipVisionModel.fromPretrained(join(ref, "model", "gen_clip")));
    try {
      startLike(model, r);
      const loss = model.loss(r.get("pixels"), r.get("mask"));
      expect(Math.abs(loss.item() - r.get("loss").item())).toBeLessThanOrEqual(1e-5);
      expect(
        stepAndCompare(model, loss, r, (k) => (k.startsWith("clip.vision_model.") ? `clip.${k.slice("clip.vision_model.".length)}` : k)),
      ).toBeLessThanOrEqual(0.2 * 1e-4);
    } finally {
      model.dispose();
    }
  });

  it("from a config alone: learns, resumes bit-exactly, loads as a Pisces gen-CLIP encoder", async () => {
    const source = join(piscesReference("tied_k2"), "model", "gen_clip");
    const scratch = join(work, "scratch");
    mkdirSync(scratch, { recursive: true });
    for (const f of ["config.json", "preprocessor_config.json"]) copyFileSync(join(source, f), join(scratch, f));
    const settings = { kind: "gen_clip" as const, model: scratch, max_steps: 40, save_every: 10, global_batch_size: 4, optimizer: { lr: 2e-3 } };
    const events = await run(writeRecipe(join(work, "whole"), settings));
    const losses = events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
    expect(Math.min(...losses.slice(-5))).toBeLessThan(losses[0]! * 0.7);
    const recipe = writeRecipe(join(work, "parted"), settings);
    for await (const e of trainGenClip(readRecipe(recipe))) if (e.type === "step" && e.step === 15) break;
    await run(recipe, true);
    const a = ClipVisionModel.fromPretrained(join(work, "whole", "run", "final"));
    const b = ClipVisionModel.fromPretrained(join(work, "parted", "run", "final"));
    for (const [k, t] of a.stateDict())
      expect(
        T.scope(() => t.equal(b.stateDict().get(k)!)),
        k,
      ).toBe(true);
    const encoder = GenClipEncoder.fromPretrained(join(work, "whole", "run", "final"), { kernel: 2 });
    expect(encoder.numTokens).toBe(16);
    for (const m of [a, b, encoder.clip]) m.dispose();
  });
});

describe("gen-CLIP training with the contrastive term (a CLIPModel folder)", () => {
  it("one step (masked patches + 0.5 x contrastive) equals transformers' CLIPModel under AdamW: losses within 1e-5, weights within 0.2 x lr", () => {
    const dir = clipFixtures();
    const r = T.loadSafetensors(join(dir, "step.safetensors"));
    const batch = T.loadSafetensors(join(dir, "reference.safetensors"));
    const model = new MaskedImageModel(ClipModel.fromPretrained(join(dir, "model")));
    try {
      startLike(model, r);
      const pixels = batch.get("pixel_values");
      const mim = model.loss(pixels, r.get("mask"));
      const contrastive = model.contrastiveLoss(pixels, batch.get("input_ids"), batch.get("attention_mask"));
      expect(Math.abs(mim.item() - r.get("mim").item())).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(contrastive.item() - r.get("contrastive").item())).toBeLessThanOrEqual(1e-5);
      const loss = mim.add(contrastive.mul(0.5));
      expect(Math.abs(loss.item() - r.get("loss").item())).toBeLessThanOrEqual(1e-5);
      expect(stepAndCompare(model, loss, r, (k) => k)).toBeLessThanOrEqual(0.2 * 1e-4);
    } finally {
      model.dispose();
    }
  });

  it("from a CLIPModel config alone: the contrastive loss falls, the run resumes bit-exactly, the folder loads as both towers and as gen_clip/", async () => {
    const source = join(clipFixtures(), "model");
    const scratch = join(work, "clip-scratch");
    mkdirSync(scratch, { recursive: true });
    for (const f of ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(source, f), join(scratch, f));
    const settings = { kind: "gen_clip" as const, model: scratch, max_steps: 40, save_every: 10, global_batch_size: 4, optimizer: { lr: 2e-3 } };
    const events = await run(writeRecipe(join(work, "clip-whole"), settings));
    const parts = events.flatMap((e) => (e.type === "step" ? [e.parts] : []));
    expect(parts[0]).toHaveProperty("contrastive_loss");
    const contrastive = parts.map((p) => p.contrastive_loss!);
    expect(Math.min(...contrastive.slice(-5))).toBeLessThan(contrastive[0]! * 0.7);
    const recipe = writeRecipe(join(work, "clip-parted"), settings);
    for await (const e of trainGenClip(readRecipe(recipe))) if (e.type === "step" && e.step === 15) break;
    await run(recipe, true);
    const a = ClipModel.fromPretrained(join(work, "clip-whole", "run", "final"));
    const b = ClipModel.fromPretrained(join(work, "clip-parted", "run", "final"));
    for (const [k, t] of a.stateDict())
      expect(
        T.scope(() => t.equal(b.stateDict().get(k)!)),
        k,
      ).toBe(true);
    const encoder = GenClipEncoder.fromPretrained(join(work, "clip-whole", "run", "final"), { kernel: 2 });
    expect(encoder.numTokens).toBe(4);
    for (const m of [a, b, encoder.clip]) m.dispose();
  });

  it("a contrastive weight without a text tower is refused", async () => {
    const recipe = writeRecipe(join(work, "no-text"), {
      kind: "gen_clip",
      model: join(piscesReference("tied_k2"), "model", "gen_clip"),
      contrastive_weight: 1,
    });
    await expect(run(recipe)).rejects.toThrow(/contrastive_weight 1 needs a text tower/);
  });
});
