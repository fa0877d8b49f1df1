// Trains SigLIP (both towers and the logit scale / bias) on image-caption pairs with the sigmoid
// loss (Zhai et al. 2023, as transformers' SiglipModel computes it): every image-text pair of the
// batch is a binary match / no-match problem, texts padded to max_length as SigLIP was trained.
// The model is a SiglipModel folder with its tokenizer and processor; without weights it starts
// from config.json (initialised from the recipe's seed). The final folder loads as SiglipModel and,
// as the siglip/ part of a Pisces folder, as SiglipVisionModel.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveSiglipTextConfig, resolveSiglipVisionConfig, SiglipModel, SiglipProcessor } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";
import { writeFinalFolder } from "./checkpoint.js";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import { isImage } from "./data.js";
import type { Recipe } from "./recipe.js";

/** log(sigmoid(x)), stable for large |x|: min(x, 0) - log(1 + exp(-|x|)). */
function logSigmoid(x: T.Tensor): T.Tensor {
  return x.clamp(null, 0).sub(x.abs().neg().exp().add(1).log());
}

/** The sigmoid loss of a batch of matching pairs (row i of the texts describes image i). */
export function siglipLoss(model: SiglipModel, inputIds: T.Tensor, pixelValues: T.Tensor): T.Tensor {
  return T.scope(() => {
    const logits = model.forward({ inputIds, pixelValues }).logitsPerText; // (n, n)
    const n = logits.size(0);
    const signs = T.eye(n, { dtype: logits.dtype, device: logits.device }).mul(2).sub(1); // +1 on the diagonal, -1 elsewhere
    return logSigmoid(logits.mul(signs)).sum(-1).neg().mean();
  });
}

function loadOrCreate(dir: string, seed: number): SiglipModel {
  if (existsSync(join(dir, "model.safetensors")) || existsSync(join(dir, "model.safetensors.index.json"))) return SiglipModel.fromPretrained(dir);
  const { json, path } = T.readConfigJson(dir, "SigLIP checkpoint");
  const j = json as { text_config?: unknown; vision_config?: unknown };
  const text = resolveSiglipTextConfig((j.text_config ?? {}) as never, `${path}: text_config`);
  const vision = resolveSiglipVisionConfig((j.vision_config ?? {}) as never, `${path}: vision_config`);
  T.manualSeed(seed); // the same recipe starts from the same weights
  const model = new SiglipModel(text, vision);
  // The SigLIP paper's start (Zhai et al. 2023, section 3.3): t' = log 10, b = -10, so the many
  // negatives of a batch do not swamp the loss at the first step. (transformers initialises t' = 0,
  // b = 0, meant for fine-tuning loaded weights; from scratch a tiny SigLIP stayed at chance with it.)
  T.noGrad(() => {
    model.logit_scale.fill_(Math.log(10));
    model.logit_bias.fill_(-10);
  });
  return model;
}

export async function* trainSiglip(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const model = loadOrCreate(recipe.model, recipe.seed);
  const processor = SiglipProcessor.fromPretrained(recipe.model);
  const maxLength = model.textConfig.maxPositionEmbeddings;
  try {
    yield* runTraining<{ pixels: T.Tensor; caption: string }>(
      recipe,
      {
        module: model,
        async prepare(record, source) {
          const { image, caption } = record as { image?: unknown; caption?: unknown };
          if (!isImage(image)) return `${source}: no image`;
          if (typeof caption !== "string" || caption.trim() === "") return `${source}: no caption`;
          return { pixels: (await processor.imageProcessor.preprocess(image)).pixelValues, caption };
        },
        disposeExample: (e) => e.pixels.dispose(),
        loss(examples) {
          const ids = processor.tokenizer.batchEncode(
            examples.map((e) => e.caption),
            { padding: "max_length", maxLength, truncation: true },
          );
          const loss = siglipLoss(model, T.tensor(ids, { dtype: "int64" }), T.cat(examples.map((e) => e.pixels)));
          return { loss, parts: {} };
        },
        finish: () => writeFinalFolder(recipe.model, recipe.outputDir, "model.safetensors", model.stateDict()),
      },
      options,
    );
  } finally {
    model.dispose();
  }
}
