// ClipImageProcessor against transformers' CLIPImageProcessor (Pillow backend): shortest-side
// resize, centre crop, CLIP mean/std, on photos and synthetic images (alpha, grey, CMYK, EXIF).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { ClipImageProcessor } from "../src/index.js";
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
    let exact = 0;
    const report: string[] = [];
    for (const name of names) {
      const { pixelValues } = await processor.preprocess(join(images, name));
      expect(pixelValues.shape).toEqual([1, 3, 224, 224]);
      const [max, mean] = T.scope(() => {
        const d = pixelValues.select(0, 0).sub(ref.get(`clip.${name}`)).abs();
        return [d.max().item(), d.mean().item()];
      });
      report.push(`${name}: max ${max.toFixed(4)} mean ${mean.toFixed(5)}`);
      if (max === 0) exact++;
      expect(mean, name).toBeLessThanOrEqual(0.01);
    }
    if (process.env.PISCES_VERBOSE) console.log(report.join("\n"));
    expect(exact).toBeGreaterThanOrEqual(names.length - 1);
  });

  it("computes transformers' resize size", () => {
    const p = new ClipImageProcessor({ size: { shortest_edge: 224 } });
    expect(p.outputSize(640, 480)).toEqual({ width: 298, height: 224 });
    expect(p.outputSize(37, 91)).toEqual({ width: 224, height: 550 });
    expect(p.outputSize(500, 500)).toEqual({ width: 224, height: 224 });
  });
});
