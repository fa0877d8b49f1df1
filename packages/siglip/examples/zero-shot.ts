// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { SiglipModel, SiglipProcessor } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";

export async function zeroShot(dir: string, labels: string[], images: string[]): Promise<T.Tensor> {
  // dir: config.json, model.safetensors, spiece.model and preprocessor_config.json of a SiglipModel
  const processor = SiglipProcessor.fromPretrained(dir);
  const model = SiglipModel.fromPretrained(dir);
  const inputs = await processor.call({ text: labels, images }); // ids padded to 64, as SigLIP was trained
  const out = T.inference(() => model.forward(inputs).logitsPerImage.sigmoid()); // (images, labels): each pair scored on its own
  model.dispose();
  return out;
}
