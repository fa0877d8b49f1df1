// The whole recipe at minimal size: every stage trains a few steps through @pisces/trainer, the
// parts assemble into a Pisces folder, and the evaluation (GenEval-shapes, VQA-shapes, captions)
// runs on it. A smoke model this small scores at chance: this checks the pipeline, not the scores
// (the model card reports those of the full run).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { afterAll, describe, expect, it } from "vitest";
import { evaluate } from "../evaluate.js";
import { runRecipe, STAGES } from "../run.js";

const work = mkdtempSync(join(tmpdir(), "shapes-tiny-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("shapes-tiny recipe (smoke scale)", () => {
  it("trains every stage, assembles a Pisces folder that loads, evaluates it, and skips finished stages when run again", async () => {
    const lines: string[] = [];
    const final = await runRecipe(work, { scale: "smoke", log: (m) => lines.push(m) });
    for (const stage of STAGES) expect(existsSync(join(work, "runs", stage, "final")), stage).toBe(true);
    expect(lines.join("\n")).toMatch(/gen_clip: step 3\/3 loss .* contrastive_loss/);
    expect(lines.join("\n")).toMatch(/stage3: step 2\/2 loss .* image_loss/);
    const model = PiscesForConditionalGeneration.fromPretrained(final);
    expect(model.numGenerationVectors).toBe(64); // an 8 x 8 gen-CLIP grid, kernel 1
    model.dispose();
    // the recipe files written for each stage are what ran
    expect(JSON.parse(readFileSync(join(work, "recipes", "stage2.json"), "utf8")).model).toBe(join(work, "runs", "stage1", "final"));
    const again: string[] = [];
    await runRecipe(work, { scale: "smoke", log: (m) => again.push(m) });
    expect(again.filter((l) => / done \(/.test(l))).toHaveLength(STAGES.length);

    const e = await evaluate(final, { promptsPerTask: 1, imagesPerPrompt: 1, steps: 2, vqaScenes: 3 });
    expect(e.geneval.images).toBe(6);
    expect(e.geneval.overall).toBeGreaterThanOrEqual(0);
    expect(e.vqa.questions).toBeGreaterThan(0);
    expect(e.vqaBlind.questions).toBe(e.vqa.questions);
    expect(e.captionExactMatch).toBeGreaterThanOrEqual(0);
  }, 900_000);
});
