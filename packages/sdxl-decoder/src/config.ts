// Configs of the SDXL-architecture UNet and VAE: types mirroring diffusers' config.json (every
// field optional) and resolvers into configs without optionals, through tensor-cuda's shared
// ConfigReader. Every key that changes diffusers' output is either implemented or refused by name.
import * as T from "@pisces/tensor-cuda";

const L = T.CONFIG_LIMITS;

/** The fields of diffusers' UNet2DConditionModel config.json used here. */
export interface UNetConfigJson {
  /**
   * Not diffusers': when > 0, the cross-attention vectors, read as a square grid (row-major), also
   * enter as input channels (a 1x1 convolution to this many channels, nearest-upsampled to the
   * latents' size, concatenated before conv_in). A documented deviation for small decoders, which
   * ignore cross-attention-only conditioning (see the README). Default 0: SDXL's UNet.
   */
  pisces_vector_grid_channels?: number;
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  block_out_channels?: number[];
  layers_per_block?: number;
  attention_head_dim?: number | number[];
  num_attention_heads?: number | number[] | null;
  cross_attention_dim?: number;
  transformer_layers_per_block?: number | number[];
  use_linear_projection?: boolean;
  norm_num_groups?: number;
  norm_eps?: number;
  act_fn?: string;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  addition_embed_type?: string | null;
  addition_time_embed_dim?: number;
  projection_class_embeddings_input_dim?: number;
  [key: string]: unknown;
}

export interface UNetConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly blockOutChannels: readonly number[];
  /** Whether each down block (and its mirrored up block) has cross-attention. */
  readonly crossAttention: readonly boolean[];
  readonly layersPerBlock: number;
  /** Heads per block: diffusers' SDXL configs name this `attention_head_dim`. */
  readonly numHeads: readonly number[];
  readonly transformerLayers: readonly number[];
  readonly crossAttentionDim: number;
  readonly useLinearProjection: boolean;
  readonly normNumGroups: number;
  readonly normEps: number;
  readonly flipSinToCos: boolean;
  readonly freqShift: number;
  readonly textTime: { timeEmbedDim: number; inputDim: number } | null;
  /** pisces_vector_grid_channels: 0 for SDXL's UNet. */
  readonly vectorGridChannels: number;
  /** Latent side the UNet was trained at (config.json's sample_size), or null: the decoder's default image size is this x the VAE factor. */
  readonly sampleSize: number | null;
}

/** A UNet config.json is invalid or asks for what this UNet does not implement. */
export class UNetConfigError extends T.ConfigError {
  override name = "UNetConfigError";
}

/** Keys of diffusers' UNet2DConditionModel config that must keep their default here: [key, default, why]. */
const UNET_FIXED: [string, unknown, string][] = [
  ["center_input_sample", false, "input centering is not implemented"],
  ["mid_block_scale_factor", 1, "a mid-block output scale is not implemented"],
  ["timestep_post_act", null, "a post-activation of the time embedding is not implemented"],
  ["time_embedding_act_fn", null, "an activation after the time embedding is not implemented"],
  ["resnet_time_scale_shift", "default", "only the additive time embedding ('default') is implemented"],
  ["conv_in_kernel", 3, "only 3x3 input convolutions are implemented"],
  ["conv_out_kernel", 3, "only 3x3 output convolutions are implemented"],
  ["only_cross_attention", false, "attention blocks without self-attention are not implemented"],
  ["dual_cross_attention", false, "dual cross-attention is not implemented"],
  ["class_embed_type", null, "class embeddings are not implemented"],
  ["num_class_embeds", null, "class embeddings are not implemented"],
  ["encoder_hid_dim", null, "an encoder hidden projection is not implemented"],
  ["encoder_hid_dim_type", null, "an encoder hidden projection is not implemented"],
  ["time_embedding_type", "positional", "only positional time embeddings are implemented"],
  ["time_embedding_dim", null, "only the default time embedding width (4 x block_out_channels[0]) is implemented"],
  ["time_cond_proj_dim", null, "time conditioning projections are not implemented"],
  ["attention_type", "default", "only default attention is implemented"],
  ["reverse_transformer_layers_per_block", null, "separate up-block transformer depths are not implemented"],
  ["cross_attention_norm", null, "cross-attention normalisation is not implemented"],
  ["resnet_skip_time_act", false, "resnet_skip_time_act is not implemented"],
  ["resnet_out_scale_factor", 1, "a resnet output scale is not implemented"],
  ["class_embeddings_concat", false, "class embeddings are not implemented"],
  ["mid_block_only_cross_attention", null, "mid_block_only_cross_attention is not implemented"],
  ["upcast_attention", false, "attention upcasting is not implemented"],
  ["downsample_padding", 1, "only padding 1 in the downsampling convolutions is implemented"],
  ["addition_embed_type_num_heads", 64, "only used by text_image addition embeddings, which are not implemented"],
];

/** Throws every problem found, or the keys nobody read: a diffusers key we do not know may change the output. */
function finishStrict(r: T.ConfigReader, ErrorClass: new (problems: string[], where: string) => Error, model: string): void {
  if (r.problems.length) throw new ErrorClass(r.problems, r.where);
  const unknown = r.unreadKeys();
  if (unknown.length) throw new ErrorClass([`unknown keys ${unknown.join(", ")}: this ${model} cannot tell whether they change the output`], r.where);
}

function fixedKeys(r: T.ConfigReader, fixed: [string, unknown, string][]): void {
  for (const [key, dflt, why] of fixed) r.expect(key, dflt, why);
}

export function resolveUNetConfig(json: UNetConfigJson, where = "UNet config"): UNetConfig {
  const r = new T.ConfigReader(json, where);
  r.ignore(...T.BOOKKEEPING_KEYS);
  fixedKeys(r, UNET_FIXED);
  const blocks = r.intList("block_out_channels", [320, 640, 1280, 1280], { max: L.width, maxLength: L.blocks });
  const n = blocks.length;
  const down = r.stringList(
    "down_block_types",
    ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    ["CrossAttnDownBlock2D", "DownBlock2D"],
  );
  const up = r.stringList(
    "up_block_types",
    ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    ["CrossAttnUpBlock2D", "UpBlock2D"],
  );
  if (down.length !== n || up.length !== n) r.fail("down_block_types, up_block_types and block_out_channels must have the same length");
  const crossAttention = down.map((t) => t === "CrossAttnDownBlock2D");
  up.forEach((t, i) => {
    const mirrored = crossAttention[n - 1 - i];
    if (mirrored !== undefined && t !== (mirrored ? "CrossAttnUpBlock2D" : "UpBlock2D"))
      r.fail(`up block ${i} is '${t}' but mirrors a ${mirrored ? "cross-attention" : "plain"} down block`);
  });
  if (r.has("mid_block_type") && r.raw("mid_block_type") === null) r.fail("mid_block_type = null (a UNet without a mid block) is not supported");
  else r.string("mid_block_type", "UNetMidBlock2DCrossAttn", ["UNetMidBlock2DCrossAttn"]);
  // diffusers' SDXL configs put the number of heads in attention_head_dim (a known naming quirk)
  const headsKey = r.has("num_attention_heads") && r.raw("num_attention_heads") !== null ? "num_attention_heads" : "attention_head_dim";
  const numHeads = r.intList(headsKey, 8, { max: L.heads, length: n, broadcast: true });
  const transformerLayers = r.intList("transformer_layers_per_block", 1, { max: L.layersPerBlock, length: n, broadcast: true });
  const groups = r.int("norm_num_groups", 32, { max: L.channels });
  if (blocks.some((c) => c % groups)) r.fail(`block_out_channels must be divisible by norm_num_groups (${groups})`);
  r.string("act_fn", "silu", ["silu"]);
  const addition = r.raw("addition_embed_type") ?? null;
  if (addition !== null && addition !== "text_time") r.fail(`addition_embed_type = ${JSON.stringify(addition)} is not supported (text_time or none)`);
  const config: UNetConfig = {
    inChannels: r.int("in_channels", 4, { max: L.channels }),
    outChannels: r.int("out_channels", 4, { max: L.channels }),
    blockOutChannels: blocks,
    crossAttention,
    layersPerBlock: r.int("layers_per_block", 2, { max: L.layersPerBlock }),
    numHeads,
    transformerLayers,
    crossAttentionDim: r.int("cross_attention_dim", 1280, { max: L.width }),
    useLinearProjection: r.bool("use_linear_projection", false),
    normNumGroups: groups,
    normEps: r.number("norm_eps", 1e-5, { gt: 0, max: 1 }),
    flipSinToCos: r.bool("flip_sin_to_cos", true),
    freqShift: r.number("freq_shift", 0, { min: -1e6, max: 1e6 }),
    textTime:
      addition === "text_time"
        ? {
            timeEmbedDim: r.int("addition_time_embed_dim", 256, { max: L.width }),
            inputDim: r.int("projection_class_embeddings_input_dim", 2816, { max: 16 * L.width }),
          }
        : null,
    vectorGridChannels: r.int("pisces_vector_grid_channels", 0, { min: 0, max: L.width }),
    sampleSize: r.has("sample_size") && r.raw("sample_size") !== null ? r.int("sample_size", 128, { max: L.imageSize }) : null,
  };
  if (config.sampleSize === null) r.ignore("sample_size");
  if (addition !== "text_time") r.ignore("addition_time_embed_dim", "projection_class_embeddings_input_dim");
  else if (config.textTime && config.textTime.inputDim <= 6 * config.textTime.timeEmbedDim)
    r.fail(
      `projection_class_embeddings_input_dim (${config.textTime.inputDim}) must exceed 6 x addition_time_embed_dim (${6 * config.textTime.timeEmbedDim}): the rest is the pooled embedding's width`,
    );
  finishStrict(r, UNetConfigError, "UNet");
  return config;
}

/** stabilityai/stable-diffusion-xl-base-1.0 unet/config.json. */
export function sdxlBaseUNet(): UNetConfigJson {
  return {
    in_channels: 4,
    out_channels: 4,
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    block_out_channels: [320, 640, 1280],
    layers_per_block: 2,
    attention_head_dim: [5, 10, 20],
    cross_attention_dim: 2048,
    transformer_layers_per_block: [1, 2, 10],
    use_linear_projection: true,
    addition_embed_type: "text_time",
    addition_time_embed_dim: 256,
    projection_class_embeddings_input_dim: 2816,
    flip_sin_to_cos: true,
    freq_shift: 0,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    act_fn: "silu",
  };
}

/** The fields of diffusers' AutoencoderKL config.json used here. */
export interface AutoencoderKLConfigJson {
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  block_out_channels?: number[];
  layers_per_block?: number;
  act_fn?: string;
  latent_channels?: number;
  norm_num_groups?: number;
  scaling_factor?: number;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  mid_block_add_attention?: boolean;
  [key: string]: unknown;
}

export interface AutoencoderKLConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly latentChannels: number;
  readonly normNumGroups: number;
  readonly scalingFactor: number;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
  readonly midBlockAddAttention: boolean;
}

/** A VAE config.json is invalid or asks for what this VAE does not implement. */
export class VaeConfigError extends T.ConfigError {
  override name = "VaeConfigError";
}

export function resolveAutoencoderKLConfig(json: AutoencoderKLConfigJson, where = "AutoencoderKL config"): AutoencoderKLConfig {
  const r = new T.ConfigReader(json, where);
  r.ignore(...T.BOOKKEEPING_KEYS, "sample_size", "force_upcast", "shift_factor", "latents_mean", "latents_std");
  r.expect("shift_factor", null, "a latent shift is not implemented");
  r.string("act_fn", "silu", ["silu"]);
  const blocks = r.intList("block_out_channels", [64], { max: L.width, maxLength: L.blocks });
  const down = r.stringList(
    "down_block_types",
    blocks.map(() => "DownEncoderBlock2D" as const),
    ["DownEncoderBlock2D"],
  );
  const up = r.stringList(
    "up_block_types",
    blocks.map(() => "UpDecoderBlock2D" as const),
    ["UpDecoderBlock2D"],
  );
  if (down.length !== blocks.length || up.length !== blocks.length) r.fail("down_block_types, up_block_types and block_out_channels differ in length");
  const groups = r.int("norm_num_groups", 32, { max: L.channels });
  if (blocks.some((c) => c % groups !== 0)) r.fail(`every block_out_channels entry must be divisible by norm_num_groups (${groups})`);
  const config: AutoencoderKLConfig = {
    inChannels: r.int("in_channels", 3, { max: L.channels }),
    outChannels: r.int("out_channels", 3, { max: L.channels }),
    blockOutChannels: blocks,
    layersPerBlock: r.int("layers_per_block", 1, { max: L.layersPerBlock }),
    latentChannels: r.int("latent_channels", 4, { max: L.channels }),
    normNumGroups: groups,
    scalingFactor: r.number("scaling_factor", 0.18215, { gt: 0 }),
    useQuantConv: r.bool("use_quant_conv", true),
    usePostQuantConv: r.bool("use_post_quant_conv", true),
    midBlockAddAttention: r.bool("mid_block_add_attention", true),
  };
  finishStrict(r, VaeConfigError, "VAE");
  return config;
}

/** stabilityai/stable-diffusion-xl-base-1.0 vae/config.json. */
export function sdxlVae(): AutoencoderKLConfigJson {
  return {
    in_channels: 3,
    out_channels: 3,
    down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    block_out_channels: [128, 256, 512, 512],
    layers_per_block: 2,
    act_fn: "silu",
    latent_channels: 4,
    norm_num_groups: 32,
    scaling_factor: 0.13025,
  };
}
