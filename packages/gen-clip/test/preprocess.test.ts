// ClipImageProcessor against transformers' CLIPImageProcessor (Pillow backend): shortest-side
// resize, centre crop, CLIP mean/std, on photos and synthetic images (alpha, grey, CMYK, EXIF).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipImageProcessor } from "../src/index.js";
import { pixelDifferences } from "../../../tools/test-support/vision-fixtures.js";
import { referenceFixtures } from "./helpers.js";

let images: string;
let names: string[];
beforeAll(() => {
  images = join(referenceFixtures(), "images");
  names = readFileSync(join(images, "names.txt"), "utf8").split("\n");
});

describe("ClipImageProcessor matches transformers' CLIPImageProcessor", () => {
  it("pixel values: mean abs difference <= 0.01 per image, exact for most", async () => {
    const processor = ClipImageProcessor.fromPretrained(join(images, "clip_processor"));
    const ref = T.loadSafetensors(join(images, "preprocess.safetensors"));
    const { pixelValues } = await processor.preprocess(names.map((name) => join(images, name)));
    expect(pixelValues.shape).toEqual([names.length, 3, 224, 224]);
    const diffs = pixelDifferences(T.scope, pixelValues, names, (name) => ref.get(`clip.${name}`));
    for (const { name, mean } of diffs) expect(mean, name).toBeLessThanOrEqual(0.01);
    const exact = diffs.filter((d) => d.max === 0).length;
    expect(exact).toBeGreaterThanOrEqual(names.length - 1);
  });

  it("computes transformers' resize size", () => {
    const p = new ClipImageProcessor({ size: { shortest_edge: 224 } });
    expect(p.outputSize(640, 480)).toEqual({ width: 298, height: 224 });
    expect(p.outputSize(37, 91)).toEqual({ width: 224, height: 550 });
    expect(p.outputSize(500, 500)).toEqual({ width: 224, height: 224 });
  });
});
