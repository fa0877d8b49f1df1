// Pisces (arXiv 2506.10395): one Llama with two decoupled visual paths. Understanding: SigLIP
// patch tokens -> understanding_projector -> LLM inputs between [IMG] and [/IMG]. Generation: the
// LLM regresses gen-CLIP's pooled patch tokens one vector at a time (generation_projector feeds
// them in, generation_head reads them out), and an SDXL-architecture decoder turns them into pixels.
// Module paths equal the checkpoint keys of model.safetensors; the frozen encoders and the decoder
// live in their own subfolders and are not part of this module tree's state dict.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { ClipImageProcessor, GenClipEncoder } from "@pisces/gen-clip";
import {
  AutoTokenizer,
  causalLmLoss,
  type GenerateOptions,
  type GenerationStep,
  type LlamaConfigJson,
  LlamaForCausalLM,
  type QuantizationBits,
  quantize,
  StaticCache,
} from "@pisces/llama";
import { SdxlDecoder } from "@pisces/sdxl-decoder";
import { SiglipImageProcessor, SiglipVisionModel } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";
import { IMAGE_END_TOKEN, IMAGE_START_TOKEN, type PiscesConfig, PiscesConfigError, type PiscesConfigJson, resolvePiscesConfig } from "./config.js";
import { type PiscesBatch, PiscesProcessor } from "./processor.js";

type Tensor = T.Tensor;
const { Module, Linear } = T.nn;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

/** Linear, GELU, Linear: the understanding projector, the generation projector and the generation head. */
export class PiscesProjector extends Module {
  linear_1: T.nn.Linear;
  linear_2: T.nn.Linear;
  constructor(
    inFeatures: number,
    hiddenFeatures: number,
    outFeatures: number,
    readonly act: "gelu" | "gelu_pytorch_tanh" = "gelu",
    options: ModelOptions = {},
  ) {
    super();
    this.linear_1 = new Linear(inFeatures, hiddenFeatures, options);
    this.linear_2 = new Linear(hiddenFeatures, outFeatures, options);
  }
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(T.gelu(this.linear_1.forward(x), { approximate: this.act === "gelu" ? "none" : "tanh" }));
  }
}

/** The frozen parts, each loaded by its own package from its subfolder. */
export interface PiscesParts {
  siglip: SiglipVisionModel;
  genClip: GenClipEncoder;
  /** The SDXL-architecture decoder (null when loaded without it, e.g. for understanding only). */
  decoder: SdxlDecoder | null;
}

export interface PiscesOutput {
  /** textLossWeight * textLoss + imageLossWeight * imageLoss (+ the cosine term when configured). */
  loss: Tensor;
  /** Next-token cross-entropy over every labelled position (captions, answers, [/IMG]); 0 when none. */
  textLoss: Tensor;
  /** MSE between the predicted and the target gen-CLIP vectors; 0 without generation samples. */
  imageLoss: Tensor;
  /** 1 - mean cosine similarity of the same vectors (reported always, weighted by image_cosine_loss_weight). */
  imageCosineLoss: Tensor;
  /** (B, T, vocab) */
  logits: Tensor;
  /** (Ng, m, D): the predicted gen-CLIP vectors of the generation samples. */
  imageEmbeddings: Tensor | null;
}

export interface ForwardInput extends Omit<PiscesBatch, "understandingPixelValues" | "generationPixelValues"> {
  understandingPixelValues?: Tensor | null;
  generationPixelValues?: Tensor | null;
  /** Precomputed encoder outputs (cached features) instead of pixels: (Nu, n, D_siglip) and (Ng, m, D_clip). */
  understandingFeatures?: Tensor | null;
  generationTargets?: Tensor | null;
  /** Seeds the teacher-forcing noise (generation_input_noise_std > 0, training only). */
  noiseGenerator?: T.Generator;
}

export interface ImageEmbeddingsOptions {
  captions: readonly string[];
  /** > 1 also decodes the empty caption (classifier-free guidance, as Emu2). Default 3. */
  guidanceScale?: number;
}

export interface ImageEmbeddings {
  /** (B, m, D) in gen-CLIP space, one set per caption. */
  conditional: Tensor;
  /** (1, m, D): the empty caption's set, when guidance > 1; null otherwise. */
  unconditional: Tensor | null;
}

export interface ImageEmbeddingStep {
  /** Vectors predicted so far (1..m). */
  i: number;
  of: number;
}

export class PiscesError extends Error {
  override name = "PiscesError";
}

/** Files of a Pisces folder besides weights (configs, tokenizer), kept byte for byte so savePretrained writes them back. */
export type FolderFiles = Map<string, Buffer>;

const WEIGHT_FILE = /(^|\/)(model|diffusion_pytorch_model)(-\d+-of-\d+)?\.safetensors(\.index\.json)?$/;

export class PiscesForConditionalGeneration extends Module {
  language_model: LlamaForCausalLM;
  understanding_projector: PiscesProjector;
  generation_projector: PiscesProjector;
  generation_head: PiscesProjector;
  /** Keys of config.json this implementation does not use. */
  unknownConfigKeys: string[] = [];
  /** The LLM's weight-only quantization when loaded with `quantize`, else null. */
  quantized: QuantizationBits | null = null;
  /** The tokenizer and image processors of the folder (set by fromPretrained). */
  processor: PiscesProcessor | null = null;
  /** Configs and tokenizer files of the folder, written back by savePretrained. */
  folderFiles: FolderFiles = new Map();
  // private fields: not enumerable, so not children of this module tree (their weights are their own folders')
  readonly #parts: PiscesParts;

  constructor(
    readonly config: PiscesConfig,
    parts: PiscesParts,
    options: ModelOptions = {},
  ) {
    super();
    this.#parts = parts;
    const C = config.textConfig.hiddenSize;
    const Du = parts.siglip.config.hiddenSize;
    const Dg = parts.genClip.clip.config.hiddenSize;
    this.language_model = new LlamaForCausalLM(config.textConfig, options);
    this.understanding_projector = new PiscesProjector(Du, C, C, config.projectorHiddenAct, options);
    this.generation_projector = new PiscesProjector(Dg, C, C, config.projectorHiddenAct, options);
    this.generation_head = new PiscesProjector(C, C, Dg, config.projectorHiddenAct, options);
    if (config.generationTargetNormalization) {
      // per-dimension statistics of the targets (set by the trainer), saved with the weights
      this.registerBuffer("generation_target_mean", T.zeros([Dg], options));
      this.registerBuffer("generation_target_std", T.ones([Dg], options));
    }
  }

  /** gen-CLIP space -> the space the LLM predicts in (identity unless generation_target_normalization). */
  normalizeTargets(x: Tensor): Tensor {
    if (!this.config.generationTargetNormalization) return x;
    const b = this as unknown as { generation_target_mean: Tensor; generation_target_std: Tensor };
    return T.scope(() => x.sub(b.generation_target_mean.to(x.dtype)).div(b.generation_target_std.to(x.dtype)));
  }

  /** The inverse of normalizeTargets. */
  denormalizeTargets(x: Tensor): Tensor {
    if (!this.config.generationTargetNormalization) return x;
    const b = this as unknown as { generation_target_mean: Tensor; generation_target_std: Tensor };
    return T.scope(() => x.mul(b.generation_target_std.to(x.dtype)).add(b.generation_target_mean.to(x.dtype)));
  }

  /** Stores the targets' per-dimension mean and std (D), e.g. measured by the trainer over the data. */
  setGenerationTargetStatistics(mean: Tensor, std: Tensor): void {
    if (!this.config.generationTargetNormalization)
      throw new PiscesError("generation_target_normalization is off in config.json: there are no statistics to set");
    const b = this as unknown as { generation_target_mean: Tensor; generation_target_std: Tensor };
    const D = b.generation_target_mean.size(0);
    if (mean.shape.join() !== `${D}` || std.shape.join() !== `${D}`)
      throw new PiscesError(`the statistics must be (${D}) vectors, got [${mean.shape}] and [${std.shape}]`);
    if (T.scope(() => std.le(0).any().item())) throw new PiscesError("every std must be > 0");
    T.noGrad(() => {
      b.generation_target_mean.copy_(mean);
      b.generation_target_std.copy_(std);
    });
  }

  get siglip(): SiglipVisionModel {
    return this.#parts.siglip;
  }
  get genClip(): GenClipEncoder {
    return this.#parts.genClip;
  }
  get decoder(): SdxlDecoder | null {
    return this.#parts.decoder;
  }
  /** SigLIP vectors per understanding image. */
  get numUnderstandingTokens(): number {
    const c = this.siglip.config;
    return (c.imageSize / c.patchSize) ** 2;
  }
  /** gen-CLIP vectors per generated image (64 for a 32x32 grid pooled 4x4). */
  get numGenerationVectors(): number {
    return this.genClip.numTokens;
  }

  /** SigLIP features (Nu, n, D_siglip) at understanding_feature_layer; frozen, no gradient. */
  understandingFeatures(pixelValues: Tensor): Tensor {
    return T.noGrad(() => this.siglip.imageFeatures(pixelValues, this.config.understandingFeatureLayer));
  }

  /** gen-CLIP targets (Ng, m, D_clip): patch tokens of generation_feature_layer, pooled k x k; frozen, no gradient. */
  generationTargets(pixelValues: Tensor): Tensor {
    return T.noGrad(() => this.genClip.encode(pixelValues));
  }

  /** Token embeddings (B, T, C) with the understanding vectors and teacher-forced generation vectors in their places. */
  embed(input: ForwardInput, targets: Tensor | null): Tensor {
    const [B, Tn] = input.inputIds.shape as [number, number];
    return this.spliceEmbeddings(
      input,
      targets,
      places(input.understandingMask, "understandingMask", B, Tn),
      places(input.generationMask, "generationMask", B, Tn),
    );
  }

  /** embed() with the flat places of both masks already read (forward reads them once). */
  private spliceEmbeddings(input: ForwardInput, targets: Tensor | null, und: number[], gen: number[]): Tensor {
    return T.scope(() => {
      const ids = input.inputIds;
      let e = this.language_model.getInputEmbeddings().forward(ids); // (B, T, C)
      const [B, Tn, C] = e.shape as [number, number, number];
      if (und.length) {
        const features = input.understandingFeatures ?? (input.understandingPixelValues ? this.understandingFeatures(input.understandingPixelValues) : null);
        if (!features) throw new PiscesError(`the batch marks ${und.length} understanding places but gives no understanding pixel values or features`);
        if (features.size(0) * features.size(1) !== und.length)
          throw new PiscesError(
            `the batch marks ${und.length} understanding places, but ${features.size(0)} image(s) x ${features.size(1)} vectors = ${features.size(0) * features.size(1)} were given`,
          );
        // .to(e.dtype): under autocast the projector's output is bfloat16, the embeddings float32
        const u = this.understanding_projector.forward(features.to(e.dtype)).reshape([-1, C]).to(e.dtype);
        e = e
          .reshape([B * Tn, C])
          .indexPut([T.tensor(und, { dtype: "int64", device: e.device })], u)
          .reshape([B, Tn, C]);
      } else if (input.understandingPixelValues?.size(0) || input.understandingFeatures?.size(0))
        throw new PiscesError("understanding images were given but the batch marks no place for them");
      if (gen.length) {
        if (!targets) throw new PiscesError(`the batch marks ${gen.length} generation places but gives no generation pixel values or targets`);
        if (targets.size(0) * targets.size(1) !== gen.length)
          throw new PiscesError(
            `the batch marks ${gen.length} generation places, but ${targets.size(0)} image(s) x ${targets.size(1)} vectors = ${targets.size(0) * targets.size(1)} were given`,
          );
        let x = targets.to(e.dtype);
        const std = this.config.generationInputNoiseStd;
        if (!this.config.generationInputFeedback)
          x = T.zerosLike(x); // no feedback: the same input at every place
        else if (this.training && std > 0) x = x.add(T.randn(x.shape, { dtype: x.dtype, device: x.device, generator: input.noiseGenerator }).mul(std)); // noisy teacher forcing
        const g = this.generation_projector.forward(x).reshape([-1, C]).to(e.dtype);
        e = e
          .reshape([B * Tn, C])
          .indexPut([T.tensor(gen, { dtype: "int64", device: e.device })], g)
          .reshape([B, Tn, C]);
      }
      return e;
    });
  }

  /** The generation head at the place before each generation place (h (B, T, C) -> (M, D) float32): [IMG] predicts vector 1, vector i predicts vector i + 1. */
  private predictVectors(h: Tensor, gen: number[]): Tensor {
    const [B, Tn, C] = h.shape as [number, number, number];
    if (gen.some((p) => p % Tn === 0)) throw new PiscesError("a generation place is the first position of its row: [IMG] must come before the vectors");
    const predicting = T.tensor(
      gen.map((p) => p - 1),
      { dtype: "int64", device: h.device },
    );
    return this.generation_head.forward(h.reshape([B * Tn, C]).indexSelect(0, predicting)).to("float32");
  }

  /**
   * The teacher-forced input vectors under parallel scheduled sampling (generation_scheduled_sampling
   * = p > 0, training): a gradient-free first pass predicts every vector from the true previous ones,
   * and each input vector is replaced by that prediction with probability p (drawn from the noise
   * generator). The targets of the loss stay the true vectors. Otherwise the targets themselves.
   */
  private scheduledSamplingInputs(input: ForwardInput, targets: Tensor | null, und: number[], gen: number[]): Tensor | null {
    const p = this.config.generationScheduledSampling;
    if (!targets || p <= 0 || !gen.length || !this.config.generationInputFeedback) return targets;
    return T.noGrad(() =>
      T.scope(() => {
        const e = this.spliceEmbeddings(input, targets, und, gen);
        const h = this.language_model.model.forward({ inputsEmbeds: e, attentionMask: input.attentionMask }).lastHiddenState; // (B, T, C)
        const pred = this.predictVectors(h, gen).to(targets.dtype); // (M, D)
        const flat = targets.reshape([-1, targets.size(2)]);
        const replace = T.rand([flat.size(0), 1], { dtype: "float32", device: flat.device, generator: input.noiseGenerator }).lt(p);
        return T.where(replace, pred, flat).reshape(targets.shape);
      }),
    );
  }

  /**
   * The input vectors under rollout sampling (generation_rollout_sampling = p > 0, training): each
   * generation sample is chosen with probability p (drawn from the noise generator), and a chosen
   * sample's input vectors become the model's own free-running rollout from its prompt (the row's
   * tokens before its first vector), computed without gradient as at inference. The targets of the
   * loss stay the true vectors. `inputs`: (Ng, m, D), the teacher-forced (or scheduled-sampling) inputs.
   */
  private rolloutInputs(input: ForwardInput, inputs: Tensor | null, gen: number[]): Tensor | null {
    const p = this.config.generationRolloutSampling;
    if (!inputs || p <= 0 || !gen.length || !this.config.generationInputFeedback) return inputs;
    const [Ng, m] = inputs.shape as [number, number, number];
    if (m !== this.numGenerationVectors || gen.length !== Ng * m) return inputs; // spliceEmbeddings names the mismatch
    const draws = T.scope(
      () => T.rand([Ng], { dtype: "float32", device: inputs.device, generator: input.noiseGenerator }).to({ device: "cpu" }).toArray() as Float32Array,
    );
    const chosen = [...draws].flatMap((u, i) => (u < p ? [i] : []));
    if (!chosen.length) return inputs;
    const Tn = input.inputIds.size(1);
    const ids = int64Values(input.inputIds);
    const attended = input.attentionMask ? int64Values(input.attentionMask) : null;
    const rows = chosen.map((i) => {
      const first = gen[i * m]!;
      if (gen[i * m + m - 1] !== first + m - 1 || Math.floor(first / Tn) !== Math.floor(gen[i * m + m - 1]! / Tn))
        throw new PiscesError(`generation sample ${i}'s ${m} places are not one run within a row: rollout sampling needs [IMG] followed by its ${m} vectors`);
      const b = Math.floor(first / Tn);
      const row: number[] = [];
      for (let j = b * Tn; j < first; j++) if (!attended || attended[j] !== 0n) row.push(Number(ids[j]));
      return row;
    });
    const rolled = runToEnd(this.rolloutSteps(rows)); // (chosen, m, D)
    try {
      return T.noGrad(() => inputs.indexPut([T.tensor(chosen, { dtype: "int64", device: inputs.device })], rolled.to(inputs.dtype)));
    } finally {
      rolled.dispose();
    }
  }

  /**
   * Losses of a batch mixing understanding and generation samples (left- or right-padded).
   * Gradients reach the LLM and the three MLPs only: the encoders run under no-grad.
   */
  forward(input: ForwardInput): PiscesOutput {
    return T.scope(() => {
      const targetsGiven = input.generationTargets ?? (input.generationPixelValues?.size(0) ? this.generationTargets(input.generationPixelValues) : null);
      const targets = targetsGiven ? this.normalizeTargets(targetsGiven.to("float32")) : null;
      const [B, Tn] = input.inputIds.shape as [number, number];
      const und = places(input.understandingMask, "understandingMask", B, Tn);
      const gen = places(input.generationMask, "generationMask", B, Tn); // read once: the masks live on the device
      const inputs = this.training ? this.rolloutInputs(input, this.scheduledSamplingInputs(input, targets, und, gen), gen) : targets;
      const e = this.spliceEmbeddings(input, inputs, und, gen);
      const h = this.language_model.model.forward({ inputsEmbeds: e, attentionMask: input.attentionMask }).lastHiddenState; // (B, T, C)
      const logits = this.language_model.lm_head.forward(h);
      const labelled = T.scope(() => input.labels.slice(1, 1).ne(-100).any().item()) === 1;
      const zero = () => T.zeros([], { dtype: "float32", device: h.device });
      const textLoss = labelled ? causalLmLoss(logits, input.labels) : zero();
      let imageLoss = zero();
      let imageCosineLoss = imageLoss;
      let imageEmbeddings: Tensor | null = null;
      if (gen.length && targets) {
        const D = targets.size(2);
        const pred = this.predictVectors(h, gen); // (M, D)
        const tgt = targets.reshape([-1, D]);
        imageLoss = T.mseLoss(pred, tgt);
        const cos = pred
          .mul(tgt)
          .sum(-1)
          .div(pred.norm(2, -1).clamp(1e-8).mul(tgt.norm(2, -1).clamp(1e-8)));
        imageCosineLoss = cos.mean().neg().add(1);
        imageEmbeddings = this.denormalizeTargets(pred.reshape([targets.size(0), targets.size(1), D])); // gen-CLIP space
      }
      const c = this.config;
      let loss = textLoss.mul(c.textLossWeight).add(imageLoss.mul(c.imageLossWeight));
      if (c.imageCosineLossWeight > 0) loss = loss.add(imageCosineLoss.mul(c.imageCosineLossWeight));
      return { loss, textLoss, imageLoss, imageCosineLoss, logits, imageEmbeddings };
    });
  }

  /**
   * The vectors of each caption, predicted one by one over a KV cache, each fed back through the
   * generation projector. With guidance > 1 the empty caption is one more row of the same batch.
   * Deterministic. A generator: yields after each vector, returns the embeddings (caller owns them).
   */
  *imageEmbeddingSteps(options: ImageEmbeddingsOptions): Generator<ImageEmbeddingStep, ImageEmbeddings> {
    const processor = this.requireProcessor();
    const captions = options.captions;
    if (!Array.isArray(captions) || captions.length === 0) throw new PiscesError("captions must be a non-empty list of strings");
    const guidance = options.guidanceScale ?? 3;
    if (!(guidance > 0) || !Number.isFinite(guidance)) throw new PiscesError(`guidanceScale must be a positive number, got ${guidance}`);
    const rows = [...captions, ...(guidance > 1 ? [""] : [])].map((c) => processor.generationPrompt(c));
    const m = this.numGenerationVectors;
    const L = Math.max(...rows.map((r) => r.length));
    const maxPositions = this.config.textConfig.maxPositionEmbeddings;
    if (L + m > maxPositions)
      throw new PiscesError(`a caption of ${L} tokens plus ${m} image vectors exceeds the LLM's ${maxPositions} positions: shorten the caption`);
    const normalized = yield* this.rolloutSteps(rows);
    try {
      return T.scope(() => {
        const all = this.denormalizeTargets(normalized.to("float32")); // (B, m, D) in gen-CLIP space
        const n = captions.length;
        return { conditional: all.slice(0, 0, n), unconditional: guidance > 1 ? all.slice(0, n, n + 1) : null };
      });
    } finally {
      normalized.dispose();
    }
  }

  /**
   * The rollout itself: from token rows (each a whole prompt ending in [IMG], left-padded here), the
   * m vectors predicted one by one over a KV cache, each fed back through the generation projector.
   * Gradient-free. Returns (B, m, D) in the normalised target space, in the LLM's dtype (caller owns it).
   */
  private *rolloutSteps(rows: readonly number[][]): Generator<ImageEmbeddingStep, Tensor> {
    const m = this.numGenerationVectors;
    const L = Math.max(...rows.map((r) => r.length));
    const device = this.language_model.model.norm.weight.device; // (lm_head may be quantized: no .weight)
    const dtype = this.language_model.model.norm.weight.dtype;
    const B = rows.length;
    const owned = new T.Owned();
    const cache = new StaticCache(this.config.textConfig, B, L + m - 1, { dtype, device });
    try {
      const padded = rows.some((r) => r.length < L);
      let mask = owned.hold(
        T.tensor(
          rows.map((r) => [...new Array(L - r.length).fill(0), ...r.map(() => 1)]),
          { dtype: "int64", device },
        ),
      );
      const ids = owned.hold(
        T.tensor(
          rows.map((r) => [...new Array(L - r.length).fill(this.config.imageStartTokenId), ...r]),
          { dtype: "int64", device },
        ),
      );
      let positions = owned.hold(T.scope(() => mask.cumsum(1).sub(1).maskedFill(mask.eq(0), 1)));
      const vectors: Tensor[] = [];
      let input = owned.hold(T.noGrad(() => this.language_model.getInputEmbeddings().forward(ids)));
      for (let i = 0; i < m; i++) {
        const v = T.noGrad(() =>
          T.scope(() => {
            const h = this.language_model.model.forward({
              inputsEmbeds: input,
              attentionMask: padded ? mask : null,
              positionIds: positions,
              cache,
            }).lastHiddenState;
            return this.generation_head.forward(h.select(1, -1)); // (B, D)
          }),
        );
        vectors.push(owned.hold(v));
        if (i < m - 1) {
          const [nextInput, nextMask, nextPositions] = T.noGrad(() =>
            T.scope(() => [
              this.generation_projector.forward(this.config.generationInputFeedback ? v : T.zerosLike(v)).unsqueeze(1), // (B, 1, C)
              T.cat([mask, T.ones([B, 1], { dtype: "int64", device })], 1),
              positions.slice(1, -1).add(1),
            ]),
          );
          input = owned.replace(input, nextInput);
          mask = owned.replace(mask, nextMask);
          positions = owned.replace(positions, nextPositions);
        }
        yield { i: i + 1, of: m };
      }
      return T.noGrad(() => T.stack(vectors, 1));
    } finally {
      cache.dispose();
      owned.dispose();
    }
  }

  /** imageEmbeddingSteps run to the end. */
  generateImageEmbeddings(options: ImageEmbeddingsOptions): ImageEmbeddings {
    return runToEnd(this.imageEmbeddingSteps(options));
  }

  /** Prompt vectors (B, T, C) for text generation after images: token embeddings with the SigLIP vectors spliced in. */
  promptEmbeddings(input: Pick<ForwardInput, "inputIds" | "understandingMask" | "understandingPixelValues" | "understandingFeatures">): Tensor {
    return T.noGrad(() =>
      T.scope(() =>
        this.embed({ ...input, attentionMask: input.inputIds, labels: input.inputIds, generationMask: T.zerosLike(input.inputIds) } as ForwardInput, null),
      ),
    );
  }

  /**
   * Text after images: greedy or sampled decoding (llama's decodeSteps) from the prompt's
   * embeddings; yields every step's tokens. The prompt vectors are freed however the loop ends.
   */
  *textSteps(
    input: Pick<ForwardInput, "inputIds" | "attentionMask" | "understandingMask" | "understandingPixelValues" | "understandingFeatures">,
    options: Omit<GenerateOptions, "inputIds" | "inputsEmbeds" | "attentionMask">,
  ): Generator<GenerationStep> {
    const embeds = this.promptEmbeddings(input);
    try {
      yield* this.language_model.decodeSteps({ ...options, inputsEmbeds: embeds, attentionMask: input.attentionMask });
    } finally {
      embeds.dispose();
    }
  }

  private requireProcessor(): PiscesProcessor {
    if (!this.processor) throw new PiscesError("this model has no processor (tokenizer): load it with fromPretrained or set model.processor");
    return this.processor;
  }

  /** Every parameter of the folder's parts: the trained module tree plus encoders and decoder. */
  override dispose(): void {
    super.dispose();
    this.siglip.dispose();
    this.genClip.clip.dispose();
    this.decoder?.unet.dispose();
    this.decoder?.vae.dispose();
  }

  /**
   * Loads a Pisces folder (layout in the package README): config.json, model.safetensors (or
   * shards), the tokenizer, siglip/, gen_clip/ and decoder/ (skipped with `decoder: false`).
   * Widths are checked across parts before anything is built; loading is strict.
   */
  /**
   * Loads a Pisces folder. `quantize: "int8" | "int4"` quantizes the LLM's linear layers after
   * loading (@pisces/llama's `quantize`: weight-only GGML blocks, float32 CPU inference; the
   * encoders, MLPs and decoder stay float). A quantized model does not train or save.
   */
  static fromPretrained(dir: string, options: ModelOptions & { decoder?: boolean; quantize?: QuantizationBits } = {}): PiscesForConditionalGeneration {
    if (options.quantize !== undefined && options.quantize !== "int8" && options.quantize !== "int4")
      throw new PiscesError(`quantize must be "int8" or "int4", got ${JSON.stringify(options.quantize)}`);
    if (options.quantize && (options.dtype ?? "float32") !== "float32")
      throw new PiscesError(`a quantized LLM runs in float32; dtype ${options.dtype} cannot be combined with quantize`);
    const { json, path } = T.readConfigJson(dir, "Pisces model");
    const { config, unknownKeys } = resolvePiscesConfig(json as PiscesConfigJson, path);
    for (const part of ["siglip", "gen_clip", ...(options.decoder === false ? [] : ["decoder"])])
      if (!existsSync(join(dir, part)))
        throw new PiscesError(`${dir}: the '${part}' folder is missing; a Pisces folder holds siglip/, gen_clip/ and decoder/ beside config.json`);
    const load = { dtype: options.dtype, device: options.device };
    const weights = T.openWeights(dir);
    const shape = (key: string) => (weights.keys().includes(key) ? weights.shapeOf(key) : null);
    const siglip = SiglipVisionModel.fromPretrained(join(dir, "siglip"), load);
    const owned: { dispose(): void }[] = [siglip];
    try {
      let genClip: GenClipEncoder;
      try {
        genClip = GenClipEncoder.fromPretrained(join(dir, "gen_clip"), {
          ...load,
          kernel: config.generationPoolKernel,
          featureLayer: config.generationFeatureLayer,
        });
      } catch (e) {
        if (e instanceof RangeError)
          throw new PiscesConfigError([`generation_pool_kernel = ${config.generationPoolKernel}: ${e.message} (gen_clip/config.json)`], path);
        throw e;
      }
      owned.push(genClip.clip);
      const decoder = options.decoder === false ? null : SdxlDecoder.fromPretrained(join(dir, "decoder"), load);
      if (decoder) owned.push(decoder.unet, decoder.vae);
      checkWidths(dir, config, shape, siglip, genClip, decoder);
      const parts: PiscesParts = { siglip, genClip, decoder };
      const source = withTiedLmHead(weights, config.textConfig.tieWordEmbeddings);
      const model = T.loadPretrained({ what: path, weights: source, options: load, build: (o) => new PiscesForConditionalGeneration(config, parts, o) });
      model.unknownConfigKeys = unknownKeys;
      model.language_model.model.rotary_emb.to(T.resolveLoadOptions(load).device);
      if (options.quantize)
        try {
          quantize(model.language_model, options.quantize);
          model.quantized = options.quantize;
        } catch (e) {
          model.dispose(); // the parts too (idempotent with the catch below)
          throw e;
        }
      model.folderFiles = readFolderFiles(dir);
      model.processor = PiscesProcessor.fromPretrained(dir);
      return model;
    } catch (e) {
      for (const o of owned) o.dispose();
      throw e;
    }
  }

  /**
   * Assembles a new Pisces from parts people already have, to start stage 1: an LLM folder (Hugging
   * Face Llama, with tokenizer.json), a SigLIP checkpoint, a CLIP vision checkpoint and a diffusers
   * decoder folder. `[IMG]` and `[/IMG]` are added to the tokenizer as special tokens and the
   * embeddings grown to fit (new rows: the mean of the others); the three MLPs start from
   * PyTorch's default initialisation, seeded. `savePretrained` then writes a Pisces folder.
   * Memory: the LLM is held twice while it is copied in.
   */
  static fromParts(
    parts: { languageModel: string; siglip: string; genClip: string; decoder: string },
    options: ModelOptions & { seed?: number; config?: Partial<Omit<PiscesConfigJson, "text_config" | "image_start_token_id" | "image_end_token_id">> } = {},
  ): PiscesForConditionalGeneration {
    const load = { dtype: options.dtype, device: options.device };
    const tokenizer = AutoTokenizer.fromPretrained(parts.languageModel);
    tokenizer.addSpecialTokens([IMAGE_START_TOKEN, IMAGE_END_TOKEN]);
    const llm = LlamaForCausalLM.fromPretrained(parts.languageModel, load);
    const owned: { dispose(): void }[] = [llm];
    try {
      if (tokenizer.vocabSize > llm.config.vocabSize) llm.resizeTokenEmbeddings(tokenizer.vocabSize);
      const { json: textJson } = T.readConfigJson(parts.languageModel, "Hugging Face model");
      const json: PiscesConfigJson = {
        model_type: "pisces",
        architectures: ["PiscesForConditionalGeneration"],
        understanding_feature_layer: -1,
        generation_feature_layer: -1,
        generation_pool_kernel: 4,
        ...options.config,
        text_config: { ...(textJson as LlamaConfigJson), vocab_size: llm.config.vocabSize },
        image_start_token_id: tokenizer.tokenToId(IMAGE_START_TOKEN)!,
        image_end_token_id: tokenizer.tokenToId(IMAGE_END_TOKEN)!,
      };
      const { config, unknownKeys } = resolvePiscesConfig(json, "fromParts config");
      const siglip = SiglipVisionModel.fromPretrained(parts.siglip, load);
      owned.push(siglip);
      const genClip = GenClipEncoder.fromPretrained(parts.genClip, {
        ...load,
        kernel: config.generationPoolKernel,
        featureLayer: config.generationFeatureLayer,
      });
      owned.push(genClip.clip);
      const decoder = SdxlDecoder.fromPretrained(parts.decoder, load);
      owned.push(decoder.unet, decoder.vae);
      checkWidths("fromParts", config, () => null, siglip, genClip, decoder);
      if (options.seed !== undefined) T.manualSeed(options.seed);
      const model = new PiscesForConditionalGeneration(config, { siglip, genClip, decoder }, T.resolveLoadOptions(load));
      owned.push(model);
      model.language_model.loadStateDict(llm.stateDict()); // copied in, then the loaded LLM is freed
      llm.dispose();
      owned.shift();
      model.unknownConfigKeys = unknownKeys;
      const files: FolderFiles = new Map([
        ["config.json", Buffer.from(JSON.stringify(json, null, 2))],
        ["tokenizer.json", Buffer.from(JSON.stringify(tokenizer.toJSON()))],
      ]);
      for (const [name, bytes] of readFolderFiles(parts.languageModel))
        if (name.startsWith("tokenizer_config") || name.startsWith("chat_template") || name === "special_tokens_map.json" || name === "generation_config.json")
          files.set(name, bytes);
      for (const [prefix, dir] of [
        ["siglip", parts.siglip],
        ["gen_clip", parts.genClip],
        ["decoder", parts.decoder],
      ] as const)
        for (const [name, bytes] of readFolderFiles(dir)) files.set(`${prefix}/${name}`, bytes);
      model.folderFiles = files;
      model.eval();
      model.processor = new PiscesProcessor(
        tokenizer,
        SiglipImageProcessor.fromPretrained(parts.siglip),
        ClipImageProcessor.fromPretrained(parts.genClip),
        config,
        model.numUnderstandingTokens,
        model.numGenerationVectors,
      );
      return model;
    } catch (e) {
      for (const o of owned) o.dispose();
      throw e;
    }
  }

  /**
   * Writes the whole folder: config files and tokenizer as loaded, model.safetensors from this
   * module tree (a tied lm_head is left out, as transformers saves it), and every part's weights
   * in its own subfolder. Atomic: written aside, fsynced, then renamed into place.
   */
  savePretrained(dir: string): void {
    if (this.quantized)
      throw new PiscesError(
        `savePretrained: this model's LLM was quantized (${this.quantized}) when loaded; saving quantized weights is not supported yet, load it without quantize to save`,
      );
    if (!this.folderFiles.has("config.json"))
      throw new PiscesError("savePretrained: this model has no folder files (config.json, tokenizer); load it with fromPretrained");
    if (this.decoder === null)
      throw new PiscesError("savePretrained: the model was loaded without its decoder; load it with the decoder to write a whole folder");
    const target = dir.replace(/\/+$/, "");
    T.removeStaleTemporaries(target);
    const tmp = temporaryDirFor(target);
    mkdirSync(tmp, { recursive: true });
    try {
      for (const [rel, bytes] of this.folderFiles) writeSynced(join(tmp, rel), bytes);
      const state = this.stateDict();
      if (this.config.textConfig.tieWordEmbeddings) state.delete("language_model.lm_head.weight");
      const save = (rel: string, tensors: Map<string, Tensor>) => {
        mkdirSync(dirname(join(tmp, rel)), { recursive: true });
        T.noGrad(() => T.saveSafetensors(join(tmp, rel), contiguous(tensors), { format: "pt" }));
      };
      save("model.safetensors", state);
      save("siglip/model.safetensors", this.siglip.stateDict());
      save("gen_clip/model.safetensors", this.genClip.clip.stateDict());
      save("decoder/unet/diffusion_pytorch_model.safetensors", this.decoder.unet.stateDict());
      save("decoder/vae/diffusion_pytorch_model.safetensors", this.decoder.vae.stateDict());
      // the old folder (if any) goes aside first, so the name never points at a half-written folder
      const old = existsSync(target) ? temporaryDirFor(target) : null;
      if (old) renameSync(target, old);
      renameSync(tmp, target);
      if (old) rmSync(old, { recursive: true, force: true });
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }
}

/** Flat indices b * T + t of the 1s of a (B, T) mask, row by row. */
/** A tensor's values as int64 on the CPU (masks and ids, read once per batch). */
function int64Values(t: Tensor): BigInt64Array {
  return T.scope(() => t.to({ dtype: "int64", device: "cpu" }).contiguous().toArray() as BigInt64Array);
}

/** A step generator run to its end: its return value. */
function runToEnd<R>(steps: Generator<unknown, R>): R {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

function places(mask: Tensor, what: string, B: number, Tn: number): number[] {
  if (mask.ndim !== 2 || mask.size(0) !== B || mask.size(1) !== Tn) throw new PiscesError(`${what} must be [${B}, ${Tn}] like inputIds, got [${mask.shape}]`);
  const values = int64Values(mask);
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i] !== 0n) out.push(i);
  return out;
}

/** Checks that the parts fit each other, with one error naming both sides. */
function checkWidths(
  dir: string,
  config: PiscesConfig,
  shape: (key: string) => number[] | null,
  siglip: SiglipVisionModel,
  genClip: GenClipEncoder,
  decoder: SdxlDecoder | null,
): void {
  const problems: string[] = [];
  const Du = siglip.config.hiddenSize;
  const Dg = genClip.clip.config.hiddenSize;
  const C = config.textConfig.hiddenSize;
  const expect = (key: string, axis: number, want: number, other: string) => {
    const s = shape(key);
    if (s && s[axis] !== want) problems.push(`${key} has ${axis === 1 ? "input" : "output"} width ${s[axis]} but ${other} is ${want}`);
  };
  expect("understanding_projector.linear_1.weight", 1, Du, "siglip/config.json hidden_size");
  expect("understanding_projector.linear_2.weight", 0, C, "text_config.hidden_size");
  expect("generation_projector.linear_1.weight", 1, Dg, "gen_clip/config.json hidden_size");
  expect("generation_projector.linear_2.weight", 0, C, "text_config.hidden_size");
  expect("generation_head.linear_1.weight", 1, C, "text_config.hidden_size");
  expect("generation_head.linear_2.weight", 0, Dg, "gen_clip/config.json hidden_size");
  if (decoder) {
    const unet = decoder.unet.config;
    if (unet.crossAttentionDim !== Dg)
      problems.push(
        `decoder/unet/config.json cross_attention_dim is ${unet.crossAttentionDim} but the gen-CLIP width (gen_clip/config.json hidden_size) is ${Dg}`,
      );
    if (unet.textTime) {
      const pooled = unet.textTime.inputDim - 6 * unet.textTime.timeEmbedDim;
      if (pooled !== Dg)
        problems.push(
          `decoder/unet/config.json leaves ${pooled} values for the pooled vector (projection_class_embeddings_input_dim - 6 x addition_time_embed_dim) but the gen-CLIP width is ${Dg}`,
        );
    }
  }
  const nu = (siglip.config.imageSize / siglip.config.patchSize) ** 2;
  const positions = config.textConfig.maxPositionEmbeddings;
  if (nu + genClip.numTokens + 8 > positions)
    problems.push(`an image takes ${nu} understanding or ${genClip.numTokens} generation positions; the LLM's ${positions} positions leave no room for text`);
  if (problems.length) throw new PiscesConfigError(problems, dir);
}

/** A tied lm_head is the embedding itself (transformers saves it once). */
function withTiedLmHead(source: T.SafetensorsReader, tied: boolean): T.nn.StateDictSource {
  const head = "language_model.lm_head.weight";
  const embed = "language_model.model.embed_tokens.weight";
  const keys = source.keys();
  if (!tied || keys.includes(head)) return source;
  const from = (k: string) => (k === head ? embed : k);
  return Object.assign(
    { keys: () => [...keys, head], get: (k: string) => source.get(from(k)), shapeOf: (k: string) => source.shapeOf(from(k)) },
    { path: source.path },
  );
}

function contiguous(tensors: Map<string, Tensor>): Map<string, Tensor> {
  return new Map([...tensors].map(([k, t]) => [k, t.device === "cpu" ? t : t.to("cpu")]));
}

/** Every non-weight file of the folder (configs, tokenizer), as bytes. Bounded: 64 MiB each, 512 files. */
function readFolderFiles(dir: string): FolderFiles {
  const files: FolderFiles = new Map();
  const walk = (d: string, depth: number) => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith(".")) continue; // temporaries, editor files
      const p = join(d, name);
      const s = statSync(p);
      const rel = relative(dir, p);
      if (s.isDirectory()) {
        if (depth < 3) walk(p, depth + 1);
      } else if (s.isFile() && !WEIGHT_FILE.test(rel) && !rel.endsWith(".safetensors")) {
        if (s.size > 64 * 1024 * 1024)
          throw new PiscesError(`${p} is larger than 64 MiB; a Pisces folder holds only configs and tokenizer files besides weights`);
        if (files.size >= 512) throw new PiscesError(`${dir} holds more than 512 files besides weights`);
        files.set(rel, readFileSync(p));
      }
    }
  };
  walk(dir, 0);
  return files;
}

function writeSynced(path: string, bytes: Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function temporaryDirFor(target: string): string {
  return join(dirname(target), `.${target.split("/").pop()}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}
