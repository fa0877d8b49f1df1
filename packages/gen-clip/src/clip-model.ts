// CLIP with both towers (Radford et al. 2021), following transformers' CLIPModel (v5): the text
// tower (token + position embeddings, causal pre-norm encoder, final_layer_norm, pooled at the
// first eos), the vision tower of model.ts, linear projections into one space, and the
// contrastive loss over a batch of image-text pairs. Gen-CLIP is trained with it (its
// contrastive term); Pisces uses only the vision tower. Module paths equal the checkpoint keys
// (`text_model.encoder.layers.0...`, `vision_model...`, `text_projection.weight`, `logit_scale`).
import * as T from "@pisces/tensor-cuda";
import { type ClipConfig, type ClipTextConfig, resolveClipConfig } from "./config.js";
import { ClipEncoder, ClipVisionTransformer, type ModelOptions } from "./model.js";

type Tensor = T.Tensor;
const { Module, Linear, LayerNorm, Embedding, Parameter } = T.nn;

export class ClipTextEmbeddings extends Module {
  token_embedding: T.nn.Embedding;
  position_embedding: T.nn.Embedding;
  constructor(config: ClipTextConfig, options: ModelOptions = {}) {
    super();
    this.token_embedding = new Embedding(config.vocabSize, config.hiddenSize, options);
    this.position_embedding = new Embedding(config.maxPositionEmbeddings, config.hiddenSize, options);
  }
  /** inputIds (B, L) -> (B, L, D). */
  forward(inputIds: Tensor): Tensor {
    const L = inputIds.size(1);
    return this.token_embedding.forward(inputIds).add(this.position_embedding.weight.slice(0, 0, L));
  }
}

export interface ClipTextOutput {
  /** (B, L, D) after final_layer_norm. */
  lastHiddenState: Tensor;
  /** (B, D): the state at each sequence's first eos token. */
  poolerOutput: Tensor;
}

export class ClipTextModel extends Module {
  embeddings: ClipTextEmbeddings;
  encoder: ClipEncoder;
  final_layer_norm: T.nn.LayerNorm;
  constructor(
    readonly config: ClipTextConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.embeddings = new ClipTextEmbeddings(config, options);
    this.encoder = new ClipEncoder(config, options);
    this.final_layer_norm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
  }
  /** inputIds (B, L) int64; attentionMask (B, L), 1 for real tokens (right padding), or none. */
  forward(input: { inputIds: Tensor; attentionMask?: Tensor | null }): ClipTextOutput {
    return T.scope(() => {
      const ids = input.inputIds;
      if (ids.ndim !== 2) throw new RangeError(`inputIds must be (batch, length), got [${ids.shape}]`);
      const [B, L] = ids.shape as [number, number];
      if (L > this.config.maxPositionEmbeddings)
        throw new RangeError(`${L} tokens exceed max_position_embeddings ${this.config.maxPositionEmbeddings}: truncate the text`);
      // causal, and no query attends to padding
      let mask = T.ones([L, L], { dtype: "bool" }).tril().view([1, 1, L, L]);
      if (input.attentionMask) mask = mask.logicalAnd(input.attentionMask.to("bool").view([B, 1, 1, L]));
      const states = this.encoder.forward(this.embeddings.forward(ids), mask);
      const last = this.final_layer_norm.forward(states[states.length - 1]!);
      // transformers' rule: eos id 2 is the legacy config, pooled at the largest id; else at the first eos
      const at = this.config.eosTokenId === 2 ? ids.argmax(-1) : ids.eq(this.config.eosTokenId).to("int32").argmax(-1);
      const pooled = last.gather(1, at.view([B, 1, 1]).expand([B, 1, last.size(2)])).squeeze(1);
      return { lastHiddenState: last, poolerOutput: pooled };
    });
  }
}

export interface ClipOutput {
  /** (B_image, B_text): scaled cosine similarities. */
  logitsPerImage: Tensor;
  logitsPerText: Tensor;
  /** (B, projection_dim), unit length. */
  textEmbeds: Tensor;
  imageEmbeds: Tensor;
  /** The symmetric contrastive loss (pairs on the diagonal), when asked. */
  loss: Tensor | null;
}

/** Mean of the two cross-entropies over a square similarity matrix whose diagonal holds the pairs. */
export function clipContrastiveLoss(logitsPerText: Tensor): Tensor {
  return T.scope(() => {
    const targets = T.arange(logitsPerText.size(0));
    return T.crossEntropy(logitsPerText, targets)
      .add(T.crossEntropy(logitsPerText.transpose(0, 1), targets))
      .div(2);
  });
}

export class ClipModel extends Module {
  /** Keys of config.json this implementation does not use (reported, not silently dropped). */
  unknownConfigKeys: string[] = [];
  text_model: ClipTextModel;
  vision_model: ClipVisionTransformer;
  visual_projection: T.nn.Linear;
  text_projection: T.nn.Linear;
  logit_scale: T.nn.Parameter;
  constructor(
    readonly config: ClipConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.text_model = new ClipTextModel(config.textConfig, options);
    this.vision_model = new ClipVisionTransformer(config.visionConfig, options);
    this.visual_projection = new Linear(config.visionConfig.hiddenSize, config.projectionDim, { ...options, bias: false });
    this.text_projection = new Linear(config.textConfig.hiddenSize, config.projectionDim, { ...options, bias: false });
    this.logit_scale = new Parameter(T.tensor([config.logitScaleInitValue], options).view([]));
  }

  /** (B, projection_dim), not normalised (transformers' get_text_features). */
  getTextFeatures(input: { inputIds: Tensor; attentionMask?: Tensor | null }): Tensor {
    return T.scope(() => this.text_projection.forward(this.text_model.forward(input).poolerOutput));
  }

  /** (B, projection_dim), not normalised (transformers' get_image_features). */
  getImageFeatures(pixelValues: Tensor): Tensor {
    return T.scope(() => this.visual_projection.forward(this.vision_model.forward(pixelValues).poolerOutput));
  }

  forward(input: { inputIds: Tensor; attentionMask?: Tensor | null; pixelValues: Tensor; returnLoss?: boolean }): ClipOutput {
    return T.scope(() => {
      const unit = (x: Tensor) => x.div(x.norm(2, -1, { keepdim: true }));
      const imageEmbeds = unit(this.getImageFeatures(input.pixelValues));
      const textEmbeds = unit(this.getTextFeatures(input));
      const logitsPerText = textEmbeds.matmul(imageEmbeds.transpose(0, 1)).mul(this.logit_scale.exp()); // (B_text, B_image)
      return {
        logitsPerImage: logitsPerText.transpose(0, 1),
        logitsPerText,
        textEmbeds,
        imageEmbeds,
        loss: input.returnLoss ? clipContrastiveLoss(logitsPerText) : null,
      };
    });
  }

  /** Loads a CLIPModel folder (config.json with text_config and vision_config, model.safetensors), strictly. */
  static fromPretrained(dir: string, options: ModelOptions = {}): ClipModel {
    const { json, path } = T.readConfigJson(dir, "CLIP checkpoint");
    const unknownKeys: string[] = [];
    const config = resolveClipConfig(json as Record<string, unknown>, path, unknownKeys);
    const model = T.loadPretrained({ what: path, weights: T.openWeights(dir), options, build: (o) => new ClipModel(config, o) });
    model.unknownConfigKeys = unknownKeys;
    return model;
  }
}
