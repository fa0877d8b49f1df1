// RGB images -> pixel_values (B, 3, H, W) float32: rescale (1/255), then (x - mean) / std per channel.
import * as T from "@pisces/tensor-cuda";
import type { RgbImage } from "./image.js";

export interface NormalizeOptions {
  rescaleFactor?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  device?: T.Device;
}

/** Stacks same-sized RGB images into normalized pixel values (B, 3, H, W). */
export function toPixelValues(images: readonly RgbImage[], options: NormalizeOptions = {}): T.Tensor {
  if (images.length === 0) throw new RangeError("toPixelValues: no images");
  const { width, height } = images[0]!;
  if (images.some((im) => im.width !== width || im.height !== height))
    throw new RangeError(`toPixelValues: images differ in size (${images.map((im) => `${im.width}x${im.height}`).join(", ")}); resize them first`);
  images.forEach((im, i) => {
    if (!(im.data instanceof Uint8Array) || im.data.length !== width * height * 3)
      throw new RangeError(`toPixelValues: image ${i} is ${width}x${height} RGB, which needs ${width * height * 3} bytes, but holds ${im.data?.length}`);
  });
  const scale = options.rescaleFactor ?? 1 / 255;
  for (const [name, v, positive] of [
    ["mean", options.mean, false],
    ["std", options.std, true],
  ] as const)
    if (v !== undefined && (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x) && (!positive || x > 0))))
      throw new RangeError(`toPixelValues: ${name} must be 3 finite numbers${positive ? " above 0" : ""}, got ${JSON.stringify(v)}`);
  if (!(typeof scale === "number" && Number.isFinite(scale))) throw new RangeError(`toPixelValues: rescaleFactor must be a finite number, got ${scale}`);
  const mean = options.mean ?? [0, 0, 0];
  const std = options.std ?? [1, 1, 1];
  const plane = width * height;
  const out = new Float32Array(images.length * 3 * plane);
  // One 256-entry table per channel, each entry computed with transformers' float32 arithmetic:
  // (x * scale - mean) / std.
  const tables = [0, 1, 2].map((c) => {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    return Float32Array.from({ length: 256 }, (_, x) => Math.fround(Math.fround(Math.fround(x * scale) - m) / s));
  }) as [Float32Array, Float32Array, Float32Array];
  images.forEach((im, b) => {
    const r = b * 3 * plane;
    const g = r + plane;
    const bl = g + plane;
    const d = im.data;
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      out[r + i] = tables[0][d[p]!]!;
      out[g + i] = tables[1][d[p + 1]!]!;
      out[bl + i] = tables[2][d[p + 2]!]!;
    }
  });
  return T.tensor(out, { shape: [images.length, 3, height, width], device: options.device });
}
