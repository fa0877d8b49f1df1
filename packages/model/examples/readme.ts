// The README's example (test/readme.test.ts checks they are equal and runs it).
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";

export async function trainingStepAndVectors(dir: string, image: string) {
  const model = PiscesForConditionalGeneration.fromPretrained(dir); // config.json, model.safetensors, tokenizer, siglip/, gen_clip/, decoder/
  const processor = model.processor!;
  // a mixed batch, as the paper samples both tasks at every step
  const batch = await processor.call([
    { task: "captioning", image, caption: "a red circle" },
    { task: "generation", image, caption: "a red circle" },
  ]);
  const out = model.forward(batch); // {loss, textLoss, imageLoss, imageCosineLoss, logits, imageEmbeddings}
  out.loss.backward(); // gradients reach the LLM and the three MLPs; the encoders are frozen
  const losses = { text: out.textLoss.item(), image: out.imageLoss.item() };
  // the 64 vectors of a caption and of the empty caption (classifier-free guidance), one batched decode
  const { conditional, unconditional } = model.generateImageEmbeddings({ captions: ["a blue square"], guidanceScale: 3 });
  const shape = conditional.shape; // (1, m, gen-CLIP width)
  for (const t of [conditional, unconditional!, ...Object.values(batch), ...Object.values(out)]) if (t instanceof T.Tensor) t.dispose();
  model.dispose();
  return { losses, shape };
}
