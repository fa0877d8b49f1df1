// SiglipImageProcessor against transformers' (Pillow backend) on photos and synthetic images of
// several sizes and aspect ratios, with alpha, grey, CMYK and EXIF rotation. Resizing reproduces
// Pillow's algorithm, so most images match exactly; the differences left come from decoding and
// colour conversion (see the README), and the end-to-end embedding difference that follows.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { SiglipImageProcessor, SiglipVisionModel } from "../src/index.js";
import { pixelDifferences } from "../../../tools/test-support/vision-fixtures.js";
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
    const { pixelValues } = await processor.preprocess(names.map((name) => join(images, name)));
    expect(pixelValues.shape).toEqual([names.length, 3, 224, 224]);
    const diffs = pixelDifferences(T.scope, pixelValues, names, (name) => ref.get(`siglip.${name}`));
    for (const { name, mean } of diffs) expect(mean, name).toBeLessThanOrEqual(0.01);
    const exact = diffs.filter((d) => d.max === 0).length;
    expect(exact).toBeGreaterThanOrEqual(names.length - 3);
  });

  it('resampling "fast" (libvips shrinks): mean abs difference <= 0.01 per image', async () => {
    const processor = SiglipImageProcessor.fromPretrained(join(images, "siglip_processor"));
    const ref = T.loadSafetensors(join(images, "preprocess.safetensors"));
    const { pixelValues } = await processor.preprocess(
      names.map((name) => join(images, name)),
      { resampling: "fast" },
    );
    for (const { name, mean } of pixelDifferences(T.scope, pixelValues, names, (name) => ref.get(`siglip.${name}`)))
      expect(mean, name).toBeLessThanOrEqual(0.01);
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
