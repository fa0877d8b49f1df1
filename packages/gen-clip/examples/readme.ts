// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { ClipImageProcessor, GenClipEncoder } from "@pisces/gen-clip";
import * as T from "@pisces/tensor-cuda";

export async function genClipVectors(dir: string, image: string, kernel = 4): Promise<T.Tensor> {
  const encoder = GenClipEncoder.fromPretrained(dir, { kernel }); // a 32x32 grid with kernel 4 -> 64 vectors
  const { pixelValues } = await ClipImageProcessor.fromPretrained(dir).preprocess(image);
  const vectors = T.inference(() => encoder.encode(pixelValues)); // (1, vectors, D)
  pixelValues.dispose();
  encoder.clip.dispose();
  return vectors;
}
