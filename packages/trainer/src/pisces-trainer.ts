// Trains a Pisces stage (the LLM and the three MLPs; both encoders frozen, under no-grad) on the
// shared loop (loop.ts): a record becomes its token ids, labels, image places and pixel values for
// both encoders; a micro-batch is right-padded and its loss is @pisces/model's forward. The final
// folder is the whole Pisces folder (savePretrained).
import { join } from "node:path";
import { type EncodedRecord, PiscesForConditionalGeneration, type PiscesRecord } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { latestCheckpoint } from "./checkpoint.js";
import { DataError, isImage, RecordStream } from "./data.js";
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

/** Whether the model still holds the identity statistics (mean 0, std 1) it was built with. */
function identityStatistics(model: PiscesForConditionalGeneration): boolean {
  const b = model as unknown as { generation_target_mean: T.Tensor; generation_target_std: T.Tensor };
  return T.scope(() => Boolean(b.generation_target_mean.eq(0).all().item()) && Boolean(b.generation_target_std.eq(1).all().item()));
}

/**
 * generation_target_normalization's statistics: the per-dimension mean and std of the gen-CLIP
 * targets of the first `target_statistics_records` generation images of the data (in the recipe's
 * order), set on the model before training. Returns how many images were measured.
 */
export async function measureTargetStatistics(model: PiscesForConditionalGeneration, recipe: Recipe): Promise<number> {
  const processor = model.processor!;
  const stream = new RecordStream(recipe.data, recipe.seed, recipe.shuffle);
  const D = model.genClip.clip.config.hiddenSize;
  const sum = T.zeros([D], { dtype: "float64" });
  const sumSq = T.zeros([D], { dtype: "float64" });
  let images = 0;
  let vectors = 0;
  try {
    for (let seen = 0; images < recipe.targetStatisticsRecords && seen < recipe.targetStatisticsRecords * 20; seen++) {
      const { record } = await stream.next();
      if ("bad" in record || record.task !== "generation" || !isImage(record.image)) continue;
      let pixels: T.Tensor;
      try {
        pixels = (await processor.genClipProcessor.preprocess(record.image)).pixelValues;
      } catch {
        continue; // a bad image: the training loop names it
      }
      T.scope(() => {
        const t = model.generationTargets(pixels).to("float64").flatten(0, 1); // (m, D)
        sum.add_(t.sum(0));
        sumSq.add_(t.pow(2).sum(0));
        vectors += t.size(0);
      });
      pixels.dispose();
      images++;
    }
    if (images === 0)
      throw new DataError("generation_target_normalization needs generation records with images to measure the target statistics; the data has none");
    T.scope(() => {
      const mean = sum.div(vectors);
      const std = sumSq.div(vectors).sub(mean.pow(2)).clamp(1e-12).sqrt().clamp(1e-6);
      model.setGenerationTargetStatistics(mean.to("float32"), std.to("float32"));
    });
    return images;
  } finally {
    sum.dispose();
    sumSq.dispose();
  }
}

export async function* trainPisces(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const model = PiscesForConditionalGeneration.fromPretrained(recipe.model);
  try {
    const config = model.config as {
      textLossWeight: number;
      imageLossWeight: number;
      generationInputNoiseStd: number;
      generationScheduledSampling: number;
      generationRolloutSampling: number;
    };
    if (recipe.textLossWeight !== null) config.textLossWeight = recipe.textLossWeight;
    if (recipe.imageLossWeight !== null) config.imageLossWeight = recipe.imageLossWeight;
    if (recipe.generationInputNoiseStd !== null) config.generationInputNoiseStd = recipe.generationInputNoiseStd;
    if (recipe.generationScheduledSampling !== null) config.generationScheduledSampling = recipe.generationScheduledSampling;
    if (recipe.generationRolloutSampling !== null) config.generationRolloutSampling = recipe.generationRolloutSampling;
    if (recipe.gradientCheckpointing) model.language_model.gradientCheckpointingEnable();
    const processor = model.processor!;
    if (model.config.generationTargetNormalization && !(options.resume && latestCheckpoint(recipe.outputDir)) && identityStatistics(model)) {
      const n = await measureTargetStatistics(model, recipe);
      options.warn?.(`generation_target_normalization: target statistics measured over ${n} generation images`);
    }
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
