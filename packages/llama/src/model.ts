import * as T from "@pisces/tensor-cuda";
import { type LlamaConfig, type LlamaConfigJson, resolveLlamaConfig } from "./config.js";
import { readQuantizationConfig } from "./quantize.js";
import { replaceModule, withTiedLmHead } from "./weights.js";
import type { StaticCache } from "./cache.js";
import { decodeSteps, type GenerateOptions, type GenerationStep, generate, generateStream, type StreamChunk } from "./generate.js";

type Tensor = T.Tensor;
const { Module, ModuleList, Linear, Embedding, Parameter } = T.nn;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

/** x / sqrt(mean(x^2) + eps) in float32, cast back, times weight (LlamaRMSNorm). */
export class LlamaRMSNorm extends Module {
  weight: T.nn.Parameter;
  constructor(
    hiddenSize: number,
    readonly eps: number,
    options: ModelOptions = {},
  ) {
    super();
    this.weight = new Parameter(T.ones([hiddenSize], options));
  }
  forward(x: Tensor): Tensor {
    // float32: libtorch's fused rms_norm computes the same expression in one kernel.
    if (x.dtype === "float32" && this.weight.dtype === "float32") return T.rmsNorm(x, [x.size(-1)], this.weight, this.eps);
    return T.scope(() => {
      const h = x.to("float32");
      const variance = h.pow(2).mean(-1, { keepdim: true });
      return this.weight.mul(h.mul(variance.add(this.eps).rsqrt()).to(x.dtype));
    });
  }
}

/** Inverse frequencies of the rotary embedding, with llama3 scaling when configured (float32). */
export function ropeInverseFrequencies(config: LlamaConfig): Tensor {
  return T.scope(() => {
    const dim = config.headDim;
    const exponents = T.arange(0, dim, 2, { dtype: "int64" }).to("float32").div(dim);
    const invFreq = T.pow(config.ropeTheta, exponents).reciprocal(); // 1 / theta^(2i/d)
    const s = config.ropeScaling;
    if (s.type === "default") return invFreq;
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    const wavelen = invFreq.reciprocal().mul(2 * Math.PI);
    const scaled = T.where(wavelen.gt(lowFreqWavelen), invFreq.div(s.factor), invFreq);
    const smooth = wavelen
      .reciprocal()
      .mul(s.originalMaxPositionEmbeddings)
      .sub(s.lowFreqFactor)
      .div(s.highFreqFactor - s.lowFreqFactor);
    const smoothed = smooth.neg().add(1).mul(scaled).div(s.factor).add(smooth.mul(scaled));
    const isMedium = wavelen.lt(highFreqWavelen).logicalNot().logicalAnd(wavelen.gt(lowFreqWavelen).logicalNot());
    return T.where(isMedium, smoothed, scaled);
  });
}

/** cos/sin tables for positions (LlamaRotaryEmbedding); no parameters. */
export class LlamaRotaryEmbedding extends Module {
  declare inv_freq: Tensor;
  constructor(config: LlamaConfig) {
    super();
    this.registerBuffer("inv_freq", ropeInverseFrequencies(config), { persistent: false });
  }
  /** positionIds (B, T) -> cos, sin (B, T, hs) in x's dtype. */
  forward(x: Tensor, positionIds: Tensor): [Tensor, Tensor] {
    if (this.inv_freq.device !== x.device) {
      const moved = this.inv_freq.to(x.device);
      this.inv_freq.dispose();
      this.inv_freq = moved;
    }
    return T.scope(() => {
      const freqs = positionIds.unsqueeze(-1).to("float32").mul(this.inv_freq); // (B, T, hs/2)
      const emb = T.cat([freqs, freqs], -1); // (B, T, hs)
      return [emb.cos().to(x.dtype), emb.sin().to(x.dtype)] as [Tensor, Tensor];
    });
  }
}

// rotate_half(x) = cat(-x2, x1) = roll(x, hs/2) * [-1.., 1..], so rotate_half(x) * sin is
// roll(x, hs/2) * (sin * signs): one roll instead of slice/neg/slice/cat (decode-time overhead).
const rotationSigns = new Map<string, Tensor>();
function signsFor(like: Tensor): Tensor {
  const hs = like.size(-1);
  const key = `${like.device}/${like.dtype}/${hs}`;
  let signs = rotationSigns.get(key);
  if (!signs) {
    const values = Array.from({ length: hs }, (_, i) => (i < hs / 2 ? -1 : 1));
    signs = T.keep(T.tensor(values, { dtype: like.dtype, device: like.device }));
    rotationSigns.set(key, signs);
  }
  return signs;
}

/** q, k (B, nh, T, hs) rotated by cos, sin (B, T, hs): q cos + rotate_half(q) sin, likewise k. */
export function applyRotaryPosEmb(q: Tensor, k: Tensor, cos: Tensor, sin: Tensor): [Tensor, Tensor] {
  const half = q.size(-1) / 2;
  const c = cos.unsqueeze(1); // (B, 1, T, hs)
  const s = sin.unsqueeze(1).mul(signsFor(sin));
  return [q.mul(c).addcmul_(q.roll(half, -1), s), k.mul(c).addcmul_(k.roll(half, -1), s)];
}

export class LlamaAttention extends Module {
  q_proj: T.nn.Linear;
  k_proj: T.nn.Linear;
  v_proj: T.nn.Linear;
  o_proj: T.nn.Linear;
  constructor(
    readonly config: LlamaConfig,
    readonly layerIdx: number,
    options: ModelOptions = {},
  ) {
    super();
    const { hiddenSize: C, numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: hs, attentionBias: bias } = config;
    this.q_proj = new Linear(C, nh * hs, { ...options, bias });
    this.k_proj = new Linear(C, nkv * hs, { ...options, bias });
    this.v_proj = new Linear(C, nkv * hs, { ...options, bias });
    this.o_proj = new Linear(nh * hs, C, { ...options, bias });
  }

  /**
   * x (B, T, C); cos/sin (B, T, hs); mask: boolean (B, 1, T, S) with true = attend, or "causal"
   * (no padding, no cache offset). With a cache, keys/values are written at `cachePosition` and
   * attention runs over all cached positions.
   */
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | "causal" | "none", cache?: StaticCache, cachePosition = 0): Tensor {
    const [B, Tn] = x.shape as [number, number];
    const { numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: hs } = this.config;
    const q0 = this.q_proj.forward(x).view([B, Tn, nh, hs]).transpose(1, 2); // (B, nh, T, hs)
    const k0 = this.k_proj.forward(x).view([B, Tn, nkv, hs]).transpose(1, 2); // (B, nkv, T, hs)
    let v = this.v_proj.forward(x).view([B, Tn, nkv, hs]).transpose(1, 2); // (B, nkv, T, hs)
    let [q, k] = applyRotaryPosEmb(q0, k0, cos, sin);
    if (cache) [k, v] = cache.update(this.layerIdx, k, v, cachePosition); // (B, nkv, S, hs)
    const y = T.scaledDotProductAttention(q, k, v, {
      attnMask: typeof mask === "string" ? null : mask,
      isCausal: mask === "causal",
      scale: hs ** -0.5,
      enableGqa: nh !== nkv,
    }); // (B, nh, T, hs)
    return this.o_proj.forward(y.transpose(1, 2).reshape([B, Tn, nh * hs]));
  }
}

export class LlamaMLP extends Module {
  gate_proj: T.nn.Linear;
  up_proj: T.nn.Linear;
  down_proj: T.nn.Linear;
  constructor(config: LlamaConfig, options: ModelOptions = {}) {
    super();
    const bias = config.mlpBias;
    this.gate_proj = new Linear(config.hiddenSize, config.intermediateSize, { ...options, bias });
    this.up_proj = new Linear(config.hiddenSize, config.intermediateSize, { ...options, bias });
    this.down_proj = new Linear(config.intermediateSize, config.hiddenSize, { ...options, bias });
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(T.silu(this.gate_proj.forward(x)).mul(this.up_proj.forward(x)));
  }
}

export class LlamaDecoderLayer extends Module {
  /** false: a decode step runs operator by operator from JavaScript too (the fused step's reference). */
  useFusedKernel = true;
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: LlamaRMSNorm;
  post_attention_layernorm: LlamaRMSNorm;
  constructor(config: LlamaConfig, layerIdx: number, options: ModelOptions = {}) {
    super();
    this.self_attn = new LlamaAttention(config, layerIdx, options);
    this.mlp = new LlamaMLP(config, options);
    this.input_layernorm = new LlamaRMSNorm(config.hiddenSize, config.rmsNormEps, options);
    this.post_attention_layernorm = new LlamaRMSNorm(config.hiddenSize, config.rmsNormEps, options);
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | "causal" | "none", cache?: StaticCache, cachePosition = 0): Tensor {
    // a decode step (one new token per row, no padding) in float32 inference on the CPU: the same
    // layer in one native call (T.fusedDecoderLayer; this method's lines below are its reference)
    if (this.useFusedKernel && mask === "none" && cache && x.size(1) === 1 && x.dtype === "float32" && x.device === "cpu" && !T.isGradEnabled()) {
      const w = this.fusedWeights();
      if (w) {
        const [keys, values] = cache.buffers(this.self_attn.layerIdx);
        return T.fusedDecoderLayer(x, w, cos, sin, keys, values, cachePosition);
      }
    }
    const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), cos, sin, mask, cache, cachePosition));
    return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }

  /** The layer's weights for T.fusedDecoderLayer, or null where it does not take them (a bias, a device, a dtype). */
  private fusedWeights(): T.DecoderLayerWeights | null {
    const { self_attn: a, mlp: m } = this;
    const w = {
      inputNorm: this.input_layernorm.weight,
      postNorm: this.post_attention_layernorm.weight,
      projections: [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj],
    };
    if (!T.fusedDecoderLayerApplies(w)) return null;
    const c = a.config;
    return { ...w, eps: c.rmsNormEps, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, scale: c.headDim ** -0.5 };
  }
}

export interface LlamaForwardInput {
  /** Token ids (B, T), int64. Give this or `inputsEmbeds`. */
  inputIds?: Tensor;
  /** Input vectors (B, T, C), e.g. text embeddings with image vectors spliced in. */
  inputsEmbeds?: Tensor;
  /** (B, S) with 1 for real tokens and 0 for padding, S = cached + new tokens. */
  attentionMask?: Tensor | null;
  /** (B, T) positions; by default derived from the attention mask (left padding) or the cache offset. */
  positionIds?: Tensor;
  /** A static KV cache; the new tokens are written at `cache.length` and the cache advances. */
  cache?: StaticCache;
  /** (B, T) targets for next-token loss; -100 is ignored. Shifted inside, as transformers does. */
  labels?: Tensor;
  outputHiddenStates?: boolean;
  /** Compute logits for the last `n` positions only (generation needs 1); all positions by default. */
  logitsToKeep?: number;
}

export interface LlamaOutput {
  /** (B, T, vocab) */
  logits: Tensor;
  loss?: Tensor;
  /** The embeddings and each layer's output (the last one after the final norm), when asked. */
  hiddenStates?: Tensor[];
}

/** Boolean attention mask (B, 1, T, S): causal over positions, and keys that are not padding. */
export function buildAttentionMask(attentionMask: Tensor | null, B: number, Tn: number, past: number, device: T.Device): Tensor {
  return T.scope(() => {
    const S = past + Tn;
    const q = T.arange(past, S, { device }).unsqueeze(1); // (T, 1)
    const k = T.arange(0, S, { device }).unsqueeze(0); // (1, S)
    let allowed = k.le(q).unsqueeze(0).unsqueeze(0).expand([B, 1, Tn, S]); // (B, 1, T, S)
    if (attentionMask) {
      allowed = allowed.logicalAnd(attentionMask.to("bool").reshape([B, 1, 1, S]));
      // A padding query row would attend to nothing (NaN); let it see itself. Its output is unused.
      allowed = allowed.logicalOr(k.eq(q).unsqueeze(0).unsqueeze(0));
    }
    return allowed;
  });
}

export class LlamaModel extends Module {
  embed_tokens: T.nn.Embedding;
  layers: T.nn.ModuleList<LlamaDecoderLayer>;
  norm: LlamaRMSNorm;
  rotary_emb: LlamaRotaryEmbedding;
  /**
   * Activation checkpointing of the decoder layers in training (`T.checkpoint`): each layer keeps
   * only its input for the backward and runs again when the backward reaches it. Off by default;
   * see `LlamaForCausalLM.gradientCheckpointingEnable()`.
   */
  gradientCheckpointing = false;
  constructor(
    readonly config: LlamaConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.embed_tokens = new Embedding(config.vocabSize, config.hiddenSize, options);
    this.layers = new ModuleList(Array.from({ length: config.numHiddenLayers }, (_, i) => new LlamaDecoderLayer(config, i, options)));
    this.norm = new LlamaRMSNorm(config.hiddenSize, config.rmsNormEps, options);
    this.rotary_emb = new LlamaRotaryEmbedding(config);
  }

  forward(input: LlamaForwardInput): { lastHiddenState: Tensor; hiddenStates?: Tensor[] } {
    return T.scope(() => {
      const { config } = this;
      if ((input.inputIds === undefined) === (input.inputsEmbeds === undefined))
        throw new TypeError("LlamaModel.forward: give exactly one of inputIds and inputsEmbeds");
      let h: Tensor;
      if (input.inputIds) {
        const ids = input.inputIds;
        if (ids.ndim !== 2) throw new RangeError(`inputIds must be (batch, sequence), got shape [${ids.shape}]`);
        // one reduction (one device sync) per call; the offending id is looked up only on failure
        if (T.scope(() => ids.lt(0).logicalOr(ids.ge(config.vocabSize)).any().item())) {
          const [lo, hi] = T.scope(() => [ids.min().item(), ids.max().item()]);
          throw new RangeError(`token id ${lo < 0 ? lo : hi} is out of range for a vocabulary of ${config.vocabSize}`);
        }
        h = this.embed_tokens.forward(ids);
      } else {
        h = input.inputsEmbeds!;
        if (h.ndim !== 3 || h.size(2) !== config.hiddenSize)
          throw new RangeError(`inputsEmbeds must be (batch, sequence, ${config.hiddenSize}), got shape [${h.shape}]`);
      }
      const [B, Tn] = h.shape as [number, number];
      const cache = input.cache;
      const past = cache ? cache.length : 0;
      if (past + Tn > config.maxPositionEmbeddings)
        throw new RangeError(`sequence of ${past + Tn} tokens exceeds the model's ${config.maxPositionEmbeddings} positions`);
      if (cache && past + Tn > cache.maxLength) throw new RangeError(`the KV cache holds ${cache.maxLength} positions; ${past + Tn} are needed`);
      const mask = input.attentionMask ?? null;
      if (mask && (mask.ndim !== 2 || mask.size(0) !== B || mask.size(1) !== past + Tn))
        throw new RangeError(`attentionMask must be (batch, cached + new tokens) = [${B}, ${past + Tn}], got [${mask.shape}]`);
      const positionIds = input.positionIds ?? defaultPositionIds(mask, B, Tn, past, h.device);
      const [cos, sin] = this.rotary_emb.forward(h, positionIds);
      // No padding: causal masking for a prompt, nothing at all for one new token after a cache.
      const attnMask = mask === null && past === 0 ? "causal" : mask === null && Tn === 1 ? "none" : buildAttentionMask(mask, B, Tn, past, h.device);
      const hiddenStates: Tensor[] | undefined = input.outputHiddenStates ? [h] : undefined;
      // activation checkpointing: a layer keeps only its input for the backward, which runs it again
      const checkpointed = this.gradientCheckpointing && this.training && T.isGradEnabled() && !cache;
      for (const layer of this.layers) {
        // each layer in its own scope: its intermediates are freed as soon as it returns, so a long
        // prompt holds one layer's activations at a time (autograd keeps what backward needs itself)
        const input = h;
        h = T.scope(() =>
          checkpointed
            ? T.checkpoint((x: Tensor, c: Tensor, s: Tensor, m: Tensor | "causal" | "none") => layer.forward(x, c, s, m), input, cos, sin, attnMask)
            : layer.forward(input, cos, sin, attnMask, cache, past),
        );
        hiddenStates?.push(h);
      }
      if (cache) cache.advance(Tn);
      h = this.norm.forward(h);
      if (hiddenStates) hiddenStates[hiddenStates.length - 1] = h;
      return { lastHiddenState: h, hiddenStates };
    });
  }
}

/** Positions 0.. for each row, counting only real tokens (left padding), offset by the cache. */
function defaultPositionIds(mask: Tensor | null, B: number, Tn: number, past: number, device: T.Device): Tensor {
  return T.scope(() => {
    if (mask === null)
      return T.arange(past, past + Tn, { device })
        .unsqueeze(0)
        .expand([B, Tn]);
    const pos = mask.to("int64").cumsum(1).sub(1).maskedFill(mask.eq(0), 1); // (B, S)
    return pos.slice(1, past);
  });
}

export class LlamaForCausalLM extends Module {
  model: LlamaModel;
  lm_head: T.nn.Linear;
  /** Keys of config.json this implementation does not use (reported, not silently dropped). */
  unknownConfigKeys: string[] = [];

  constructor(
    readonly config: LlamaConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.model = new LlamaModel(config, options);
    this.lm_head = new Linear(config.hiddenSize, config.vocabSize, { ...options, bias: false });
    if (config.tieWordEmbeddings) {
      this.lm_head.weight.dispose();
      this.lm_head.weight = this.model.embed_tokens.weight;
    }
  }

  /**
   * Trades compute for memory in training (`gradient_checkpointing_enable()` in transformers): the
   * decoder layers keep only their inputs for the backward and run a second time during it (about
   * one more forward per step). Gradients are those of the plain backward. Applies in training
   * mode with gradients on; decoding with a cache is unaffected.
   */
  gradientCheckpointingEnable(): void {
    this.model.gradientCheckpointing = true;
  }
  gradientCheckpointingDisable(): void {
    this.model.gradientCheckpointing = false;
  }
  get isGradientCheckpointing(): boolean {
    return this.model.gradientCheckpointing;
  }

  /** The token embedding table, to embed ids before splicing other vectors in. */
  getInputEmbeddings(): T.nn.Embedding {
    return this.model.embed_tokens;
  }

  forward(input: LlamaForwardInput): LlamaOutput {
    return T.scope(() => {
      const { lastHiddenState, hiddenStates } = this.model.forward(input);
      const keep = input.logitsToKeep;
      if (keep !== undefined && input.labels) throw new TypeError("logitsToKeep cannot be combined with labels (the loss needs every position)");
      const h = keep === undefined ? lastHiddenState : lastHiddenState.slice(1, -keep);
      const logits = this.lm_head.forward(h); // (B, T or keep, V)
      const out: LlamaOutput = { logits };
      if (hiddenStates) out.hiddenStates = hiddenStates;
      if (input.labels) out.loss = causalLmLoss(logits, input.labels);
      return out;
    });
  }

  /**
   * Loads a Hugging Face checkpoint folder: config.json and model.safetensors, or sharded
   * model-0000N-of-0000M.safetensors with model.safetensors.index.json. Strict: every parameter
   * must be present with its shape, and no unknown tensor may be left. Weights stream in one
   * tensor at a time (parameters start on the `meta` device, which holds no memory), so peak
   * memory is about one copy of the model. dtype defaults to bfloat16 on CUDA, float32 on CPU.
   */
  static fromPretrained(dir: string, options: ModelOptions = {}): LlamaForCausalLM {
    const { json, path } = T.readConfigJson(dir, "Hugging Face model");
    const packedModules = readQuantizationConfig(json as Record<string, unknown>, path);
    // (a non-object config goes to the validator as it is: it says what is wrong with it)
    const plain = packedModules ? (({ quantization_config: _, ...rest }) => rest)(json as Record<string, unknown>) : json;
    const { config, unknownKeys } = resolveLlamaConfig(plain as LlamaConfigJson, path);
    const reader = T.openWeights(dir);
    const model = packedModules
      ? loadPacked(reader, packedModules, config, path, options)
      : T.loadPretrained({ what: path, weights: withTiedLmHead(reader, config.tieWordEmbeddings), options, build: (o) => new LlamaForCausalLM(config, o) });
    model.unknownConfigKeys = unknownKeys;
    model.model.rotary_emb.to(T.resolveLoadOptions(options).device);
    return model;
  }

  /** Greedy or sampled generation; see GenerateOptions. Returns ids (B, T + n) for an inputIds prompt. */
  generate(options: GenerateOptions): Tensor {
    return generate(this, options);
  }

  /** Generation as an async iterator of per-step tokens and UTF-8-safe text pieces. */
  generateStream(options: GenerateOptions): AsyncGenerator<StreamChunk> {
    return generateStream(this, options);
  }

  /** The raw decoding loop as a synchronous generator of steps. */
  decodeSteps(options: GenerateOptions): Generator<GenerationStep> {
    return decodeSteps(this, options);
  }

  /**
   * Grows (or shrinks) the vocabulary to `newSize` rows, e.g. after adding special tokens. New
   * rows of the embedding (and of an untied lm_head) are the mean of the existing rows.
   */
  resizeTokenEmbeddings(newSize: number): void {
    const old = this.config.vocabSize;
    if (!Number.isInteger(newSize) || newSize <= 0) throw new RangeError(`resizeTokenEmbeddings: newSize must be a positive integer, got ${newSize}`);
    if (newSize === old) return;
    const resize = (w: T.nn.Parameter) =>
      T.noGrad(() =>
        T.scope(() => {
          const kept = w.slice(0, 0, Math.min(old, newSize));
          const grown = newSize > old ? T.cat([kept, w.mean(0, { keepdim: true }).expand([newSize - old, w.size(1)])], 0) : kept;
          w._assign(grown.contiguous());
        }),
      );
    resize(this.model.embed_tokens.weight);
    if (!this.config.tieWordEmbeddings) resize(this.lm_head.weight);
    (this.config as { vocabSize: number }).vocabSize = newSize;
    (this.model.embed_tokens as { numEmbeddings: number }).numEmbeddings = newSize;
  }
}

/** Next-token cross entropy as transformers' ForCausalLMLoss: logits in float32, labels shifted left. */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  return T.scope(() => {
    const [B, Tn, V] = logits.shape as [number, number, number];
    if (labels.shape[0] !== B || labels.shape[1] !== Tn) throw new RangeError(`labels must be [${B}, ${Tn}], got [${labels.shape}]`);
    const shifted = T.cat([labels.slice(1, 1), T.full([B, 1], -100, { dtype: "int64", device: labels.device })], 1);
    return T.crossEntropy(logits.to("float32").reshape([B * Tn, V]), shifted.reshape([B * Tn]), { ignoreIndex: -100 });
  });
}

/** A folder saved by saveQuantized: the packed modules built from their `<path>.qweight` rows, the rest loaded strictly. */
function loadPacked(
  reader: T.SafetensorsReader,
  modules: Record<string, T.GgmlFormat>,
  config: LlamaConfig,
  what: string,
  options: ModelOptions,
): LlamaForCausalLM {
  const { dtype } = T.resolveLoadOptions(options);
  if (dtype !== "float32") throw new T.ConfigError([`a quantized folder loads for float32 inference only, not ${dtype}`], what);
  const packedKeys = new Set<string>();
  const packed = new Map<string, { rows: T.Tensor; bias: T.Tensor | null }>();
  try {
    for (const path of Object.keys(modules)) {
      const key = `${path}.qweight`;
      if (!reader.has(key)) throw new T.ConfigError([`quantization_config names ${path}, but the weights have no ${key}`], what);
      const biasKey = `${path}.bias`;
      packedKeys.add(key);
      const entry = { rows: T.keep(reader.get(key)), bias: null as T.Tensor | null };
      packed.set(path, entry);
      if (reader.has(biasKey)) {
        packedKeys.add(biasKey);
        entry.bias = T.keep(reader.get(biasKey, { dtype: "float32" }));
      }
    }
    const keys = reader.keys().filter((k) => !packedKeys.has(k));
    const source = Object.assign({ keys: () => keys, get: (k: string) => reader.get(k), shapeOf: (k: string) => reader.shapeOf(k) }, { path: reader.path });
    return T.loadPretrained({
      what,
      weights: modules.lm_head ? source : withTiedLmHead(source, config.tieWordEmbeddings),
      options,
      extraTensors: 3 * packed.size,
      build: (o) => {
        const m = new LlamaForCausalLM(config, o);
        const byPath = new Map(m.namedModules());
        for (const [path, { rows, bias }] of packed) {
          const target = byPath.get(path);
          const format = modules[path]!;
          if (target instanceof T.nn.Linear) replaceModule(m, path, new T.QuantizedLinear(target.inFeatures, target.outFeatures, format, rows, bias));
          else if (target instanceof T.nn.Embedding) replaceModule(m, path, new T.QuantizedEmbedding(target.numEmbeddings, target.embeddingDim, format, rows));
          else throw new T.ConfigError([`quantization_config names ${path}, which is not a linear layer or the embedding of this model`], what);
          disposeReplaced(m, target);
        }
        return m;
      },
    });
  } catch (e) {
    for (const { rows, bias } of packed.values()) {
      rows.dispose();
      bias?.dispose();
    }
    throw e;
  }
}

/** Frees the (meta) tensors of a module swapped for a packed one, except a table still used elsewhere (a tied lm_head's). */
export function disposeReplaced(model: LlamaForCausalLM, replaced: T.nn.Module): void {
  const inUse = new Set(model.parameters());
  for (const p of replaced.parameters()) if (!inUse.has(p)) p.dispose();
}
