// The gen-CLIP trainer (masked image modelling): one step equals the PyTorch reference on
// transformers' CLIPVisionModel; a tower from its config alone learns and resumes bit-exactly, and
// its folder loads as the gen_clip/ part of a Pisces folder.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClipVisionModel, GenClipEncoder } from "@pisces/gen-clip";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { MaskedImageModel, readRecipe, type TrainEvent, trainGenClip } from "../src/index.js";
import { piscesReference, piscesReferenceScript, python, stepAndCompare, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-genclip-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

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
      T.noGrad(() => {
        model.mask_token.copy_(r.get("start.mask_token"));
        model.pixel_head.weight.copy_(r.get("start.pixel_head.weight"));
        model.pixel_head.bias!.copy_(r.get("start.pixel_head.bias"));
      });
      model.train();
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
