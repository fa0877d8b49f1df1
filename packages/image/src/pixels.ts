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
  const scale = options.rescaleFactor ?? 1 / 255;
  const mean = options.mean ?? [0, 0, 0];
  const std = options.std ?? [1, 1, 1];
  const plane = width * height;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((im, b) => {
    for (let c = 0; c < 3; c++) {
      // the same float32 arithmetic as transformers: (x * scale - mean) / std
      const m = Math.fround(mean[c]!);
      const s = Math.fround(std[c]!);
      const base = (b * 3 + c) * plane;
      for (let i = 0; i < plane; i++) out[base + i] = Math.fround(Math.fround(Math.fround(im.data[i * 3 + c]! * scale) - m) / s);
    }
  });
  return T.tensor(out, { shape: [images.length, 3, height, width], device: options.device });
}
