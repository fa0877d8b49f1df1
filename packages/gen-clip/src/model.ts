// CLIP vision tower (Radford et al. 2021), following transformers' CLIPVisionModel (v5): class
// token, `pre_layrnorm` (sic, the checkpoint key), pre-norm encoder layers, `post_layernorm` on the
// class token. Module paths equal the checkpoint keys (`vision_model.encoder.layers.0...`).
import * as T from "@pisces/tensor-cuda";
import { type ClipActivation, type ClipVisionConfig, type ClipVisionConfigJson, resolveClipVisionConfig } from "./config.js";

type Tensor = T.Tensor;
const { Module, ModuleList, Linear, LayerNorm, Conv2d, Embedding, Parameter } = T.nn;

/** What an encoder layer reads: the fields the text and vision configs share. */
export type ClipLayerConfig = Pick<
  ClipVisionConfig,
  "hiddenSize" | "intermediateSize" | "numHiddenLayers" | "numAttentionHeads" | "hiddenAct" | "layerNormEps"
>;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

function activate(x: Tensor, act: ClipActivation): Tensor {
  if (act === "quick_gelu") return T.scope(() => x.mul(x.mul(1.702).sigmoid()));
  return T.gelu(x, { approximate: act === "gelu_pytorch_tanh" ? "tanh" : "none" });
}

export class ClipAttention extends Module {
  k_proj: T.nn.Linear;
  v_proj: T.nn.Linear;
  q_proj: T.nn.Linear;
  out_proj: T.nn.Linear;
  constructor(
    readonly config: ClipLayerConfig,
    options: ModelOptions = {},
  ) {
    super();
    const C = config.hiddenSize;
    this.k_proj = new Linear(C, C, options);
    this.v_proj = new Linear(C, C, options);
    this.q_proj = new Linear(C, C, options);
    this.out_proj = new Linear(C, C, options);
  }
  /** x (B, T, C); mask (B, 1, T, T) bool, true where a query may attend (the text tower's causal and padding mask), or none. */
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const [B, Tn, C] = x.shape as [number, number, number];
    const nh = this.config.numAttentionHeads;
    const hs = C / nh;
    const heads = (t: Tensor) => t.view([B, Tn, nh, hs]).transpose(1, 2); // (B, nh, T, hs)
    const y = T.scaledDotProductAttention(heads(this.q_proj.forward(x)), heads(this.k_proj.forward(x)), heads(this.v_proj.forward(x)), {
      scale: hs ** -0.5,
      ...(mask ? { attnMask: mask } : {}),
    });
    return this.out_proj.forward(y.transpose(1, 2).reshape([B, Tn, C])); // (B, T, C)
  }
}

export class ClipMLP extends Module {
  fc1: T.nn.Linear;
  fc2: T.nn.Linear;
  constructor(
    readonly config: ClipLayerConfig,
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

export class ClipEncoderLayer extends Module {
  self_attn: ClipAttention;
  layer_norm1: T.nn.LayerNorm;
  mlp: ClipMLP;
  layer_norm2: T.nn.LayerNorm;
  constructor(config: ClipLayerConfig, options: ModelOptions = {}) {
    super();
    this.self_attn = new ClipAttention(config, options);
    this.layer_norm1 = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.mlp = new ClipMLP(config, options);
    this.layer_norm2 = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
  }
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class ClipEncoder extends Module {
  layers: T.nn.ModuleList<ClipEncoderLayer>;
  constructor(config: ClipLayerConfig, options: ModelOptions = {}) {
    super();
    this.layers = new ModuleList(Array.from({ length: config.numHiddenLayers }, () => new ClipEncoderLayer(config, options)));
  }
  /** Every hidden state: the input, then each layer's output. */
  forward(x: Tensor, mask: Tensor | null = null): Tensor[] {
    const states = [x];
    for (const layer of this.layers) states.push(layer.forward(states[states.length - 1]!, mask));
    return states;
  }
}

export class ClipVisionEmbeddings extends Module {
  class_embedding: T.nn.Parameter;
  patch_embedding: T.nn.Conv2d;
  position_embedding: T.nn.Embedding;
  constructor(
    readonly config: ClipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.class_embedding = new Parameter(T.randn([config.hiddenSize], options));
    this.patch_embedding = new Conv2d(config.numChannels, config.hiddenSize, config.patchSize, { ...options, stride: config.patchSize, bias: false });
    this.position_embedding = new Embedding((config.imageSize / config.patchSize) ** 2 + 1, config.hiddenSize, options);
  }
  /** pixelValues (B, 3, H, W) -> (B, 1 + N, D): the class token, then the patches row by row. */
  forward(pixelValues: Tensor): Tensor {
    const { imageSize, numChannels, hiddenSize } = this.config;
    const [B, Cin, H, W] = pixelValues.shape as [number, number, number, number];
    if (pixelValues.ndim !== 4 || Cin !== numChannels || H !== imageSize || W !== imageSize)
      throw new RangeError(`pixelValues must be (batch, ${numChannels}, ${imageSize}, ${imageSize}), got [${pixelValues.shape}]`);
    const patches = this.patch_embedding.forward(pixelValues.to(this.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2); // (B, N, D)
    const cls = this.class_embedding.view([1, 1, hiddenSize]).expand([B, 1, hiddenSize]);
    return T.cat([cls, patches], 1).add(this.position_embedding.weight); // (B, 1 + N, D)
  }
}

export interface ClipVisionOutput {
  /** (B, 1 + N, D): the last layer's output (no final norm, as transformers). */
  lastHiddenState: Tensor;
  /** (B, D): post_layernorm of the class token. */
  poolerOutput: Tensor;
  /** Embeddings after pre_layrnorm, then each layer's output, when asked. */
  hiddenStates?: Tensor[];
}

export class ClipVisionTransformer extends Module {
  embeddings: ClipVisionEmbeddings;
  pre_layrnorm: T.nn.LayerNorm;
  encoder: ClipEncoder;
  post_layernorm: T.nn.LayerNorm;
  constructor(
    readonly config: ClipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.embeddings = new ClipVisionEmbeddings(config, options);
    this.pre_layrnorm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
    this.encoder = new ClipEncoder(config, options);
    this.post_layernorm = new LayerNorm(config.hiddenSize, config.layerNormEps, options);
  }
  forward(pixelValues: Tensor, options: { outputHiddenStates?: boolean } = {}): ClipVisionOutput {
    return T.scope(() => {
      const states = this.encoder.forward(this.pre_layrnorm.forward(this.embeddings.forward(pixelValues)));
      const last = states[states.length - 1]!;
      const out: ClipVisionOutput = { lastHiddenState: last, poolerOutput: this.post_layernorm.forward(last.select(1, 0)) };
      if (options.outputHiddenStates) out.hiddenStates = states;
      return out;
    });
  }
}

export class ClipVisionModel extends Module {
  /** Keys of config.json this implementation does not use (reported, not silently dropped). */
  unknownConfigKeys: string[] = [];
  vision_model: ClipVisionTransformer;
  constructor(
    readonly config: ClipVisionConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.vision_model = new ClipVisionTransformer(config, options);
  }
  forward(input: { pixelValues: Tensor; outputHiddenStates?: boolean }): ClipVisionOutput {
    return T.scope(() => {
      return this.vision_model.forward(input.pixelValues, input);
    });
  }
  /**
   * Loads a CLIPVisionModel checkpoint folder (or the vision tower of a full CLIPModel one, whose
   * config.json nests `vision_config`): strict on `vision_model.*`, other towers' tensors ignored.
   */
  static fromPretrained(dir: string, options: ModelOptions = {}): ClipVisionModel {
    const { json, path } = T.readConfigJson(dir, "CLIP checkpoint");
    const unknownKeys: string[] = [];
    const config = resolveClipVisionConfig(json as ClipVisionConfigJson, path, unknownKeys);
    // CLIPModel and transformers 4.x CLIPVisionModel checkpoints prefix the tower with
    // `vision_model.`; transformers 5 saves a CLIPVisionModel without it. Accept both; ignore other towers.
    const weights = T.withOptionalPrefix(T.openWeights(dir), "vision_model.", ["text_model.", "visual_projection.", "text_projection.", "logit_scale"]);
    const model = T.loadPretrained({ what: path, weights, options, build: (o) => new ClipVisionModel(config, o) });
    model.unknownConfigKeys = unknownKeys;
    return model;
  }
}
