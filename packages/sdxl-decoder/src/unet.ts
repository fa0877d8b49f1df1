// The SDXL UNet (Podell et al. 2023), written as a readable model rather than a port of diffusers'
// UNet2DConditionModel: sinusoidal time embedding plus the "text_time" addition embedding (pooled
// vector + size/crop time ids), down blocks of ResNets and cross-attention transformers, a mid
// block, up blocks fed by skip connections. Module paths equal diffusers' checkpoint keys
// (`down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight`).
import * as T from "@pisces/tensor-cuda";
import { resolveUNetConfig, type UNetConfig, type UNetConfigJson } from "./config.js";
import { loadDiffusersModel, readDiffusersConfig } from "./weights.js";

type Tensor = T.Tensor;
const { Module, ModuleList, Linear, GroupNorm, Conv2d, LayerNorm } = T.nn;

export interface ModelOptions {
  dtype?: T.DType;
  device?: T.Device;
}

// ----- config ---------------------------------------------------------------------------------

// ----- embeddings -----------------------------------------------------------------------------

/** Sinusoidal embedding of (B) timesteps -> (B, dim), as diffusers' get_timestep_embedding. */
export function timestepEmbedding(timesteps: Tensor, dim: number, flipSinToCos: boolean, freqShift: number): Tensor {
  return T.scope(() => {
    const half = Math.floor(dim / 2);
    const exponent = T.arange(0, half, { dtype: "float32", device: timesteps.device })
      .mul(-Math.log(10000))
      .div(half - freqShift);
    const emb = timesteps.to("float32").unsqueeze(1).mul(exponent.exp().unsqueeze(0)); // (B, half)
    const parts = flipSinToCos ? [emb.cos(), emb.sin()] : [emb.sin(), emb.cos()];
    const out = T.cat(parts, -1);
    return dim % 2 ? T.pad(out, [0, 1]) : out;
  });
}

export class TimestepEmbedding extends Module {
  linear_1: T.nn.Linear;
  linear_2: T.nn.Linear;
  constructor(inDim: number, outDim: number, options: ModelOptions = {}) {
    super();
    this.linear_1 = new Linear(inDim, outDim, options);
    this.linear_2 = new Linear(outDim, outDim, options);
  }
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(T.silu(this.linear_1.forward(x)));
  }
}

// ----- building blocks --------------------------------------------------------------------------

export class ResnetBlock2D extends Module {
  norm1: T.nn.GroupNorm;
  conv1: T.nn.Conv2d;
  time_emb_proj: T.nn.Linear;
  norm2: T.nn.GroupNorm;
  conv2: T.nn.Conv2d;
  conv_shortcut: T.nn.Conv2d | null;
  constructor(inC: number, outC: number, tembC: number, c: UNetConfig, options: ModelOptions = {}) {
    super();
    this.norm1 = new GroupNorm(c.normNumGroups, inC, c.normEps, options);
    this.conv1 = new Conv2d(inC, outC, 3, { ...options, padding: 1 });
    this.time_emb_proj = new Linear(tembC, outC, options);
    this.norm2 = new GroupNorm(c.normNumGroups, outC, c.normEps, options);
    this.conv2 = new Conv2d(outC, outC, 3, { ...options, padding: 1 });
    this.conv_shortcut = inC !== outC ? new Conv2d(inC, outC, 1, options) : null;
  }
  /** x (B, C, H, W), temb (B, tembC). */
  forward(x: Tensor, temb: Tensor): Tensor {
    let h = this.conv1.forward(T.silu(this.norm1.forward(x)));
    h = h.add(this.time_emb_proj.forward(T.silu(temb)).unsqueeze(-1).unsqueeze(-1));
    h = this.conv2.forward(T.silu(this.norm2.forward(h)));
    return (this.conv_shortcut ? this.conv_shortcut.forward(x) : x).add(h);
  }
}

export class Attention extends Module {
  to_q: T.nn.Linear;
  to_k: T.nn.Linear;
  to_v: T.nn.Linear;
  to_out: T.nn.ModuleList<T.nn.Linear>;
  constructor(
    dim: number,
    contextDim: number,
    readonly heads: number,
    options: ModelOptions = {},
  ) {
    super();
    this.to_q = new Linear(dim, dim, { ...options, bias: false });
    this.to_k = new Linear(contextDim, dim, { ...options, bias: false });
    this.to_v = new Linear(contextDim, dim, { ...options, bias: false });
    this.to_out = new ModuleList([new Linear(dim, dim, options)]);
  }
  /** x (B, N, C) attends over context (B, M, contextDim) (itself when null). */
  forward(x: Tensor, context: Tensor | null = null): Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const ctx = context ?? x;
    const hs = C / this.heads;
    const heads = (t: Tensor) => t.view([B, t.size(1), this.heads, hs]).transpose(1, 2); // (B, h, L, hs)
    const y = T.scaledDotProductAttention(heads(this.to_q.forward(x)), heads(this.to_k.forward(ctx)), heads(this.to_v.forward(ctx))); // (B, h, N, hs)
    return this.to_out.at(0).forward(y.transpose(1, 2).reshape([B, N, C]));
  }
}

/** x * gelu(gate), both halves of one projection to 2 x inner. */
export class GEGLU extends Module {
  proj: T.nn.Linear;
  constructor(dim: number, inner: number, options: ModelOptions = {}) {
    super();
    this.proj = new Linear(dim, inner * 2, options);
  }
  forward(x: Tensor): Tensor {
    const [h, gate] = this.proj.forward(x).chunk(2, -1) as [Tensor, Tensor];
    return h.mul(T.gelu(gate));
  }
}

/** GEGLU feed-forward, inner width 4C: keys ff.net.0.proj and ff.net.2 (net.1 is a parameter-free dropout). */
export class FeedForward extends Module {
  net: T.nn.ModuleList;
  constructor(dim: number, options: ModelOptions = {}) {
    super();
    this.net = new ModuleList([new GEGLU(dim, dim * 4, options), new T.nn.Dropout(0), new Linear(dim * 4, dim, options)]);
  }
  forward(x: Tensor): Tensor {
    return (this.net.at(2) as T.nn.Linear).forward((this.net.at(0) as GEGLU).forward(x));
  }
}

export class BasicTransformerBlock extends Module {
  norm1: T.nn.LayerNorm;
  attn1: Attention;
  norm2: T.nn.LayerNorm;
  attn2: Attention;
  norm3: T.nn.LayerNorm;
  ff: FeedForward;
  constructor(dim: number, contextDim: number, heads: number, options: ModelOptions = {}) {
    super();
    this.norm1 = new LayerNorm(dim, 1e-5, options);
    this.attn1 = new Attention(dim, dim, heads, options);
    this.norm2 = new LayerNorm(dim, 1e-5, options);
    this.attn2 = new Attention(dim, contextDim, heads, options);
    this.norm3 = new LayerNorm(dim, 1e-5, options);
    this.ff = new FeedForward(dim, options);
  }
  forward(x: Tensor, context: Tensor): Tensor {
    let h = x.add(this.attn1.forward(this.norm1.forward(x)));
    h = h.add(this.attn2.forward(this.norm2.forward(h), context));
    return h.add(this.ff.forward(this.norm3.forward(h)));
  }
}

/** Transformer2DModel: GroupNorm, project in, transformer blocks over the H*W tokens, project out, residual. */
export class Transformer2DModel extends Module {
  norm: T.nn.GroupNorm;
  proj_in: T.nn.Linear | T.nn.Conv2d;
  transformer_blocks: T.nn.ModuleList<BasicTransformerBlock>;
  proj_out: T.nn.Linear | T.nn.Conv2d;
  constructor(
    channels: number,
    heads: number,
    layers: number,
    readonly c: UNetConfig,
    options: ModelOptions = {},
  ) {
    super();
    this.norm = new GroupNorm(c.normNumGroups, channels, 1e-6, options);
    this.proj_in = c.useLinearProjection ? new Linear(channels, channels, options) : new Conv2d(channels, channels, 1, options);
    this.transformer_blocks = new ModuleList(Array.from({ length: layers }, () => new BasicTransformerBlock(channels, c.crossAttentionDim, heads, options)));
    this.proj_out = c.useLinearProjection ? new Linear(channels, channels, options) : new Conv2d(channels, channels, 1, options);
  }
  forward(x: Tensor, context: Tensor): Tensor {
    const [B, C, H, W] = x.shape as [number, number, number, number];
    const toTokens = (t: Tensor) => t.permute([0, 2, 3, 1]).reshape([B, H * W, C]); // (B, HW, C)
    const toGrid = (t: Tensor) => t.reshape([B, H, W, C]).permute([0, 3, 1, 2]); // (B, C, H, W)
    let h = this.norm.forward(x);
    h = this.c.useLinearProjection ? this.proj_in.forward(toTokens(h)) : toTokens(this.proj_in.forward(h));
    for (const block of this.transformer_blocks) h = block.forward(h, context);
    h = this.c.useLinearProjection ? toGrid(this.proj_out.forward(h)) : this.proj_out.forward(toGrid(h));
    return h.add(x);
  }
}

export class Downsample2D extends Module {
  conv: T.nn.Conv2d;
  constructor(channels: number, options: ModelOptions = {}) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { ...options, stride: 2, padding: 1 });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

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

/** DownBlock2D / CrossAttnDownBlock2D: resnets (each followed by a transformer when cross-attending), then a downsampler. */
export class DownBlock extends Module {
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  attentions: T.nn.ModuleList<Transformer2DModel>;
  downsamplers: T.nn.ModuleList<Downsample2D>;
  constructor(inC: number, outC: number, tembC: number, i: number, c: UNetConfig, options: ModelOptions = {}) {
    super();
    const n = c.layersPerBlock;
    this.resnets = new ModuleList(Array.from({ length: n }, (_, j) => new ResnetBlock2D(j === 0 ? inC : outC, outC, tembC, c, options)));
    this.attentions = new ModuleList(
      c.crossAttention[i] ? Array.from({ length: n }, () => new Transformer2DModel(outC, c.numHeads[i]!, c.transformerLayers[i]!, c, options)) : [],
    );
    this.downsamplers = new ModuleList(i < c.blockOutChannels.length - 1 ? [new Downsample2D(outC, options)] : []);
  }
  /** Returns the output and the skip tensors the up path will consume. */
  forward(x: Tensor, temb: Tensor, context: Tensor): [Tensor, Tensor[]] {
    const skips: Tensor[] = [];
    let h = x;
    [...this.resnets].forEach((r, j) => {
      h = r.forward(h, temb);
      if (this.attentions.length) h = this.attentions.at(j).forward(h, context);
      skips.push(h);
    });
    for (const d of this.downsamplers) {
      h = d.forward(h);
      skips.push(h);
    }
    return [h, skips];
  }
}

/** UpBlock2D / CrossAttnUpBlock2D: resnets over [h, skip] concatenations, transformers, an upsampler. */
export class UpBlock extends Module {
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  attentions: T.nn.ModuleList<Transformer2DModel>;
  upsamplers: T.nn.ModuleList<Upsample2D>;
  constructor(prevOutC: number, inC: number, outC: number, tembC: number, i: number, c: UNetConfig, options: ModelOptions = {}) {
    super();
    const n = c.layersPerBlock + 1;
    const mirror = c.blockOutChannels.length - 1 - i; // the down block this one mirrors
    this.resnets = new ModuleList(
      Array.from({ length: n }, (_, j) => {
        const skipC = j === n - 1 ? inC : outC;
        return new ResnetBlock2D((j === 0 ? prevOutC : outC) + skipC, outC, tembC, c, options);
      }),
    );
    this.attentions = new ModuleList(
      c.crossAttention[mirror]
        ? Array.from({ length: n }, () => new Transformer2DModel(outC, c.numHeads[mirror]!, c.transformerLayers[mirror]!, c, options))
        : [],
    );
    this.upsamplers = new ModuleList(i < c.blockOutChannels.length - 1 ? [new Upsample2D(outC, options)] : []);
  }
  forward(x: Tensor, skips: Tensor[], temb: Tensor, context: Tensor): Tensor {
    let h = x;
    [...this.resnets].forEach((r, j) => {
      h = r.forward(T.cat([h, skips.pop()!], 1), temb);
      if (this.attentions.length) h = this.attentions.at(j).forward(h, context);
    });
    for (const u of this.upsamplers) h = u.forward(h);
    return h;
  }
}

export class UNetMidBlock2DCrossAttn extends Module {
  resnets: T.nn.ModuleList<ResnetBlock2D>;
  attentions: T.nn.ModuleList<Transformer2DModel>;
  constructor(channels: number, tembC: number, c: UNetConfig, options: ModelOptions = {}) {
    super();
    const last = c.blockOutChannels.length - 1;
    this.resnets = new ModuleList([new ResnetBlock2D(channels, channels, tembC, c, options), new ResnetBlock2D(channels, channels, tembC, c, options)]);
    this.attentions = new ModuleList([new Transformer2DModel(channels, c.numHeads[last]!, c.transformerLayers[last]!, c, options)]);
  }
  forward(x: Tensor, temb: Tensor, context: Tensor): Tensor {
    const h = this.attentions.at(0).forward(this.resnets.at(0).forward(x, temb), context);
    return this.resnets.at(1).forward(h, temb);
  }
}

// ----- the model ----------------------------------------------------------------------------------

export interface UNetInput {
  /** Noisy latents (B, C, H, W). */
  sample: Tensor;
  /** One timestep for the batch, or one per row (B). */
  timestep: number | Tensor;
  /** Cross-attention context (B, N, crossAttentionDim): for Pisces, the gen-CLIP vectors. */
  encoderHiddenStates: Tensor;
  /** SDXL's addition embedding: pooled vector (B, P) and 6 time ids (B, 6) per image. */
  addedCondKwargs?: { textEmbeds: Tensor; timeIds: Tensor };
}

export class UNet2DConditionModel extends Module {
  /** Only with pisces_vector_grid_channels > 0: the vectors' grid -> extra input channels. */
  vector_grid_proj?: T.nn.Conv2d;
  conv_in: T.nn.Conv2d;
  time_embedding: TimestepEmbedding;
  add_embedding: TimestepEmbedding | null;
  down_blocks: T.nn.ModuleList<DownBlock>;
  mid_block: UNetMidBlock2DCrossAttn;
  up_blocks: T.nn.ModuleList<UpBlock>;
  conv_norm_out: T.nn.GroupNorm;
  conv_out: T.nn.Conv2d;

  constructor(
    readonly config: UNetConfig,
    options: ModelOptions = {},
  ) {
    super();
    const ch = config.blockOutChannels;
    const tembC = ch[0]! * 4;
    if (config.vectorGridChannels > 0) this.vector_grid_proj = new Conv2d(config.crossAttentionDim, config.vectorGridChannels, 1, options);
    this.conv_in = new Conv2d(config.inChannels + config.vectorGridChannels, ch[0]!, 3, { ...options, padding: 1 });
    this.time_embedding = new TimestepEmbedding(ch[0]!, tembC, options);
    this.add_embedding = config.textTime ? new TimestepEmbedding(config.textTime.inputDim, tembC, options) : null;
    this.down_blocks = new ModuleList(ch.map((out, i) => new DownBlock(i === 0 ? ch[0]! : ch[i - 1]!, out, tembC, i, config, options)));
    this.mid_block = new UNetMidBlock2DCrossAttn(ch[ch.length - 1]!, tembC, config, options);
    const rev = [...ch].reverse();
    this.up_blocks = new ModuleList(
      rev.map((out, i) => new UpBlock(i === 0 ? rev[0]! : rev[i - 1]!, rev[Math.min(i + 1, rev.length - 1)]!, out, tembC, i, config, options)),
    );
    this.conv_norm_out = new GroupNorm(config.normNumGroups, ch[0]!, config.normEps, options);
    this.conv_out = new Conv2d(ch[0]!, config.outChannels, 3, { ...options, padding: 1 });
  }

  /** Spatial down-sampling factor: H and W must be multiples of it. */
  get downsampleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  forward(input: UNetInput): { sample: Tensor } {
    return T.scope(() => {
      const c = this.config;
      const x = input.sample;
      const [B, C, H, W] = x.shape as [number, number, number, number];
      if (x.ndim !== 4 || C !== c.inChannels) throw new RangeError(`sample must be (batch, ${c.inChannels}, H, W), got [${x.shape}]`);
      if (H % this.downsampleFactor || W % this.downsampleFactor)
        throw new RangeError(`sample height and width must be multiples of ${this.downsampleFactor}, got ${H}x${W}`);
      const context = input.encoderHiddenStates;
      if (context.ndim !== 3 || context.size(0) !== B || context.size(2) !== c.crossAttentionDim)
        throw new RangeError(`encoderHiddenStates must be (${B}, tokens, ${c.crossAttentionDim}), got [${context.shape}]`);
      const dtype = this.conv_in.weight.dtype;
      const t = typeof input.timestep === "number" ? T.full([B], input.timestep, { dtype: "float32", device: x.device }) : input.timestep.expand([B]);
      let temb = this.time_embedding.forward(timestepEmbedding(t, c.blockOutChannels[0]!, c.flipSinToCos, c.freqShift).to(dtype));
      if (this.add_embedding && c.textTime) {
        const cond = input.addedCondKwargs;
        if (!cond) throw new TypeError("this UNet has a text_time addition embedding: pass addedCondKwargs {textEmbeds, timeIds}");
        const timeEmb = timestepEmbedding(cond.timeIds.flatten(), c.textTime.timeEmbedDim, c.flipSinToCos, c.freqShift).reshape([B, -1]);
        const addIn = T.cat([cond.textEmbeds, timeEmb.to(cond.textEmbeds.dtype)], -1);
        if (addIn.size(1) !== c.textTime.inputDim)
          throw new RangeError(
            `textEmbeds (${cond.textEmbeds.size(-1)}) + 6 time ids x ${c.textTime.timeEmbedDim} must be ${c.textTime.inputDim} wide, got ${addIn.size(1)}`,
          );
        temb = temb.add(this.add_embedding.forward(addIn.to(dtype)));
      }
      let input0 = x.to(dtype);
      if (this.vector_grid_proj) {
        // (B, n*n, D) -> (B, D, n, n) -> (B, g, n, n) -> nearest to (H, W), beside the latents
        const n = Math.round(Math.sqrt(context.size(1)));
        if (n * n !== context.size(1)) throw new RangeError(`pisces_vector_grid_channels needs a square number of vectors, got ${context.size(1)}`);
        const grid = context.to(dtype).transpose(1, 2).reshape([B, c.crossAttentionDim, n, n]);
        input0 = T.cat([input0, T.interpolate(this.vector_grid_proj.forward(grid), { size: [H, W], mode: "nearest" })], 1);
      }
      let h = this.conv_in.forward(input0);
      const skips: Tensor[] = [h];
      for (const block of this.down_blocks) {
        const [out, s] = block.forward(h, temb, context.to(dtype));
        h = out;
        skips.push(...s);
      }
      h = this.mid_block.forward(h, temb, context.to(dtype));
      for (const block of this.up_blocks) h = block.forward(h, skips, temb, context.to(dtype));
      return { sample: this.conv_out.forward(T.silu(this.conv_norm_out.forward(h))) };
    });
  }

  /** Loads a diffusers `unet/` folder (config.json + diffusion_pytorch_model.safetensors, or shards), strictly. */
  static fromPretrained(dir: string, options: ModelOptions = {}): UNet2DConditionModel {
    const { json, path } = readDiffusersConfig(dir, "UNet2DConditionModel");
    const config = resolveUNetConfig(json as UNetConfigJson, path);
    return loadDiffusersModel(dir, path, (o) => new UNet2DConditionModel(config, o), options);
  }
}
