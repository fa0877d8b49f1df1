// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { loadImage, resizePil, toPixelValues } from "@pisces/image";
import type * as T from "@pisces/tensor-cuda";

export async function pixelValues(path: string): Promise<T.Tensor> {
  const rgb = await loadImage(path); // or a Buffer, or {data, width, height, channels}
  const small = resizePil(rgb, 224, 224, "bicubic"); // exactly Pillow's result
  return toPixelValues([small], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }); // (1, 3, 224, 224) float32
}
