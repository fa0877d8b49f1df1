// Trains the gen-CLIP vision tower with masked image modelling, SimMIM-style (Xie et al. 2022):
// the embeddings of a random `mask_ratio` of the patches are replaced by a learned mask token
// (plus their position embedding), the ViT runs on every token, and a linear head predicts each
// masked patch's pixels; MSE over the masked patches. With a full CLIP folder (a text tower and
// tokenizer.json beside the vision tower), the paper's contrastive image-text term is added:
// contrastive_weight x CLIP's symmetric loss between the unmasked images and their captions.
// The model is a CLIP vision folder or a CLIPModel folder (config.json, preprocessor_config.json,
// weights optional: without them the towers start from the config, seeded). The final folder is
// that folder with the trained weights (Pisces' gen_clip/ loads its vision tower).
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  ClipImageProcessor,
  ClipModel,
  type ClipVisionConfigJson,
  ClipVisionModel,
  type ClipVisionTransformer,
  clipContrastiveLoss,
  resolveClipConfig,
  resolveClipVisionConfig,
} from "@pisces/gen-clip";
import { AutoTokenizer } from "@pisces/llama";
import * as T from "@pisces/tensor-cuda";
import { writeFinalFolder } from "./checkpoint.js";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import { isImage } from "./data.js";
import { type Recipe, RecipeError } from "./recipe.js";

const { Module, Linear, Parameter } = T.nn;

/** The tower plus what masked image modelling adds to it (checkpointed, not exported). */
export class MaskedImageModel extends Module {
  clip: ClipVisionModel | ClipModel;
  mask_token: T.nn.Parameter;
  pixel_head: T.nn.Linear;
  constructor(clip: ClipVisionModel | ClipModel) {
    super();
    const { hiddenSize: D, patchSize: p } = clip.vision_model.config;
    this.clip = clip;
    this.mask_token = new Parameter(T.scope(() => T.randn([D]).mul(0.02)));
    this.pixel_head = new Linear(D, p * p * 3);
  }

  /** pixels (B, 3, S, S) normalized; mask (B, N) true where a patch is hidden. The mean squared error over hidden patches. */
  loss(pixels: T.Tensor, mask: T.Tensor): T.Tensor {
    return T.scope(() => {
      const vm: ClipVisionTransformer = this.clip.vision_model;
      const { patchSize: p, imageSize } = vm.config;
      const G = imageSize / p;
      const B = pixels.size(0);
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

  /** CLIP's symmetric contrastive loss between the (unmasked) images and their captions (right-padded ids); needs the text tower. */
  contrastiveLoss(pixels: T.Tensor, inputIds: T.Tensor, attentionMask: T.Tensor): T.Tensor {
    if (!(this.clip instanceof ClipModel)) throw new Error("the contrastive term needs a CLIP model with a text tower");
    const clip = this.clip;
    return T.scope(() => clipContrastiveLoss(clip.forward({ inputIds, attentionMask, pixelValues: pixels }).logitsPerText));
  }
}

function loadOrCreate(dir: string, seed: number): ClipVisionModel | ClipModel {
  const { json, path } = T.readConfigJson(dir, "CLIP checkpoint");
  const full = (json as { text_config?: unknown }).text_config !== undefined;
  if (existsSync(join(dir, "model.safetensors")) || existsSync(join(dir, "model.safetensors.index.json")))
    return full ? ClipModel.fromPretrained(dir) : ClipVisionModel.fromPretrained(dir);
  T.manualSeed(seed);
  if (full) return new ClipModel(resolveClipConfig(json as Record<string, unknown>, path));
  return new ClipVisionModel(resolveClipVisionConfig(json as ClipVisionConfigJson, path));
}

interface Example {
  pixels: T.Tensor;
  ids: number[] | null;
}

export async function* trainGenClip(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const clip = loadOrCreate(recipe.model, recipe.seed);
  const text = clip instanceof ClipModel ? clip : null;
  const weight = recipe.contrastiveWeight ?? (text ? 1 : 0);
  if (weight > 0 && !text) {
    clip.dispose();
    throw new RecipeError(
      [
        `contrastive_weight ${weight} needs a text tower: ${recipe.model} is a vision-only CLIP folder (use a CLIPModel folder with text_config and tokenizer.json)`,
      ],
      join(recipe.model, "config.json"),
    );
  }
  const tokenizer = text && weight > 0 ? AutoTokenizer.fromPretrained(recipe.model) : null;
  T.manualSeed(recipe.seed + 1); // the mask token and the head start the same for the same recipe
  const model = new MaskedImageModel(clip);
  const processor = ClipImageProcessor.fromPretrained(recipe.model);
  const vision = clip.vision_model.config;
  const G = vision.imageSize / vision.patchSize;
  try {
    yield* runTraining<Example>(
      recipe,
      {
        module: model,
        async prepare(record, source) {
          const r = record as { image?: unknown; caption?: unknown };
          if (!isImage(r.image)) return `${source}: no image`;
          let ids: number[] | null = null;
          if (tokenizer && text) {
            if (typeof r.caption !== "string" || !r.caption.trim()) return `${source}: the contrastive term needs a caption`;
            ids = tokenizer.encode(r.caption);
            if (ids.length > text.config.textConfig.maxPositionEmbeddings)
              return `${source}: the caption has ${ids.length} tokens, more than the text tower's ${text.config.textConfig.maxPositionEmbeddings}`;
          }
          return { pixels: (await processor.preprocess(r.image)).pixelValues, ids };
        },
        disposeExample: (e) => e.pixels.dispose(),
        loss(list, generator): { loss: T.Tensor; parts: Record<string, T.Tensor> } {
          const pixels = T.cat(
            list.map((e) => e.pixels),
            0,
          );
          const mask = T.rand([pixels.size(0), G * G], { generator }).lt(recipe.maskRatio);
          const mim = model.loss(pixels, mask);
          if (!tokenizer || !text) return { loss: mim, parts: {} };
          const pad = text.config.textConfig.padTokenId;
          const L = Math.max(...list.map((e) => e.ids!.length));
          const inputIds = T.tensor(
            list.map((e) => [...e.ids!, ...new Array(L - e.ids!.length).fill(pad)]),
            { dtype: "int64" },
          );
          const attentionMask = T.tensor(
            list.map((e) => [...e.ids!.map(() => 1), ...new Array(L - e.ids!.length).fill(0)]),
            { dtype: "int64" },
          );
          const contrastive = model.contrastiveLoss(pixels, inputIds, attentionMask);
          return { loss: mim.add(contrastive.mul(weight)), parts: { mim_loss: mim, contrastive_loss: contrastive } };
        },
        finish: () => writeFinalFolder(recipe.model, recipe.outputDir, "model.safetensors", clip.stateDict()),
      },
      options,
    );
  } finally {
    model.dispose();
  }
}
