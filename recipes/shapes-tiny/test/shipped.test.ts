// CI re-scores the shipped model (@pisces/pisces-shapes-tiny, inference only) on the model card's
// fixed subset: its GenEval-shapes, VQA-shapes and caption figures must stay within TOLERANCE of
// those ship.ts measured (scores.json, "ci"). The same seeds give the same images on one machine;
// the tolerance leaves room for another CPU's float rounding to flip a few detections
// (one image of 48 moves GenEval's overall by ~0.02, one question of ~60 moves VQA by ~0.02).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { evaluate } from "../evaluate.js";
import { CI_SUBSET, PACKAGE_MODEL } from "../ship.js";

const TOLERANCE = 0.1;

describe("the shipped shapes model", () => {
  it("scores the model card's figures on the CI subset (within the stated tolerance)", async () => {
    expect(existsSync(join(PACKAGE_MODEL, "scores.json")), `${PACKAGE_MODEL}/scores.json: run ship.ts`).toBe(true);
    const card = JSON.parse(readFileSync(join(PACKAGE_MODEL, "scores.json"), "utf8")).ci;
    expect(card.settings).toEqual({ ...CI_SUBSET });
    const e = await evaluate(PACKAGE_MODEL, CI_SUBSET);
    expect(e.geneval.images).toBe(card.geneval.images);
    expect(
      Math.abs(e.geneval.overall - card.geneval.overall),
      `GenEval-shapes overall ${e.geneval.overall} vs the card's ${card.geneval.overall}`,
    ).toBeLessThanOrEqual(TOLERANCE);
    expect(e.vqa.questions).toBe(card.vqa.questions);
    expect(Math.abs(e.vqa.overall - card.vqa.overall), `VQA-shapes ${e.vqa.overall} vs the card's ${card.vqa.overall}`).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs(e.captionExactMatch - card.captionExactMatch)).toBeLessThanOrEqual(TOLERANCE);
    // the baselines are computed, not stored: they must equal the card's exactly
    expect(e.genevalChance.overall).toBe(card.genevalChance.overall);
    expect(e.vqaBlind.overall).toBe(card.vqaBlind.overall);
  }, 900_000);
});
