// Loading images: formats and colour modes become RGB; bad input gives a clear ImageLoadError.
import { join } from "node:path";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { visionFixtures, visionReferenceFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { centerCrop, ImageLoadError, loadImage, loadImageResized, readImageProcessorConfig, resizePil, toPixelValues } from "../src/index.js";

const images = join(visionFixtures, "images");
const work = mkdtempSync(join(tmpdir(), "pisces-image-"));
beforeAll(() => {
  visionReferenceFixtures();
});

describe("loadImage", () => {
  it("decodes paths and buffers to RGB, applying EXIF orientation", async () => {
    const png = await loadImage(join(images, "chelsea.png"));
    expect([png.width, png.height, png.data.length]).toEqual([451, 300, 451 * 300 * 3]);
    const rotated = await loadImage(readFileSync(join(images, "chelsea_exif6.jpg")));
    expect([rotated.width, rotated.height]).toEqual([300, 451]); // orientation 6: displayed rotated
  });

  it("flattens alpha onto white and converts grey and CMYK to RGB", async () => {
    const transparent = await sharp({ create: { width: 2, height: 1, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0 } } })
      .png()
      .toBuffer();
    expect(Array.from((await loadImage(transparent)).data)).toEqual([255, 255, 255, 255, 255, 255]);
    const grey = await loadImage(join(images, "grey_360x240.png"));
    expect(grey.data[0]).toBe(grey.data[1]);
    const cmyk = await loadImage(join(images, "cmyk_astronaut.jpg"));
    expect([cmyk.width, cmyk.height]).toEqual([512, 512]);
  });

  it("accepts raw pixels of 1 to 4 channels", async () => {
    const rgba = await loadImage({ data: new Uint8Array([0, 0, 0, 255, 255, 0, 0, 0]), width: 2, height: 1, channels: 4 });
    expect(Array.from(rgba.data)).toEqual([0, 0, 0, 255, 255, 255]);
    const g = await loadImage({ data: new Uint8Array([7, 9]), width: 1, height: 2, channels: 1 });
    expect(Array.from(g.data)).toEqual([7, 7, 7, 9, 9, 9]);
  });

  it("gives clear errors for corrupt, truncated, empty, oversized and unsupported input", async () => {
    const jpeg = readFileSync(join(images, "astronaut_q90.jpg"));
    const cases: [string, Parameters<typeof loadImage>[0], RegExp, Parameters<typeof loadImage>[1]?][] = [
      ["missing file", join(work, "nope.png"), /cannot load .*nope\.png/],
      ["empty buffer", new Uint8Array(0), /empty buffer/],
      ["not an image", Buffer.from("this is plain text, not pixels"), /not a PNG, JPEG, WebP, GIF, AVIF or TIFF image/],
      ["truncated JPEG", jpeg.subarray(0, 2000), /cannot load a 2000-byte buffer/],
      ["decompression bomb", join(images, "astronaut.png"), /larger than limitInputPixels/, { limitInputPixels: 1000 }],
      ["raw size mismatch", { data: new Uint8Array(5), width: 2, height: 1, channels: 3 }, /needs 6 bytes, got 5/],
      ["raw zero size", { data: new Uint8Array(0), width: 0, height: 1, channels: 3 }, /positive integer width and height/],
    ];
    for (const [what, input, message, options] of cases) {
      const error = await loadImage(input, options).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(ImageLoadError);
      expect((error as Error).message, what).toMatch(message);
    }
    writeFileSync(join(work, "zero.png"), Buffer.alloc(0));
    await expect(loadImage(join(work, "zero.png"))).rejects.toThrow(ImageLoadError);
  });
});

describe("resizePil, centerCrop, toPixelValues", () => {
  it("loadImageResized: exact by default, libvips shrinking with resampling fast, sizes after EXIF rotation", async () => {
    const path = join(images, "chelsea_exif6.jpg"); // stored 451x300, displayed 300x451
    const full = await loadImage(path);
    const exact = await loadImageResized(path, { width: 150, height: 200 });
    expect(exact).toEqual(resizePil(full, 150, 200, "bicubic"));
    const seen: number[][] = [];
    const half = (w: number, h: number) => {
      seen.push([w, h]);
      return { width: w / 2, height: Math.round(h / 2) };
    };
    const fast = await loadImageResized(path, half, "bicubic", { resampling: "fast" });
    expect(seen).toEqual([[300, 451]]);
    expect([fast.width, fast.height]).toEqual([150, 226]);
    let diff = 0;
    const reference = resizePil(full, 150, 226, "bicubic");
    for (let i = 0; i < fast.data.length; i++) diff += Math.abs(fast.data[i]! - reference.data[i]!);
    expect(diff / fast.data.length).toBeLessThan(1); // within a grey level on average
    // enlarging is always exact
    const small = await loadImage(join(images, "noise_37x91.png"));
    expect(await loadImageResized(join(images, "noise_37x91.png"), { width: 224, height: 224 }, "bicubic", { resampling: "fast" })).toEqual(
      resizePil(small, 224, 224, "bicubic"),
    );
    await expect(loadImageResized(path, { width: 0, height: 10 })).rejects.toThrow(/target size must be positive integers/);
  });

  it("resizes, crops and normalizes", () => {
    const im = { data: Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i), width: 4, height: 4 };
    expect(resizePil(im, 4, 4)).toBe(im);
    const half = resizePil(im, 2, 2, "bilinear");
    expect([half.width, half.height]).toEqual([2, 2]);
    const crop = centerCrop(im, 2, 2);
    expect(Array.from(crop.data.slice(0, 3))).toEqual([15, 16, 17]); // pixel (1, 1)
    const px = toPixelValues([crop], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(px.shape).toEqual([1, 3, 2, 2]);
    expect(px.select(1, 0).flatten().tolist()).toEqual([15, 18, 27, 30].map((v) => Math.fround((Math.fround(v / 255) - 0.5) / 0.5)));
    expect(() => resizePil(im, 0, 2)).toThrow(/positive integers/);
    expect(() => toPixelValues([im, half])).toThrow(/images differ in size/);
  });

  it("reads processor settings from preprocessor_config.json or processor_config.json", () => {
    const dir = mkdtempSync(join(work, "config-"));
    expect(() => readImageProcessorConfig(dir)).toThrow(/no preprocessor_config.json/);
    writeFileSync(join(dir, "processor_config.json"), JSON.stringify({ image_processor: { resample: 2 }, processor_class: "X" }));
    expect(readImageProcessorConfig(dir).json).toEqual({ resample: 2 });
    writeFileSync(join(dir, "preprocessor_config.json"), "{ broken");
    expect(() => readImageProcessorConfig(dir)).toThrow(/preprocessor_config.json: not valid JSON/);
  });
});
