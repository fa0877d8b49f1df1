// SigLIP (Zhai et al. 2023), following transformers' modeling_siglip.py (v5): a pre-norm ViT
// vision tower with an attention-pooling head, a text tower pooled at its last token, and
// sigmoid image-text logits. Module paths equal the checkpoint keys (`vision_model.encoder.layers.0...`).
import * as T from "@pisces/tensor-cuda";
import { type Activation, resolveSiglipCheckpointConfig, SiglipConfigError, type SiglipTextConfig, type SiglipVisionConfig } from "./config.js";

type Tensor = T.Tensor;
const { Module, ModuleList, Linear, LayerNorm, Conv2d, Embedding, Parameter } = T.nn;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

function activate(x: Tensor, act: Activation): Tensor {
  if (act === "gelu_pytorch_tanh") return T.gelu(x, { approximate: "tanh" });
  if (act === "gelu") return T.gelu(x);
  return T.scope(() => x.mul(x.mul(1.702).sigmoid())); // quick_gelu
}

interface LayerShape {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  hiddenAct: Activation;
  layerNormEps: number;
}

export class SiglipAttention extends Module {
  k_proj: T.nn.Linear;
  v_proj: T.nn.Linear;
  q_proj: T.nn.Linear;
  out_proj: T.nn.Linear;
  constructor(
    readonly config: LayerShape,
    options: ModelOptions = {},
  ) {
    super();
    const C = config.hiddenSize;
    this.k_proj = new Linear(C, C, options);
    this.v_proj = new Linear(C, C, options);
    this.q_proj = new Linear(C, C, options);
    this.out_proj = new Linear(C, C, options);
  }
  /** x (B, T, C); mask boolean (B, 1, 1, T), true = attend. */
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const [B, Tn, C] = x.shape as [number, number, number];
    const nh = this.config.numAttentionHeads;
    const hs = C / nh;
    const heads = (t: Tensor) => t.view([B, Tn, nh, hs]).transpose(1, 2); // (B, nh, T, hs)
    const y = T.scaledDotProductAttention(heads(this.q_proj.forward(x)), heads(this.k_proj.forward(x)), heads(this.v_proj.forward(x)), {
      attnMask: mask,
      scale: hs ** -0.5,
    }); // (B, nh, T, hs)
    return this.out_proj.forward(y.transpose(1, 2).reshape([B, Tn, C]));
  }
}

export class SiglipMLP extends Module {
  fc1: T.nn.Linear;
  fc2: T.nn.Linear;
  constructor(
    readonly config: LayerShape,
    options: ModelOptions = {},
  ) {
    super();
    this.fc1 = new Linear(config.hiddenSize, config.intermediateSize, options);
    this.fc2 = new Linear(config.intermediateSize, config.hiddenSize, options);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(activate(this.fc1.forward(x), this.config.hiddenAct));
  }
}

export class SiglipEncoderLayer extends Module {
  layer_norm1: T.nn.LayerNorm;
  self_attn: SiglipAttention;
  layer_norm2: T.nn.LayerNorm;
  mlp: SiglipMLP;
  constructor(config: LayerShape, options: ModelOptions = {}) {
    super();
    this.layer_norm1 = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.self_attn = new SiglipAttention(config, options);
    this.layer_norm2 = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.mlp = new SiglipMLP(config, options);
  }
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class SiglipEncoder extends Module {
  layers: T.nn.ModuleList<SiglipEncoderLayer>;
  constructor(config: LayerShape & { numHiddenLayers: number }, options: ModelOptions = {}) {
    super();
    this.layers = new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new SiglipEncoderLayer(config, options)));
  }
  /** Returns every hidden state: the input, then each layer's output. */
  forward(x: Tensor, mask: Tensor | null = null): Tensor[] {
    const states = [x];
    for (const layer of this.layers) states.push(layer.forward(states[states.length - 1]!, mask));
    return states;
  }
}

export class SiglipVisionEmbeddings extends Module {
  patch_embedding: T.nn.Conv2d;
  position_embedding: T.nn.Embedding;
  constructor(
    readonly config: SiglipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    const numPatches = (config.imageSize / config.patchSize) ** 2;
    this.patch_embedding = new Conv2d(config.numChannels, config.hiddenSize, config.patchSize, { ...options, stride: config.patchSize });
    this.position_embedding = new Embedding(numPatches, config.hiddenSize, options);
  }
  /** pixelValues (B, 3, H, W) -> (B, N, D), N = (H / patch)^2. */
  forward(pixelValues: Tensor): Tensor {
    const { imageSize, numChannels } = this.config;
    const [, Cin, H, W] = pixelValues.shape;
    if (pixelValues.ndim !== 4 || Cin !== numChannels || H !== imageSize || W !== imageSize)
      throw new RangeError(`pixelValues must be (batch, ${numChannels}, ${imageSize}, ${imageSize}), got [${pixelValues.shape}]`);
    const patches = this.patch_embedding.forward(pixelValues.to(this.patch_embedding.weight.dtype)); // (B, D, g, g)
    return patches.flatten(2).transpose(1, 2).add(this.position_embedding.weight); // (B, N, D)
  }
}

/** torch.nn.MultiheadAttention's parameters (packed q/k/v projection), for the pooling head. */
export class MultiheadAttention extends Module {
  in_proj_weight: T.nn.Parameter;
  in_proj_bias: T.nn.Parameter;
  out_proj: T.nn.Linear;
  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    options: ModelOptions = {},
  ) {
    super();
    // torch's start: xavier_uniform_ over the packed (3D, D) matrix, bound sqrt(6 / (D + 3D)).
    const bound = Math.sqrt(6 / (4 * embedDim));
    this.in_proj_weight = new Parameter(
      T.scope(() =>
        T.rand([3 * embedDim, embedDim], options)
          .mul(2 * bound)
          .sub(bound),
      ),
    );
    this.in_proj_bias = new Parameter(T.zeros([3 * embedDim], options));
    this.out_proj = new Linear(embedDim, embedDim, options);
  }
  /** query (B, Tq, D), key/value (B, Tk, D) -> (B, Tq, D). */
  forward(query: Tensor, key: Tensor, value: Tensor): Tensor {
    const D = this.embedDim;
    const nh = this.numHeads;
    const hs = D / nh;
    const [wq, wk, wv] = this.in_proj_weight.split(D, 0) as [Tensor, Tensor, Tensor];
    const [bq, bk, bv] = this.in_proj_bias.split(D, 0) as [Tensor, Tensor, Tensor];
    const heads = (t: Tensor) => t.view([t.size(0), t.size(1), nh, hs]).transpose(1, 2); // (B, nh, T, hs)
    const y = T.scaledDotProductAttention(heads(T.linear(query, wq, bq)), heads(T.linear(key, wk, bk)), heads(T.linear(value, wv, bv)));
    return this.out_proj.forward(y.transpose(1, 2).reshape([query.size(0), query.size(1), D]));
  }
}

export class SiglipMultiheadAttentionPoolingHead extends Module {
  probe: T.nn.Parameter;
  attention: MultiheadAttention;
  layernorm: T.nn.LayerNorm;
  mlp: SiglipMLP;
  constructor(config: SiglipVisionConfig, options: ModelOptions = {}) {
    super();
    this.probe = new Parameter(T.randn([1, 1, config.hiddenSize], options));
    this.attention = new MultiheadAttention(config.hiddenSize, config.numAttentionHeads, options);
    this.layernorm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.mlp = new SiglipMLP(config, options);
  }
  /** (B, N, D) -> (B, D): one learned query attends over all tokens. */
  forward(x: Tensor): Tensor {
    const probe = this.probe.expand([x.size(0), 1, x.size(2)]);
    const h = this.attention.forward(probe, x, x); // (B, 1, D)
    return h.add(this.mlp.forward(this.layernorm.forward(h))).select(1, 0);
  }
}

export interface VisionOutput {
  /** (B, N, D) after the final layer norm. */
  lastHiddenState: Tensor;
  /** (B, D) from the attention-pooling head (when the config has one). */
  poolerOutput: Tensor | null;
  /** The embeddings and each layer's output (N + 1 tensors, the last before the final norm), when asked. */
  hiddenStates?: Tensor[];
}

export class SiglipVisionTransformer extends Module {
  embeddings: SiglipVisionEmbeddings;
  encoder: SiglipEncoder;
  post_layernorm: T.nn.LayerNorm;
  head: SiglipMultiheadAttentionPoolingHead | null;
  constructor(
    readonly config: SiglipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.embeddings = new SiglipVisionEmbeddings(config, options);
    this.encoder = new SiglipEncoder(config, options);
    this.post_layernorm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.head = config.visionUseHead ? new SiglipMultiheadAttentionPoolingHead(config, options) : null;
  }
  forward(pixelValues: Tensor, options: { outputHiddenStates?: boolean } = {}): VisionOutput {
    return T.scope(() => {
      const states = this.encoder.forward(this.embeddings.forward(pixelValues));
      const last = this.post_layernorm.forward(states[states.length - 1]!);
      const out: VisionOutput = { lastHiddenState: last, poolerOutput: this.head ? this.head.forward(last) : null };
      if (options.outputHiddenStates) out.hiddenStates = states;
      return out;
    });
  }
}

/** Which hidden state feeds a downstream model: "last" (after the final norm) or an index into hiddenStates (-2: penultimate). */
export type FeatureLayer = "last" | number;

export class SiglipVisionModel extends Module {
  /** Keys of config.json this implementation does not use (reported, not silently dropped). */
  unknownConfigKeys: string[] = [];
  vision_model: SiglipVisionTransformer;
  constructor(
    readonly config: SiglipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.vision_model = new SiglipVisionTransformer(config, options);
  }
  forward(input: { pixelValues: Tensor; outputHiddenStates?: boolean }): VisionOutput {
    return T.scope(() => {
      return this.vision_model.forward(input.pixelValues, input);
    });
  }
  /** Patch features for a downstream model (Pisces' understanding path): (B, N, D) at `featureLayer`. */
  imageFeatures(pixelValues: Tensor, featureLayer: FeatureLayer = "last"): Tensor {
    return T.scope(() => {
      if (featureLayer === "last") return this.forward({ pixelValues }).lastHiddenState;
      const states = this.forward({ pixelValues, outputHiddenStates: true }).hiddenStates!;
      const i = featureLayer < 0 ? states.length + featureLayer : featureLayer;
      const h = states[i];
      if (!h) throw new RangeError(`featureLayer ${featureLayer} is out of range for ${states.length} hidden states`);
      return h;
    });
  }
  /**
   * Loads `vision_model.*` from a SiglipVisionModel or a full SiglipModel checkpoint folder
   * (config.json + model.safetensors or shards); other towers' tensors are ignored, the rest is strict.
   */
  static fromPretrained(dir: string, options: ModelOptions = {}): SiglipVisionModel {
    const { json, path } = T.readConfigJson(dir, "SigLIP checkpoint");
    const { vision, unknownKeys } = resolveSiglipCheckpointConfig(json, path);
    // SiglipModel and transformers 4.x SiglipVisionModel checkpoints prefix the tower with
    // `vision_model.`; transformers 5 saves a SiglipVisionModel without it. Accept both; ignore the text tower.
    const weights = T.withOptionalPrefix(T.openWeights(dir), "vision_model.", ["text_model.", "logit_scale", "logit_bias"]);
    const model = T.loadPretrained({ what: path, weights, options, build: (o) => new SiglipVisionModel(vision, o) });
    model.unknownConfigKeys = unknownKeys;
    return model;
  }
}

export class SiglipTextEmbeddings extends Module {
  token_embedding: T.nn.Embedding;
  position_embedding: T.nn.Embedding;
  constructor(config: SiglipTextConfig, options: ModelOptions = {}) {
    super();
    this.token_embedding = new Embedding(config.vocabSize, config.hiddenSize, options);
    this.position_embedding = new Embedding(config.maxPositionEmbeddings, config.hiddenSize, options);
  }
  forward(inputIds: Tensor): Tensor {
    const L = inputIds.size(1);
    return this.token_embedding.forward(inputIds).add(this.position_embedding.weight.slice(0, 0, L));
  }
}

export interface TextOutput {
  lastHiddenState: Tensor;
  /** (B, projection) from the last token, through the head. */
  poolerOutput: Tensor;
  hiddenStates?: Tensor[];
}

export class SiglipTextTransformer extends Module {
  embeddings: SiglipTextEmbeddings;
  encoder: SiglipEncoder;
  final_layer_norm: T.nn.LayerNorm;
  head: T.nn.Linear;
  constructor(
    readonly config: SiglipTextConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.embeddings = new SiglipTextEmbeddings(config, options);
    this.encoder = new SiglipEncoder(config, options);
    this.final_layer_norm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.head = new Linear(config.hiddenSize, config.projectionSize, options);
  }
  /** inputIds (B, L) padded to a fixed length as SigLIP's tokenizer does; attentionMask (B, L) optional. */
  forward(inputIds: Tensor, options: { attentionMask?: Tensor | null; outputHiddenStates?: boolean } = {}): TextOutput {
    return T.scope(() => {
      const { vocabSize, maxPositionEmbeddings } = this.config;
      if (inputIds.ndim !== 2) throw new RangeError(`inputIds must be (batch, length), got [${inputIds.shape}]`);
      if (inputIds.size(1) > maxPositionEmbeddings)
        throw new RangeError(`${inputIds.size(1)} tokens exceed the text tower's ${maxPositionEmbeddings} positions`);
      if (T.scope(() => inputIds.lt(0).logicalOr(inputIds.ge(vocabSize)).any().item())) {
        const [lo, hi] = T.scope(() => [inputIds.min().item(), inputIds.max().item()]);
        throw new RangeError(`token id ${lo < 0 ? lo : hi} is out of range for a vocabulary of ${vocabSize}`);
      }
      const mask = options.attentionMask ? options.attentionMask.to("bool").unsqueeze(1).unsqueeze(1) : null; // (B, 1, 1, L)
      const states = this.encoder.forward(this.embeddings.forward(inputIds), mask);
      const last = this.final_layer_norm.forward(states[states.length - 1]!);
      const out: TextOutput = { lastHiddenState: last, poolerOutput: this.head.forward(last.select(1, -1)) };
      if (options.outputHiddenStates) out.hiddenStates = states;
      return out;
    });
  }
}

export interface SiglipOutput {
  /** (images, texts): scaled cosine similarity plus bias; sigmoid gives the match probability. */
  logitsPerImage: Tensor;
  /** (texts, images) */
  logitsPerText: Tensor;
  /** L2-normalised embeddings. */
  imageEmbeds: Tensor;
  textEmbeds: Tensor;
  textOutput: TextOutput;
  visionOutput: VisionOutput;
}

/** Both towers and the learned logit scale/bias: zero-shot classification of images against labels. */
export class SiglipModel extends Module {
  /** Keys of config.json this implementation does not use (reported, not silently dropped). */
  unknownConfigKeys: string[] = [];
  text_model: SiglipTextTransformer;
  vision_model: SiglipVisionTransformer;
  logit_scale: T.nn.Parameter;
  logit_bias: T.nn.Parameter;
  constructor(
    readonly textConfig: SiglipTextConfig,
    readonly visionConfig: SiglipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.text_model = new SiglipTextTransformer(textConfig, options);
    this.vision_model = new SiglipVisionTransformer(visionConfig, options);
    this.logit_scale = new Parameter(T.zeros([1], options));
    this.logit_bias = new Parameter(T.zeros([1], options));
  }
  getImageFeatures(pixelValues: Tensor): Tensor {
    return T.scope(() => {
      const pooled = this.vision_model.forward(pixelValues).poolerOutput;
      if (!pooled) throw new Error("this vision tower has no pooling head (vision_use_head is false)");
      return pooled;
    });
  }
  getTextFeatures(inputIds: Tensor, attentionMask?: Tensor | null): Tensor {
    return T.scope(() => {
      return this.text_model.forward(inputIds, { attentionMask }).poolerOutput;
    });
  }
  forward(input: { inputIds: Tensor; pixelValues: Tensor; attentionMask?: Tensor | null; outputHiddenStates?: boolean }): SiglipOutput {
    return T.scope(() => {
      const visionOutput = this.vision_model.forward(input.pixelValues, input);
      const textOutput = this.text_model.forward(input.inputIds, input);
      if (!visionOutput.poolerOutput) throw new Error("this vision tower has no pooling head (vision_use_head is false)");
      if (visionOutput.poolerOutput.size(-1) !== textOutput.poolerOutput.size(-1))
        throw new RangeError(
          `image embeddings (${visionOutput.poolerOutput.size(-1)}) and text embeddings (${textOutput.poolerOutput.size(-1)}) differ in width`,
        );
      const normalize = (x: Tensor) => x.div(x.norm(2, -1, { keepdim: true }));
      const imageEmbeds = normalize(visionOutput.poolerOutput);
      const textEmbeds = normalize(textOutput.poolerOutput);
      const logitsPerText = textEmbeds.matmul(imageEmbeds.mT).mul(this.logit_scale.exp()).add(this.logit_bias);
      return { logitsPerImage: logitsPerText.mT, logitsPerText, imageEmbeds, textEmbeds, textOutput, visionOutput };
    });
  }
  /** Loads a SiglipModel checkpoint folder (config.json with text_config and vision_config), strictly. */
  static fromPretrained(dir: string, options: ModelOptions = {}): SiglipModel {
    const { json, path } = T.readConfigJson(dir, "SigLIP checkpoint");
    const { vision, text, unknownKeys } = resolveSiglipCheckpointConfig(json, path);
    if (!text) throw new SiglipConfigError(["no text_config: not a SiglipModel checkpoint (use SiglipVisionModel for a vision tower)"], path);
    const model = T.loadPretrained({ what: path, weights: T.openWeights(dir), options, build: (o) => new SiglipModel(text, vision, o) });
    model.unknownConfigKeys = unknownKeys;
    return model;
  }
}
