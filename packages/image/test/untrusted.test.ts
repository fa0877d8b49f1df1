// Regression corpus for untrusted images (issue 10): SVG that pulls in local files, formats
// judged by the bytes and not the name, folders and FIFOs given as images, bad raw pixels.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { detectImageFormat, ImageLoadError, loadImage, type ImageInput, toPixelValues } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-image-untrusted-"));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection, none came");
}

describe("only the documented raster formats are decoded", () => {
  it("an SVG referencing a local file is refused, by path (even named .png) and as bytes", async () => {
    const secret = join(work, "secret.png");
    await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 200, g: 10, b: 10 } } })
      .png()
      .toFile(secret);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="4" height="4"><image href="secret.png" xlink:href="file://${secret}" width="4" height="4"/></svg>`;
    for (const name of ["evil.svg", "evil.png"]) {
      const path = join(work, name);
      writeFileSync(path, svg);
      const e = await rejection(loadImage(path));
      expect(e).toBeInstanceOf(ImageLoadError);
      expect(e.message).toMatch(/an SVG or XML document \(SVG is not decoded/);
      expect(e.message).toContain(path);
    }
    expect((await rejection(loadImage(Buffer.from(svg)))).message).toMatch(/SVG is not decoded/);
    expect((await rejection(loadImage(Buffer.from(`<?xml version="1.0"?>\n${svg}`)))).message).toMatch(/SVG is not decoded/);
  });
  it("a PDF is refused", async () => {
    expect((await rejection(loadImage(Buffer.from("%PDF-1.4\n%...")))).message).toMatch(/a PDF document/);
  });
  it("a PNG named .jpg still loads (the bytes decide)", async () => {
    const path = join(work, "really-a-png.jpg");
    await sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 1, g: 2, b: 3 } } })
      .png()
      .toFile(path);
    const im = await loadImage(path);
    expect([im.width, im.height]).toEqual([3, 2]);
  });
  it("detects each format's magic bytes", () => {
    const b = (...x: (number | string)[]) => Uint8Array.from(x.flatMap((v) => (typeof v === "string" ? [...v].map((c) => c.charCodeAt(0)) : [v])));
    expect(detectImageFormat(b(0x89, "PNG", 0x0d, 0x0a, 0x1a, 0x0a))).toBe("png");
    expect(detectImageFormat(b(0xff, 0xd8, 0xff, 0xe0))).toBe("jpeg");
    expect(detectImageFormat(b("RIFF", 0, 0, 0, 0, "WEBP"))).toBe("webp");
    expect(detectImageFormat(b("GIF89a"))).toBe("gif");
    expect(detectImageFormat(b(0, 0, 0, 0x1c, "ftypavif"))).toBe("avif");
    expect(detectImageFormat(b("II", 0x2a, 0))).toBe("tiff");
    expect(detectImageFormat(b("<svg"))).toBeNull();
  });
});

describe("inputs that are not images", () => {
  it("a folder, a FIFO, a missing file, an empty file", async () => {
    const dir = join(work, "a-folder.png");
    mkdirSync(dir);
    expect((await rejection(loadImage(dir))).message).toMatch(/a-folder.png: expected the image file here, found a folder/);
    const fifo = join(work, "pipe.png");
    execFileSync("mkfifo", [fifo]);
    expect((await rejection(loadImage(fifo))).message).toMatch(/found a named pipe \(FIFO\)/);
    expect((await rejection(loadImage(join(work, "none.png")))).message).toMatch(/no such image file/);
    writeFileSync(join(work, "empty.png"), "");
    expect((await rejection(loadImage(join(work, "empty.png")))).message).toMatch(/the file is empty/);
  });
  it("null, a number, raw pixels without a typed array", async () => {
    for (const bad of [null, undefined, 42, {}])
      expect((await rejection(loadImage(bad as unknown as ImageInput))).message).toMatch(/expected an image: a file path, a Buffer\/Uint8Array/);
    const raw = { data: [1, 2, 3] as unknown as Uint8Array, width: 1, height: 1, channels: 3 as const };
    expect((await rejection(loadImage(raw))).message).toMatch(/raw pixels need data as a Uint8Array/);
    expect((await rejection(loadImage({ data: new Uint8Array(5), width: 1, height: 1, channels: 3 }))).message).toMatch(/needs 3 bytes, got 5/);
  });
  it("a corrupt PNG says the data is corrupt, not just 'libpng read error'", async () => {
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 9, g: 9, b: 9 } } })
      .png()
      .toBuffer();
    const broken = Buffer.from(png);
    broken.fill(0xab, 40, png.length - 12);
    const e = await rejection(loadImage(broken));
    expect(e).toBeInstanceOf(ImageLoadError);
    expect(e.message).toMatch(/cannot load a \d+-byte buffer: .+/);
  });
  it("toPixelValues refuses a buffer of the wrong length and bad mean/std instead of giving NaN", () => {
    expect(() => toPixelValues([{ data: new Uint8Array(5), width: 2, height: 1 }])).toThrow(/needs 6 bytes, but holds 5/);
    const ok = { data: new Uint8Array(6), width: 2, height: 1 };
    expect(() => toPixelValues([ok], { std: [0.5, 0, 0.5] })).toThrow(/std must be 3 finite numbers above 0/);
    expect(() => toPixelValues([ok], { mean: [0.5] as unknown as [number, number, number] })).toThrow(/mean must be 3 finite numbers/);
  });
});
