// The starting folders of every part of the tiny shapes Pisces, from configs alone: word-level
// tokenizers over the world's vocabulary (the LLM's, gen-CLIP's text tower's) and a SentencePiece
// model for SigLIP's, the configs of each tower, the VAE, the UNet and the scheduler, and the LLM's
// seeded initial weights (the trainers start the other parts from their configs themselves).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LlamaForCausalLM, resolveLlamaConfig } from "@pisces/llama";
import { COLORS, detailedCaption, makeGenevalPrompts, NUMBER_WORDS, PLURAL, questions, Random, randomScene, SHAPES, shortCaption } from "@pisces/shapes";
import * as T from "@pisces/tensor-cuda";

export const GENERATION_PROMPT = "Please generate an image based on the following caption: {caption}";
export const CAPTIONING_PROMPT = "Please provide a detailed description of the given image.";

/** Every word the world's texts use (captions, questions, answers, GenEval prompts, the Pisces prompts). */
export function worldVocabulary(): string[] {
  const words = new Set<string>();
  const add = (text: string) => {
    for (const w of text.toLowerCase().match(/\w+|[^\w\s]/g) ?? []) words.add(w);
  };
  for (const t of [GENERATION_PROMPT.replace("{caption}", ""), CAPTIONING_PROMPT, "user assistant system"]) add(t);
  for (const w of [...SHAPES, ...COLORS, ...Object.values(PLURAL), ...NUMBER_WORDS, "yes", "no", "small", "medium", "large"]) add(w);
  for (const p of makeGenevalPrompts()) add(p.prompt);
  for (let seed = 0; seed < 3000; seed++) {
    const scene = randomScene(seed);
    const rng = new Random(seed);
    add(shortCaption(scene, rng));
    add(detailedCaption(scene));
    for (const q of questions(scene, rng, { colors: COLORS, shapes: SHAPES })) add(`${q.question} ${q.answer}`);
  }
  return [...words].sort();
}

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** A WordLevel tokenizer.json (lower-cased, split on whitespace and punctuation) with `specials` first and `template` around every text. */
function wordLevelTokenizer(specials: string[], words: string[], template: { single: string[] }): object {
  const vocab: Record<string, number> = {};
  for (const [i, s] of specials.entries()) vocab[s] = i;
  for (const w of words) vocab[w] ??= Object.keys(vocab).length;
  const templ = template.single.map((t) => (t === "$A" ? { Sequence: { id: "A", type_id: 0 } } : { SpecialToken: { id: t, type_id: 0 } }));
  const used = template.single.filter((t) => t !== "$A");
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((s, i) => special(i, s)),
    normalizer: { type: "Lowercase" },
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: templ,
      pair: [...templ, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: Object.fromEntries(used.map((t) => [t, { id: t, ids: [vocab[t]!], tokens: [t] }])),
    },
    decoder: null,
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  };
}

const LLM_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<unk>", "<pad>"];
const CHAT_TEMPLATE =
  "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

/** SentencePiece ModelProto bytes: a unigram model whose pieces are whole words (for SigLIP's tokenizer). */
export function sentencePieceModel(words: string[]): Uint8Array {
  const bytes: number[] = [];
  const varint = (out: number[], v: number) => {
    while (v > 127) {
      out.push((v & 127) | 128);
      v = Math.floor(v / 128);
    }
    out.push(v);
  };
  const field = (out: number[], num: number, wire: number) => varint(out, num * 8 + wire);
  const lengthDelimited = (out: number[], num: number, body: number[]) => {
    field(out, num, 2);
    varint(out, body.length);
    out.push(...body);
  };
  const piece = (text: string, score: number, type: number) => {
    const p: number[] = [];
    lengthDelimited(p, 1, [...new TextEncoder().encode(text)]);
    field(p, 2, 5);
    const f = new Uint8Array(new Float32Array([score]).buffer);
    p.push(...f);
    field(p, 3, 0);
    varint(p, type);
    lengthDelimited(bytes, 1, p);
  };
  // SigLIP's layout: <pad> 0, </s> 1, <unk> 2 (types: 3 control, 2 unknown, 1 normal)
  piece("<pad>", 0, 3);
  piece("</s>", 0, 3);
  piece("<unk>", 0, 2);
  for (const w of words.filter((w) => /^\w+$/.test(w))) piece(`\u2581${w}`, -1, 1);
  const trainer: number[] = [];
  field(trainer, 3, 0);
  varint(trainer, 1); // unigram
  field(trainer, 40, 0);
  varint(trainer, 2); // unk id
  lengthDelimited(bytes, 2, trainer);
  const normalizer: number[] = [];
  field(normalizer, 3, 0);
  varint(normalizer, 1); // add dummy prefix
  field(normalizer, 4, 0);
  varint(normalizer, 1); // remove extra whitespace
  field(normalizer, 5, 0);
  varint(normalizer, 1); // escape whitespace
  lengthDelimited(bytes, 3, normalizer);
  return new Uint8Array(bytes);
}

const json = (path: string, value: unknown) => writeFileSync(path, `${JSON.stringify(value, null, 1)}\n`);

/** Sizes of the tiny model (64 px images, an 8 x 8 gen-CLIP grid = 64 generation vectors). */
export const SIZES = { width: 64, llmWidth: 128, llmLayers: 4, towerLayers: 4, textLayers: 2, image: 64, patch: 8 } as const;

/** Writes parts/{llm, gen_clip, siglip, vae, decoder} under `dir`; returns their paths. */
export function writeParts(dir: string, seed = 0): Record<"llm" | "genClip" | "siglip" | "vae" | "decoder", string> {
  const words = worldVocabulary();
  const S = SIZES;
  const paths = { llm: join(dir, "llm"), genClip: join(dir, "gen_clip"), siglip: join(dir, "siglip"), vae: join(dir, "vae"), decoder: join(dir, "decoder") };
  for (const p of Object.values(paths)) mkdirSync(p, { recursive: true });

  // LLM: Llama shape, seeded weights
  const llmTokenizer = wordLevelTokenizer(LLM_SPECIALS, words, { single: ["<|begin_of_text|>", "$A"] });
  const vocabSize = Object.keys((llmTokenizer as { model: { vocab: object } }).model.vocab).length;
  json(join(paths.llm, "tokenizer.json"), llmTokenizer);
  json(join(paths.llm, "tokenizer_config.json"), {
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    pad_token: "<pad>",
    unk_token: "<unk>",
    model_max_length: 512,
  });
  writeFileSync(join(paths.llm, "chat_template.jinja"), CHAT_TEMPLATE);
  const llmConfig = {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: vocabSize,
    hidden_size: S.llmWidth,
    intermediate_size: 2 * S.llmWidth,
    num_hidden_layers: S.llmLayers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 4,
    pad_token_id: 6,
    hidden_act: "silu",
  };
  json(join(paths.llm, "config.json"), llmConfig);
  T.manualSeed(seed);
  const llm = new LlamaForCausalLM(resolveLlamaConfig(llmConfig).config);
  T.noGrad(() => {
    for (const [, p] of llm.namedParameters()) if (p.ndim >= 2) p.normal_(0, 0.02);
  });
  T.saveSafetensors(join(paths.llm, "model.safetensors"), llm.stateDict(), { format: "pt" });
  llm.dispose();

  // gen-CLIP: a whole CLIPModel (text tower for its contrastive term)
  const clipWords = words;
  json(
    join(paths.genClip, "tokenizer.json"),
    wordLevelTokenizer(["<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"], clipWords, { single: ["<|startoftext|>", "$A", "<|endoftext|>"] }),
  );
  json(join(paths.genClip, "tokenizer_config.json"), {
    pad_token: "<pad>",
    unk_token: "<unk>",
    bos_token: "<|startoftext|>",
    eos_token: "<|endoftext|>",
    model_max_length: 48,
  });
  json(join(paths.genClip, "config.json"), {
    model_type: "clip",
    architectures: ["CLIPModel"],
    projection_dim: S.width,
    logit_scale_init_value: 2.6592,
    text_config: {
      vocab_size: 4 + clipWords.length,
      hidden_size: S.width,
      intermediate_size: 2 * S.width,
      num_hidden_layers: S.textLayers,
      num_attention_heads: 4,
      max_position_embeddings: 48,
      pad_token_id: 0,
      bos_token_id: 2,
      eos_token_id: 3,
    },
    vision_config: {
      hidden_size: S.width,
      intermediate_size: 2 * S.width,
      num_hidden_layers: S.towerLayers,
      num_attention_heads: 4,
      image_size: S.image,
      patch_size: S.patch,
      hidden_act: "gelu",
    },
  });
  json(join(paths.genClip, "preprocessor_config.json"), {
    image_processor_type: "CLIPImageProcessor",
    do_resize: true,
    size: { shortest_edge: S.image },
    do_center_crop: true,
    crop_size: { height: S.image, width: S.image },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    resample: 3,
    do_convert_rgb: true,
  });

  // SigLIP: SiglipModel with a word-piece SentencePiece tokenizer
  writeFileSync(join(paths.siglip, "spiece.model"), sentencePieceModel(words));
  json(join(paths.siglip, "tokenizer_config.json"), { model_max_length: 48, pad_token: "</s>", eos_token: "</s>", unk_token: "<unk>", do_lower_case: true });
  json(join(paths.siglip, "config.json"), {
    model_type: "siglip",
    architectures: ["SiglipModel"],
    text_config: {
      vocab_size: 3 + words.filter((w) => /^\w+$/.test(w)).length,
      hidden_size: S.width,
      intermediate_size: 2 * S.width,
      num_hidden_layers: S.textLayers,
      num_attention_heads: 4,
      max_position_embeddings: 48,
      pad_token_id: 1,
      eos_token_id: 1,
    },
    vision_config: {
      hidden_size: S.width,
      intermediate_size: 2 * S.width,
      num_hidden_layers: S.towerLayers,
      num_attention_heads: 4,
      image_size: S.image,
      patch_size: S.patch,
    },
  });
  json(join(paths.siglip, "preprocessor_config.json"), {
    image_processor_type: "SiglipImageProcessor",
    do_resize: true,
    size: { height: S.image, width: S.image },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    resample: 3,
    do_convert_rgb: true,
  });

  // VAE: 64 px -> 16 x 16 x 4 latents
  json(join(paths.vae, "config.json"), {
    _class_name: "AutoencoderKL",
    in_channels: 3,
    out_channels: 3,
    latent_channels: 4,
    block_out_channels: [32, 64, 64],
    down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    layers_per_block: 1,
    norm_num_groups: 16,
    act_fn: "silu",
    sample_size: S.image,
    scaling_factor: 0.5,
    mid_block_add_attention: true,
  });

  // decoder: an SDXL-shaped UNet conditioned on the 64 gen-CLIP vectors (cross-attention, their mean in the pooled slot, and their grid as input channels)
  for (const part of ["unet", "scheduler"]) mkdirSync(join(paths.decoder, part), { recursive: true });
  json(join(paths.decoder, "model_index.json"), {
    _class_name: "PiscesDecoderPipeline",
    scheduler: ["diffusers", "EulerDiscreteScheduler"],
    unet: ["diffusers", "UNet2DConditionModel"],
    vae: ["diffusers", "AutoencoderKL"],
  });
  json(join(paths.decoder, "unet", "config.json"), {
    _class_name: "UNet2DConditionModel",
    in_channels: 4,
    out_channels: 4,
    sample_size: 16,
    block_out_channels: [64, 128],
    down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"],
    mid_block_type: "UNetMidBlock2DCrossAttn",
    layers_per_block: 1,
    transformer_layers_per_block: [1, 1],
    attention_head_dim: [4, 8],
    cross_attention_dim: S.width,
    // the vectors' 8 x 8 grid also as input channels: cross-attention alone was ignored by a decoder this small
    pisces_vector_grid_channels: 8,
    norm_num_groups: 16,
    use_linear_projection: true,
    addition_embed_type: "text_time",
    addition_time_embed_dim: 8,
    projection_class_embeddings_input_dim: S.width + 6 * 8,
    flip_sin_to_cos: true,
    freq_shift: 0,
    act_fn: "silu",
  });
  json(join(paths.decoder, "scheduler", "scheduler_config.json"), {
    _class_name: "EulerDiscreteScheduler",
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: "scaled_linear",
    prediction_type: "epsilon",
    timestep_spacing: "leading",
    steps_offset: 1,
  });
  return paths;
}
