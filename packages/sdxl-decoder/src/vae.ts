// AutoencoderKL (the SDXL VAE), following diffusers' autoencoder_kl.py and vae.py: a conv encoder
// to a diagonal Gaussian over latents (mean, log-variance) and a conv decoder back to pixels.
// Module paths equal diffusers' checkpoint keys (`decoder.up_blocks.0.resnets.1.conv2.weight`).
// SDXL's VAE overflows in float16: keep it in float32 or bfloat16 unless the weights are fp16-fixed.
import * as T from "@pisces/tensor-cuda";
import { type AutoencoderKLConfig, type AutoencoderKLConfigJson, resolveAutoencoderKLConfig } from "./config.js";
import { loadDiffusersModel, readDiffusersConfig } from "./weights.js";

type Tensor = T.Tensor;
const { Module, ModuleList, Linear, GroupNorm, Conv2d } = T.nn;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

const EPS = 1e-6; // resnet_eps and the attention group norm in diffusers' VAE blocks

/** GroupNorm -> SiLU -> conv, twice, plus a (1x1-projected) residual. */
export class ResnetBlock2D extends Module {
  norm1: T.nn.GroupNorm;
  conv1: T.nn.Conv2d;
  norm2: T.nn.GroupNorm;
  conv2: T.nn.Conv2d;
  conv_shortcut: T.nn.Conv2d | null;
  constructor(inChannels: number, outChannels: number, groups: number, options: ModelOptions = {}) {
    super();
    this.norm1 = new GroupNorm(groups, inChannels, EPS, options);
    this.conv1 = new Conv2d(inChannels, outChannels, 3, { ...options, padding: 1 });
    this.norm2 = new GroupNorm(groups, outChannels, EPS, options);
    this.conv2 = new Conv2d(outChannels, outChannels, 3, { ...options, padding: 1 });
    this.conv_shortcut = inChannels !== outChannels ? new Conv2d(inChannels, outChannels, 1, options) : null;
  }
  forward(x: Tensor): Tensor {
    const h = this.conv2.forward(T.silu(this.norm2.forward(this.conv1.forward(T.silu(this.norm1.forward(x))))));
    return (this.conv_shortcut ? this.conv_shortcut.forward(x) : x).add(h);
  }
}

/** Single-head self-attention over the H*W positions, with a residual (the VAE's mid-block attention). */
export class VaeAttention extends Module {
  group_norm: T.nn.GroupNorm;
  to_q: T.nn.Linear;
  to_k: T.nn.Linear;
  to_v: T.nn.Linear;
  to_out: T.nn.ModuleList<T.nn.Linear>;
  constructor(channels: number, groups: number, options: ModelOptions = {}) {
    super();
    this.group_norm = new GroupNorm(groups, channels, EPS, options);
    this.to_q = new Linear(channels, channels, options);
    this.to_k = new Linear(channels, channels, options);
    this.to_v = new Linear(channels, channels, options);
    this.to_out = new ModuleList([new Linear(channels, channels, options)]);
  }
  forward(x: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const h = this.group_norm
      .forward(x)
      .view([B, C, H * W])
      .transpose(1, 2); // (B, HW, C)
    const heads = (t: Tensor) => t.unsqueeze(1); // (B, 1, HW, C): one head
    const y = T.scaledDotProductAttention(heads(this.to_q.forward(h)), heads(this.to_k.forward(h)), heads(this.to_v.forward(h))).squeeze(1);
    const out = this.to_out.at(0).forward(y).transpose(1, 2).reshape([B, C, H, W]);
    return out.add(x);
  }
}

export class UNetMidBlock2D extends Module {
  attentions: T.nn.ModuleList<VaeAttention>;
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  constructor(channels: number, groups: number, addAttention: boolean, options: ModelOptions = {}) {
    super();
    this.attentions = new ModuleList(addAttention ? [new VaeAttention(channels, groups, options)] : []);
    this.resnets = new ModuleList([new ResnetBlock2D(channels, channels, groups, options), new ResnetBlock2D(channels, channels, groups, options)]);
  }
  forward(x: Tensor): Tensor {
    let h = this.resnets.at(0).forward(x);
    if (this.attentions.length) h = this.attentions.at(0).forward(h);
    return this.resnets.at(1).forward(h);
  }
}

/** Halves H and W: pad right/bottom by one, then a stride-2 3x3 conv (diffusers' Downsample2D, padding 0). */
export class Downsample2D extends Module {
  conv: T.nn.Conv2d;
  constructor(channels: number, options: ModelOptions = {}) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { ...options, stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(T.pad(x, [0, 1, 0, 1]));
  }
}

/** Doubles H and W: nearest upsampling, then a 3x3 conv. */
export class Upsample2D extends Module {
  conv: T.nn.Conv2d;
  constructor(channels: number, options: ModelOptions = {}) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { ...options, padding: 1 });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(T.interpolate(x, { scaleFactor: 2, mode: "nearest" }));
  }
}

export class DownEncoderBlock2D extends Module {
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  downsamplers: T.nn.ModuleList<Downsample2D>;
  constructor(inChannels: number, outChannels: number, layers: number, groups: number, downsample: boolean, options: ModelOptions = {}) {
    super();
    this.resnets = new ModuleList(
      Array.from({ length: layers }, (_, j) => new ResnetBlock2D(j === 0 ? inChannels : outChannels, outChannels, groups, options)),
    );
    this.downsamplers = new ModuleList(downsample ? [new Downsample2D(outChannels, options)] : []);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const r of this.resnets) h = r.forward(h);
    for (const d of this.downsamplers) h = d.forward(h);
    return h;
  }
}

export class UpDecoderBlock2D extends Module {
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  upsamplers: T.nn.ModuleList<Upsample2D>;
  constructor(inChannels: number, outChannels: number, layers: number, groups: number, upsample: boolean, options: ModelOptions = {}) {
    super();
    this.resnets = new ModuleList(
      Array.from({ length: layers }, (_, j) => new ResnetBlock2D(j === 0 ? inChannels : outChannels, outChannels, groups, options)),
    );
    this.upsamplers = new ModuleList(upsample ? [new Upsample2D(outChannels, options)] : []);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const r of this.resnets) h = r.forward(h);
    for (const u of this.upsamplers) h = u.forward(h);
    return h;
  }
}

export class VaeEncoder extends Module {
  conv_in: T.nn.Conv2d;
  down_blocks: T.nn.ModuleList<DownEncoderBlock2D>;
  mid_block: UNetMidBlock2D;
  conv_norm_out: T.nn.GroupNorm;
  conv_out: T.nn.Conv2d;
  constructor(c: AutoencoderKLConfig, options: ModelOptions = {}) {
    super();
    const ch = c.blockOutChannels;
    this.conv_in = new Conv2d(c.inChannels, ch[0]!, 3, { ...options, padding: 1 });
    this.down_blocks = new ModuleList(
      ch.map((out, i) => new DownEncoderBlock2D(i === 0 ? ch[0]! : ch[i - 1]!, out, c.layersPerBlock, c.normNumGroups, i < ch.length - 1, options)),
    );
    const last = ch[ch.length - 1]!;
    this.mid_block = new UNetMidBlock2D(last, c.normNumGroups, c.midBlockAddAttention, options);
    this.conv_norm_out = new GroupNorm(c.normNumGroups, last, EPS, options);
    this.conv_out = new Conv2d(last, 2 * c.latentChannels, 3, { ...options, padding: 1 });
  }
  forward(x: Tensor): Tensor {
    let h = this.conv_in.forward(x);
    for (const b of this.down_blocks) h = b.forward(h);
    h = this.mid_block.forward(h);
    return this.conv_out.forward(T.silu(this.conv_norm_out.forward(h)));
  }
}

export class VaeDecoder extends Module {
  conv_in: T.nn.Conv2d;
  mid_block: UNetMidBlock2D;
  up_blocks: T.nn.ModuleList<UpDecoderBlock2D>;
  conv_norm_out: T.nn.GroupNorm;
  conv_out: T.nn.Conv2d;
  constructor(c: AutoencoderKLConfig, options: ModelOptions = {}) {
    super();
    const reversed = [...c.blockOutChannels].reverse();
    this.conv_in = new Conv2d(c.latentChannels, reversed[0]!, 3, { ...options, padding: 1 });
    this.mid_block = new UNetMidBlock2D(reversed[0]!, c.normNumGroups, c.midBlockAddAttention, options);
    this.up_blocks = new ModuleList(
      reversed.map(
        (out, i) =>
          new UpDecoderBlock2D(i === 0 ? reversed[0]! : reversed[i - 1]!, out, c.layersPerBlock + 1, c.normNumGroups, i < reversed.length - 1, options),
      ),
    );
    const first = c.blockOutChannels[0]!;
    this.conv_norm_out = new GroupNorm(c.normNumGroups, first, EPS, options);
    this.conv_out = new Conv2d(first, c.outChannels, 3, { ...options, padding: 1 });
  }
  forward(z: Tensor): Tensor {
    let h = this.mid_block.forward(this.conv_in.forward(z));
    for (const b of this.up_blocks) h = b.forward(h);
    return this.conv_out.forward(T.silu(this.conv_norm_out.forward(h)));
  }
}

/** A diagonal Gaussian over latents: mean and log-variance (clamped to [-30, 20], as diffusers). */
export class DiagonalGaussian {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;
  constructor(moments: Tensor) {
    const [mean, logvar] = moments.chunk(2, 1) as [Tensor, Tensor];
    this.mean = mean;
    this.logvar = logvar.clamp(-30, 20);
    this.std = this.logvar.mul(0.5).exp();
  }
  /** A distribution from its already computed parts (no new tensors). */
  static fromParts(mean: Tensor, logvar: Tensor, std: Tensor): DiagonalGaussian {
    const g = Object.create(DiagonalGaussian.prototype) as { mean: Tensor; logvar: Tensor; std: Tensor };
    Object.assign(g, { mean, logvar, std });
    return g as unknown as DiagonalGaussian;
  }
  /** Frees the three tensors. */
  dispose(): void {
    for (const t of [this.mean, this.logvar, this.std]) t.dispose();
  }
  /** mean + std * noise, noise from `generator` (reproducible). */
  sample(generator?: T.Generator): Tensor {
    return T.scope(() => this.mean.add(this.std.mul(T.randn(this.mean.shape, { dtype: this.mean.dtype, device: this.mean.device, generator }))));
  }
}

export class AutoencoderKL extends Module {
  encoder: VaeEncoder;
  decoder: VaeDecoder;
  quant_conv: T.nn.Conv2d | null;
  post_quant_conv: T.nn.Conv2d | null;
  constructor(
    readonly config: AutoencoderKLConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.encoder = new VaeEncoder(config, options);
    this.decoder = new VaeDecoder(config, options);
    const L = config.latentChannels;
    this.quant_conv = config.useQuantConv ? new Conv2d(2 * L, 2 * L, 1, options) : null;
    this.post_quant_conv = config.usePostQuantConv ? new Conv2d(L, L, 1, options) : null;
  }

  /** Latent factor per side: 2^(number of blocks - 1) (8 for SDXL). */
  get downsampleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** pixels (B, 3, H, W) in [-1, 1] -> the latent distribution (B, L, H / f, W / f). */
  encode(pixels: Tensor): DiagonalGaussian {
    const f = this.downsampleFactor;
    const [, C, H, W] = pixels.shape as [number, number, number, number];
    if (pixels.ndim !== 4 || C !== this.config.inChannels)
      throw new RangeError(`encode: pixels must be (batch, ${this.config.inChannels}, H, W), got [${pixels.shape}]`);
    if (H % f || W % f) throw new RangeError(`encode: height and width must be multiples of ${f}, got ${H}x${W}`);
    // only the distribution's tensors outlive the call (the memory contract)
    const parts = T.scope(() => {
      const h = this.encoder.forward(pixels);
      const g = new DiagonalGaussian(this.quant_conv ? this.quant_conv.forward(h) : h);
      return { mean: g.mean, logvar: g.logvar, std: g.std };
    });
    return DiagonalGaussian.fromParts(parts.mean, parts.logvar, parts.std);
  }

  /** latents (B, L, h, w) (unscaled: divide by scalingFactor first) -> pixels (B, 3, h f, w f), about [-1, 1]. */
  decode(latents: Tensor): Tensor {
    return T.scope(() => {
      if (latents.ndim !== 4 || latents.size(1) !== this.config.latentChannels)
        throw new RangeError(`decode: latents must be (batch, ${this.config.latentChannels}, h, w), got [${latents.shape}]`);
      return this.decoder.forward(this.post_quant_conv ? this.post_quant_conv.forward(latents) : latents);
    });
  }

  /** Loads a diffusers `vae/` folder (config.json + diffusion_pytorch_model.safetensors), strictly. */
  static fromPretrained(dir: string, options: ModelOptions = {}): AutoencoderKL {
    const { json, path } = readDiffusersConfig(dir, "AutoencoderKL");
    const config = resolveAutoencoderKLConfig(json as AutoencoderKLConfigJson, path);
    // float32 by default on every device: SDXL's VAE overflows in float16 (see the file header)
    return loadDiffusersModel(dir, path, (o) => new AutoencoderKL(config, o), { dtype: options.dtype ?? "float32", device: options.device });
  }
}
