// Trains the gen-CLIP vision tower with masked image modelling, SimMIM-style (Xie et al. 2022):
// the embeddings of a random `mask_ratio` of the patches are replaced by a learned mask token
// (plus their position embedding), the ViT runs on every token, and a linear head predicts each
// masked patch's pixels; MSE over the masked patches. The paper's gen-CLIP adds a contrastive
// image-text term, which needs a CLIP text tower: not built yet. The model is a CLIP vision folder
// (config.json, preprocessor_config.json, weights optional: without them the tower starts from its
// config, seeded). The final folder is that CLIP vision folder with the trained weights.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ClipImageProcessor, type ClipVisionConfigJson, ClipVisionModel, resolveClipVisionConfig } from "@pisces/gen-clip";
import * as T from "@pisces/tensor-cuda";
import { writeFinalFolder } from "./checkpoint.js";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import type { Recipe } from "./recipe.js";

const { Module, Linear, Parameter } = T.nn;

/** The tower plus what masked image modelling adds to it (checkpointed, not exported). */
export class MaskedImageModel extends Module {
  clip: ClipVisionModel;
  mask_token: T.nn.Parameter;
  pixel_head: T.nn.Linear;
  constructor(clip: ClipVisionModel) {
    super();
    const { hiddenSize: D, patchSize: p } = clip.config;
    this.clip = clip;
    this.mask_token = new Parameter(T.scope(() => T.randn([D]).mul(0.02)));
    this.pixel_head = new Linear(D, p * p * 3);
  }

  /** pixels (B, 3, S, S) normalized; mask (B, N) true where a patch is hidden. The mean squared error over hidden patches. */
  loss(pixels: T.Tensor, mask: T.Tensor): T.Tensor {
    return T.scope(() => {
      const { patchSize: p, imageSize } = this.clip.config;
      const G = imageSize / p;
      const B = pixels.size(0);
      const vm = this.clip.vision_model;
      const e = vm.embeddings.forward(pixels); // (B, 1 + N, D), positions added
      const patches = e.slice(1, 1); // (B, N, D)
      const hidden = this.mask_token.add(vm.embeddings.position_embedding.weight.slice(0, 1)).unsqueeze(0).expand(patches.shape);
      const tokens = T.cat([e.slice(1, 0, 1), T.where(mask.unsqueeze(-1), hidden, patches)], 1);
      const states = vm.encoder.forward(vm.pre_layrnorm.forward(tokens));
      const pred = this.pixel_head.forward(states[states.length - 1]!.slice(1, 1)); // (B, N, p * p * 3)
      const target = pixels
        .reshape([B, 3, G, p, G, p])
        .permute([0, 2, 4, 3, 5, 1])
        .reshape([B, G * G, p * p * 3]); // patch-major RGB
      const m = mask.to("float32");
      return pred.sub(target).pow(2).mean(-1).mul(m).sum().div(m.sum().clamp(1));
    });
  }
}

function loadOrCreate(dir: string, seed: number): ClipVisionModel {
  if (existsSync(join(dir, "model.safetensors")) || existsSync(join(dir, "model.safetensors.index.json"))) return ClipVisionModel.fromPretrained(dir);
  const { json, path } = T.readConfigJson(dir, "CLIP checkpoint");
  const config = resolveClipVisionConfig(json as ClipVisionConfigJson, path);
  T.manualSeed(seed);
  return new ClipVisionModel(config);
}

export async function* trainGenClip(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const clip = loadOrCreate(recipe.model, recipe.seed);
  T.manualSeed(recipe.seed + 1); // the mask token and the head start the same for the same recipe
  const model = new MaskedImageModel(clip);
  const processor = ClipImageProcessor.fromPretrained(recipe.model);
  const G = clip.config.imageSize / clip.config.patchSize;
  try {
    yield* runTraining<T.Tensor>(
      recipe,
      {
        module: model,
        async prepare(record, source) {
          const image = (record as { image?: unknown }).image;
          if (typeof image !== "string") return `${source}: no image`;
          return (await processor.preprocess(image)).pixelValues;
        },
        disposeExample: (t) => t.dispose(),
        loss(list, generator) {
          const pixels = T.cat(list, 0);
          const mask = T.rand([pixels.size(0), G * G], { generator }).lt(recipe.maskRatio);
          return { loss: model.loss(pixels, mask), parts: {} };
        },
        finish: () => writeFinalFolder(recipe.model, recipe.outputDir, "model.safetensors", clip.stateDict()),
      },
      options,
    );
  } finally {
    model.dispose();
  }
}
