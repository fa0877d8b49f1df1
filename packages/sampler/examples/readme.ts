// The README's example (test/readme.test.ts checks they are equal and runs it).
import { writeFileSync } from "node:fs";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { imageToText, textToImage } from "@pisces/sampler";

export async function drawAndDescribe(dir: string, out: string, size = 1024, steps = 50) {
  const model = PiscesForConditionalGeneration.fromPretrained(dir);
  const controller = new AbortController(); // controller.abort() stops between steps and frees everything
  let image: Buffer | undefined;
  for await (const event of textToImage(model, {
    prompts: "a red circle to the left of a blue square",
    seed: 42,
    steps,
    width: size,
    height: size,
    signal: controller.signal,
  })) {
    if (event.stage === "vectors") process.stderr.write(`\rvectors ${event.i}/${event.of}`);
    if (event.stage === "denoise") process.stderr.write(`\rdenoise ${event.step}/${event.of}`);
    if (event.stage === "done") image = event.images[0];
  }
  writeFileSync(out, image!);
  let caption = "";
  for await (const event of imageToText(model, { images: out, maxNewTokens: 32 })) if (event.stage === "text") caption += event.text[0];
  model.dispose();
  return caption;
}
