// The primitive layers, with PyTorch's parameter names and default initialisation.
import { empty, ones, zeros } from "../creation.js";
import type { DType } from "../dtype.js";
import * as F from "../functional.js";
import type { Device, Tensor } from "../tensor.js";
import { Module, Parameter } from "./module.js";

export interface FactoryOptions {
  dtype?: DType;
  device?: Device;
}

function uniformParameter(shape: number[], bound: number, options: FactoryOptions): Parameter {
  return new Parameter(empty(shape, options).uniform_(-bound, bound));
}

/** y = x W^T + b. weight (out, in), bias (out); init U(-1/sqrt(in), 1/sqrt(in)) as PyTorch. */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: FactoryOptions & { bias?: boolean } = {},
  ) {
    super();
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.weight = uniformParameter([outFeatures, inFeatures], bound, options);
    this.bias = (options.bias ?? true) ? uniformParameter([outFeatures], bound, options) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

/** A lookup table (num, dim); init N(0, 1) as PyTorch. */
export class Embedding extends Module {
  weight: Parameter;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: FactoryOptions & { paddingIdx?: number } = {},
  ) {
    super();
    const t = empty([numEmbeddings, embeddingDim], options).normal_();
    if (options.paddingIdx !== undefined) {
      const row = t.select(0, options.paddingIdx);
      row.zero_();
      row.dispose();
    }
    this.weight = new Parameter(t);
    this.paddingIdx = options.paddingIdx;
  }
  readonly paddingIdx: number | undefined;
  forward(input: Tensor): Tensor {
    return F.embedding(input, this.weight, { paddingIdx: this.paddingIdx });
  }
}

/** Layer normalisation over the trailing `normalizedShape`; weight ones, bias zeros. */
export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    options: FactoryOptions & { elementwiseAffine?: boolean; bias?: boolean } = {},
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : normalizedShape;
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape, options)) : null;
    this.bias = affine && (options.bias ?? true) ? new Parameter(zeros(this.normalizedShape, options)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** RMS normalisation (`nn.RMSNorm`); eps null uses the dtype's machine epsilon, as PyTorch. */
export class RMSNorm extends Module {
  weight: Parameter | null;
  readonly normalizedShape: number[];
  constructor(
    normalizedShape: number | number[],
    readonly eps: number | null = null,
    options: FactoryOptions & { elementwiseAffine?: boolean } = {},
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : normalizedShape;
    this.weight = (options.elementwiseAffine ?? true) ? new Parameter(ones(this.normalizedShape, options)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}

/** Group normalisation of (B, C, *); weight ones, bias zeros. */
export class GroupNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    options: FactoryOptions & { affine?: boolean } = {},
  ) {
    super();
    if (numChannels % numGroups !== 0) throw new RangeError(`GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`);
    const affine = options.affine ?? true;
    this.weight = affine ? new Parameter(ones([numChannels], options)) : null;
    this.bias = affine ? new Parameter(zeros([numChannels], options)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

/** 2-D convolution; weight (out, in / groups, kH, kW); init as PyTorch (kaiming uniform, a = sqrt 5). */
export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernelSize: [number, number];
  readonly stride: number | [number, number];
  readonly padding: number | [number, number] | "same" | "valid";
  readonly dilation: number | [number, number];
  readonly groups: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | [number, number],
    options: FactoryOptions & F.Conv2dOptions & { bias?: boolean } = {},
  ) {
    super();
    this.kernelSize = typeof kernelSize === "number" ? [kernelSize, kernelSize] : kernelSize;
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.dilation = options.dilation ?? 1;
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0)
      throw new RangeError(`Conv2d: inChannels (${inChannels}) and outChannels (${outChannels}) must be divisible by groups (${this.groups})`);
    const fanIn = (inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    this.weight = uniformParameter([outChannels, inChannels / this.groups, ...this.kernelSize], bound, options);
    this.bias = (options.bias ?? true) ? uniformParameter([outChannels], bound, options) : null;
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

/** Dropout that is active in training mode only. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, { p: this.p, training: this.training });
  }
}
