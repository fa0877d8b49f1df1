// The package points at a loadable Pisces folder whose model card figures are on disk.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { modelCardScores, modelPath } from "../src/index.js";

describe("@pisces/pisces-shapes-tiny", () => {
  it("ships a Pisces folder that loads strictly, with 64 generation vectors and the world's 64 px decoder", () => {
    expect(existsSync(join(modelPath, "config.json"))).toBe(true);
    const live = T.memoryStats().liveTensors;
    const model = PiscesForConditionalGeneration.fromPretrained(modelPath);
    try {
      expect(model.numGenerationVectors).toBe(64);
      expect(model.decoder!.defaultImageSize).toBe(64);
    } finally {
      model.dispose();
    }
    expect(T.memoryStats().liveTensors).toBe(live);
  });

  it("carries its model card's scores, each beside its baseline", () => {
    const s = modelCardScores();
    for (const e of [s.full, s.ci]) {
      expect(e.geneval.images).toBeGreaterThan(0);
      expect(e.genevalChance.images).toBe(e.geneval.images);
      expect(e.vqa.questions).toBe(e.vqaBlind.questions);
      for (const v of [e.geneval.overall, e.genevalChance.overall, e.vqa.overall, e.vqaBlind.overall, e.captionExactMatch]) expect(v).toBeGreaterThanOrEqual(0);
    }
    expect(s.decoderCeiling.scenes).toBeGreaterThan(0);
  });
});
