// SiglipImageProcessor against transformers' (Pillow backend) on photos and synthetic images of
// several sizes and aspect ratios, with alpha, grey, CMYK and EXIF rotation. Resizing reproduces
// Pillow's algorithm, so most images match exactly; the differences left come from decoding and
// colour conversion (see the README), and the end-to-end embedding difference that follows.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { SiglipImageProcessor, SiglipVisionModel } from "../src/index.js";
import { referenceFixtures } from "./helpers.js";

let images: string;
let names: string[];
beforeAll(() => {
  images = join(referenceFixtures(), "images");
  names = readFileSync(join(images, "names.txt"), "utf8").split("\n");
});

describe("SiglipImageProcessor matches transformers' SiglipImageProcessor", () => {
  it("pixel values: mean abs difference <= 0.01 per image, exact for most", async () => {
    const processor = SiglipImageProcessor.fromPretrained(join(images, "siglip_processor"));
    const ref = T.loadSafetensors(join(images, "preprocess.safetensors"));
    let exact = 0;
    const report: string[] = [];
    for (const name of names) {
      const { pixelValues } = await processor.preprocess(join(images, name));
      expect(pixelValues.shape).toEqual([1, 3, 224, 224]);
      const [max, mean] = T.scope(() => {
        const d = pixelValues.select(0, 0).sub(ref.get(`siglip.${name}`)).abs();
        return [d.max().item(), d.mean().item()];
      });
      report.push(`${name}: max ${max.toFixed(4)} mean ${mean.toFixed(5)}`);
      if (max === 0) exact++;
      expect(mean, name).toBeLessThanOrEqual(0.01);
    }
    if (process.env.PISCES_VERBOSE) console.log(report.join("\n"));
    expect(exact).toBeGreaterThanOrEqual(names.length - 3);
  });

  it('resampling "fast" (libvips shrinks): mean abs difference <= 0.01 per image', async () => {
    const processor = SiglipImageProcessor.fromPretrained(join(images, "siglip_processor"));
    const ref = T.loadSafetensors(join(images, "preprocess.safetensors"));
    const { pixelValues } = await processor.preprocess(
      names.map((name) => join(images, name)),
      { resampling: "fast" },
    );
    const report: string[] = [];
    names.forEach((name, i) => {
      const [max, mean] = T.scope(() => {
        const d = pixelValues.select(0, i).sub(ref.get(`siglip.${name}`)).abs();
        return [d.max().item(), d.mean().item()];
      });
      report.push(`${name}: max ${max.toFixed(4)} mean ${mean.toFixed(5)}`);
      expect(mean, name).toBeLessThanOrEqual(0.01);
    });
    if (process.env.PISCES_VERBOSE) console.log(report.join("\n"));
  });

  it("end to end: the embedding difference that follows from preprocessing", async () => {
    const processor = SiglipImageProcessor.fromPretrained(join(images, "siglip_processor"));
    const model = SiglipVisionModel.fromPretrained(join(referenceFixtures(), "siglip_vision", "model"));
    const ref = T.loadSafetensors(join(images, "preprocess.safetensors"));
    // the tiny model takes 32x32 inputs: downsample both preprocessed versions the same way
    for (const name of ["alpha_360x240.png", "chelsea_exif6.jpg", "astronaut.png"]) {
      const { pixelValues } = await processor.preprocess(join(images, name));
      const diff = T.noGrad(() =>
        T.scope(() => {
          const small = (x: T.Tensor) => T.avgPool2d(x, 7);
          const ours = model.forward({ pixelValues: small(pixelValues) }).poolerOutput!;
          const theirs = model.forward({ pixelValues: small(ref.get(`siglip.${name}`).unsqueeze(0)) }).poolerOutput!;
          return ours.sub(theirs).abs().max().item() / theirs.abs().max().item();
        }),
      );
      expect(diff, name).toBeLessThanOrEqual(0.05);
    }
  });
});
