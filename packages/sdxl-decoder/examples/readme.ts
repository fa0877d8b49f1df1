// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { writeFileSync } from "node:fs";
import { SdxlDecoder } from "@pisces/sdxl-decoder";
import type * as T from "@pisces/tensor-cuda";

export async function decodeToPng(dir: string, vectors: T.Tensor, out: string, size = 1024, steps = 50): Promise<void> {
  const decoder = SdxlDecoder.fromPretrained(dir); // unet/, vae/, scheduler/; pass {device: "cuda"} on a GPU
  const loop = decoder.decodeSteps(vectors, { steps, guidanceScale: 3, seed: 1, height: size, width: size });
  let step = await loop.next();
  for (; !step.done; step = await loop.next()) process.stdout.write(`\rstep ${step.value.step + 1}/${steps}`); // a CLI progress bar; a server can stream this
  const { png } = await decoder.decode(vectors, { steps, guidanceScale: 3, seed: 1, height: size, width: size });
  writeFileSync(out, png[0]!);
  step.value.images.dispose();
  decoder.unet.dispose();
  decoder.vae.dispose();
}
