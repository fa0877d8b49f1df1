import { writeFileSync } from "node:fs";
import { evalDecoderCeiling } from "@pisces/cli";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { generateImages } from "../../packages/sampler/src/index.ts";
import { detailedCaption, encodePng, randomScene, SPLIT_SEED } from "@pisces/shapes";
import * as T from "@pisces/tensor-cuda";
T.setNumThreads(1);
const model = PiscesForConditionalGeneration.fromPretrained(process.argv[2]!);
for (let i = 0; i < 3; i++) {
  const scene = randomScene(SPLIT_SEED.heldout + i);
  const caption = detailedCaption(scene);
  console.log(i, caption);
  writeFileSync(`/tmp/gen-${i}-true.png`, await encodePng(scene));
  const pngs = await generateImages(model, { prompts: caption, numImagesPerPrompt: 2, seed: 1, steps: 30, guidanceScale: 3 });
  pngs.forEach((p, j) => writeFileSync(`/tmp/gen-${i}-${j}.png`, p));
}

model.dispose();
