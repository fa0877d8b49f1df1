// Trains a Pisces stage (the LLM and the three MLPs; both encoders frozen, under no-grad) on the
// shared loop (loop.ts): a record becomes its token ids, labels, image places and pixel values for
// both encoders; a micro-batch is right-padded and its loss is @pisces/model's forward. The final
// folder is the whole Pisces folder (savePretrained).
import { join } from "node:path";
import { type EncodedRecord, PiscesForConditionalGeneration, type PiscesRecord } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import type { Recipe } from "./recipe.js";

interface Example {
  encoded: EncodedRecord;
  understanding: T.Tensor[];
  generation: T.Tensor[];
}

async function preprocessAll(processor: { preprocess(i: never): Promise<{ pixelValues: T.Tensor }> }, images: readonly unknown[]): Promise<T.Tensor[]> {
  const list: T.Tensor[] = [];
  try {
    for (const image of images) list.push((await processor.preprocess(image as never)).pixelValues);
  } catch (e) {
    for (const t of list) t.dispose();
    throw e;
  }
  return list;
}

export async function* trainPisces(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const model = PiscesForConditionalGeneration.fromPretrained(recipe.model);
  try {
    const config = model.config as { textLossWeight: number; imageLossWeight: number };
    if (recipe.textLossWeight !== null) config.textLossWeight = recipe.textLossWeight;
    if (recipe.imageLossWeight !== null) config.imageLossWeight = recipe.imageLossWeight;
    const processor = model.processor!;
    yield* runTraining<Example>(
      recipe,
      {
        module: model,
        accepts: (record) => recipe.tasks.includes((record as PiscesRecord).task),
        async prepare(record, source) {
          const r = record as PiscesRecord;
          if (!recipe.tasks.includes(r.task)) return null;
          const encoded = processor.encodeRecord(r);
          if (r.task === "generation" && encoded.generationImages.length === 0) return `${source}: a generation record needs its image to train`;
          const understanding = await preprocessAll(processor.siglipProcessor as never, encoded.understandingImages);
          try {
            return { encoded, understanding, generation: await preprocessAll(processor.genClipProcessor as never, encoded.generationImages) };
          } catch (e) {
            for (const t of understanding) t.dispose();
            throw e;
          }
        },
        disposeExample: (e) => {
          for (const t of [...e.understanding, ...e.generation]) t.dispose();
        },
        loss(examples, generator) {
          const pad = processor.pad(
            examples.map((e) => e.encoded),
            { padding: "right" },
          );
          const und = examples.flatMap((e) => e.understanding);
          const gen = examples.flatMap((e) => e.generation);
          const r = model.forward({
            ...pad,
            understandingPixelValues: und.length ? T.cat(und, 0) : null,
            generationPixelValues: gen.length ? T.cat(gen, 0) : null,
            noiseGenerator: generator,
          });
          return { loss: r.loss, parts: { text_loss: r.textLoss, image_loss: r.imageLoss } };
        },
        finish() {
          const final = join(recipe.outputDir, "final");
          model.savePretrained(final);
          return final;
        },
      },
      options,
    );
  } finally {
    model.dispose();
  }
}
