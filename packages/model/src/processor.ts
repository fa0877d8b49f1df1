// PiscesProcessor: turns {task, image, caption | messages} records into the batches
// PiscesForConditionalGeneration.forward reads: token ids with the image vectors' places marked,
// labels (-100 where nothing is predicted), attention masks, and pixel values for both encoders.
// Sequences (paper, section 3):
//   captioning  [BOS] [IMG] <n SigLIP vectors> [/IMG] Please provide a detailed description of the given image. <caption> [EOS]
//   generation  [BOS] Please generate an image based on the following caption: <caption> [IMG] <m gen-CLIP vectors> [/IMG]
//   chat        the LLM's chat template, with [IMG] <n vectors> [/IMG] where a user turn places an image
import { join } from "node:path";
import { ClipImageProcessor } from "@pisces/gen-clip";
import type { ImageInput, LoadOptions } from "@pisces/image";
import { AutoTokenizer } from "@pisces/llama";
import { SiglipImageProcessor } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";
import { IMAGE_END_TOKEN, IMAGE_START_TOKEN, type PiscesConfig, type PiscesConfigJson, resolvePiscesConfig } from "./config.js";

/** A part of a chat message: text, or the place of one image. */
export type MessagePart = { type: "text"; text: string } | { type: "image"; image?: ImageInput };

export interface PiscesMessage {
  role: string;
  /** Text, or parts in order; image parts take their image from the part or, in order, from the record's `images`. */
  content: string | readonly MessagePart[];
}

export type PiscesRecord =
  | { task: "captioning"; image: ImageInput; caption: string }
  /** `image` is the training target; leave it out to build an inference prompt. */
  | { task: "generation"; caption: string; image?: ImageInput }
  | { task: "chat"; messages: readonly PiscesMessage[]; images?: readonly ImageInput[] };

/** A batch for forward(): (B, T) tensors and the images of each path in sequence order. */
export interface PiscesBatch {
  inputIds: T.Tensor;
  attentionMask: T.Tensor;
  labels: T.Tensor;
  /** (B, T) 1 where an understanding (SigLIP) vector goes. */
  understandingMask: T.Tensor;
  /** (B, T) 1 where a generation (gen-CLIP) vector goes. */
  generationMask: T.Tensor;
  /** (Nu, 3, H, W) for the understanding images, in the order their places appear (row by row). */
  understandingPixelValues: T.Tensor | null;
  /** (Ng, 3, H, W) for the generation targets, in row order. */
  generationPixelValues: T.Tensor | null;
}

export interface EncodedRecord {
  inputIds: number[];
  labels: number[];
  understanding: number[];
  generation: number[];
  understandingImages: ImageInput[];
  generationImages: ImageInput[];
}

export class PiscesProcessorError extends Error {
  override name = "PiscesProcessorError";
}

export interface ProcessorOptions extends LoadOptions {
  /** "right" (training, the default) or "left" (generation: every row ends at the same place). */
  padding?: "left" | "right";
  device?: T.Device;
}

export class PiscesProcessor {
  readonly imageStartTokenId: number;
  readonly imageEndTokenId: number;
  readonly eosTokenId: number;

  constructor(
    readonly tokenizer: AutoTokenizer,
    readonly siglipProcessor: SiglipImageProcessor,
    readonly genClipProcessor: ClipImageProcessor,
    readonly config: PiscesConfig,
    /** SigLIP vectors per image: (image_size / patch_size)^2. */
    readonly numUnderstandingTokens: number,
    /** gen-CLIP vectors per image after pooling. */
    readonly numGenerationVectors: number,
  ) {
    const start = tokenizer.tokenToId(IMAGE_START_TOKEN);
    const end = tokenizer.tokenToId(IMAGE_END_TOKEN);
    if (start !== config.imageStartTokenId || end !== config.imageEndTokenId)
      throw new PiscesProcessorError(
        `the tokenizer maps ${IMAGE_START_TOKEN} / ${IMAGE_END_TOKEN} to ${start ?? "nothing"} / ${end ?? "nothing"}, but config.json says ` +
          `image_start_token_id ${config.imageStartTokenId} / image_end_token_id ${config.imageEndTokenId}: add them as special tokens (addSpecialTokens) and update config.json`,
      );
    this.imageStartTokenId = start;
    this.imageEndTokenId = end;
    const eos = config.textConfig.eosTokenIds[0];
    if (eos === undefined) throw new PiscesProcessorError("text_config has no eos_token_id: captions need one to end");
    this.eosTokenId = eos;
  }

  /**
   * The processor of a Pisces folder: tokenizer.json (+ tokenizer_config.json) at the top,
   * preprocessor_config.json in siglip/ and gen_clip/. The vector counts come from the encoders' configs.
   */
  static fromPretrained(dir: string): PiscesProcessor {
    const { json, path } = T.readConfigJson(dir, "Pisces model");
    const { config } = resolvePiscesConfig(json as PiscesConfigJson, path);
    const grid = (sub: string) => {
      const r = T.configReader(join(dir, sub), sub);
      r.ignore(...r.unreadKeys());
      const vision = r.object("vision_config") ?? r;
      const size = vision.int("image_size", 224, { max: T.CONFIG_LIMITS.imageSize });
      const patch = vision.int("patch_size", 16, { max: T.CONFIG_LIMITS.imageSize });
      if (r.problems.length) throw new T.ConfigError(r.problems, join(dir, sub, "config.json"));
      return size / patch;
    };
    const k = config.generationPoolKernel;
    return new PiscesProcessor(
      AutoTokenizer.fromPretrained(dir),
      SiglipImageProcessor.fromPretrained(join(dir, "siglip")),
      ClipImageProcessor.fromPretrained(join(dir, "gen_clip")),
      config,
      grid("siglip") ** 2,
      Math.floor(grid("gen_clip") / k) ** 2,
    );
  }

  private encode(text: string, special: boolean): number[] {
    return this.tokenizer.encode(text, { addSpecialTokens: special });
  }

  /** Inserts `n` placeholders after every [IMG] that is directly followed by [/IMG]; returns the ids and the marked places. */
  private expandImages(ids: readonly number[], labels: readonly number[]): { ids: number[]; labels: number[]; mask: number[]; count: number } {
    const out: number[] = [];
    const outLabels: number[] = [];
    const mask: number[] = [];
    let count = 0;
    for (let i = 0; i < ids.length; i++) {
      out.push(ids[i]!);
      outLabels.push(labels[i]!);
      mask.push(0);
      if (ids[i] === this.imageStartTokenId && ids[i + 1] === this.imageEndTokenId) {
        for (let j = 0; j < this.numUnderstandingTokens; j++) {
          out.push(this.imageStartTokenId);
          outLabels.push(-100);
          mask.push(1);
        }
        count++;
      }
    }
    return { ids: out, labels: outLabels, mask, count };
  }

  /** [BOS] [IMG] <n> [/IMG] <captioning prompt>: the prompt a caption follows. */
  captioningPrompt(): { inputIds: number[]; understanding: number[] } {
    return this.imagePrompt(this.config.captioningPrompt);
  }

  /** [BOS] [IMG] <n> [/IMG] <text>, without a chat template (the paper's captioning layout with any text). */
  imagePrompt(text: string): { inputIds: number[]; understanding: number[] } {
    const ids = this.encode(IMAGE_START_TOKEN + IMAGE_END_TOKEN + this.checkText(text, 0), true);
    const e = this.expandImages(
      ids,
      ids.map(() => -100),
    );
    return { inputIds: e.ids, understanding: e.mask };
  }

  /** [BOS] <generation prompt with the caption> [IMG]: the prompt the vectors follow. */
  generationPrompt(caption: string): number[] {
    if (typeof caption !== "string") throw new PiscesProcessorError(`a caption must be a string, got ${typeof caption}`);
    if (caption.includes(IMAGE_START_TOKEN) || caption.includes(IMAGE_END_TOKEN))
      throw new PiscesProcessorError(`a caption must not contain ${IMAGE_START_TOKEN} or ${IMAGE_END_TOKEN}`);
    return this.encode(this.config.generationPrompt.replaceAll("{caption}", caption) + IMAGE_START_TOKEN, true);
  }

  /**
   * A chat rendered with the LLM's template; image parts become [IMG] <n> [/IMG]. With
   * `addGenerationPrompt` the assistant's turn is opened (inference). Labels cover the assistant turns.
   */
  chatPrompt(
    messages: readonly PiscesMessage[],
    options: { addGenerationPrompt?: boolean } = {},
  ): { inputIds: number[]; labels: number[]; understanding: number[]; images: number } {
    if (!Array.isArray(messages) || messages.length === 0) throw new PiscesProcessorError("a chat needs at least one message");
    const flat = messages.map((m, i) => {
      if (!m || typeof m.role !== "string") throw new PiscesProcessorError(`message ${i} has no role`);
      if (typeof m.content === "string") return { role: m.role, content: this.checkText(m.content, i) };
      if (!Array.isArray(m.content)) throw new PiscesProcessorError(`message ${i}: content must be a string or a list of parts`);
      const text = m.content
        .map((p: MessagePart) => {
          if (p?.type === "image") return IMAGE_START_TOKEN + IMAGE_END_TOKEN;
          if (p?.type === "text" && typeof p.text === "string") return this.checkText(p.text, i);
          throw new PiscesProcessorError(`message ${i}: a part must be {type: "text", text} or {type: "image"}`);
        })
        .join("");
      return { role: m.role, content: text };
    });
    const render = (upTo: number, generationPrompt: boolean) =>
      this.tokenizer.applyChatTemplate(flat.slice(0, upTo), { tokenize: true, addGenerationPrompt: generationPrompt });
    const ids = render(flat.length, options.addGenerationPrompt ?? false);
    const labels = ids.map(() => -100);
    for (let i = 0; i < flat.length; i++) {
      if (flat[i]!.role !== "assistant") continue;
      const before = render(i, true);
      const through = render(i + 1, false);
      const prefixOk = (a: number[], b: number[]) => a.length <= b.length && a.every((t, j) => b[j] === t);
      if (!prefixOk(before, through) || !prefixOk(through, ids))
        throw new PiscesProcessorError("the chat template does not render conversations prefix by prefix, so the assistant turns cannot be labelled");
      for (let j = before.length; j < through.length; j++) labels[j] = ids[j]!;
    }
    const e = this.expandImages(ids, labels);
    return { inputIds: e.ids, labels: e.labels, understanding: e.mask, images: e.count };
  }

  private checkText(text: string, i: number): string {
    if (typeof text !== "string") throw new PiscesProcessorError(`message ${i}: text must be a string`);
    if (text.includes(IMAGE_START_TOKEN) || text.includes(IMAGE_END_TOKEN))
      throw new PiscesProcessorError(`message ${i}: text must not contain ${IMAGE_START_TOKEN} or ${IMAGE_END_TOKEN}; give images as {type: "image"} parts`);
    return text;
  }

  /** One record's ids, labels and image places (no padding, no pixels). */
  encodeRecord(record: PiscesRecord, index = 0): EncodedRecord {
    const where = `record ${index}`;
    if (!record || typeof record !== "object") throw new PiscesProcessorError(`${where} must be an object with a task`);
    const maxLength = this.config.textConfig.maxPositionEmbeddings;
    let out: EncodedRecord;
    switch (record.task) {
      case "captioning": {
        if (record.image === undefined || record.image === null) throw new PiscesProcessorError(`${where}: a captioning record needs an image`);
        if (typeof record.caption !== "string" || record.caption.trim() === "") throw new PiscesProcessorError(`${where}: the caption is empty`);
        const prompt = this.captioningPrompt();
        const caption = [...this.encode(` ${record.caption}`, false), this.eosTokenId];
        out = {
          inputIds: [...prompt.inputIds, ...caption],
          labels: [...prompt.inputIds.map(() => -100), ...caption],
          understanding: [...prompt.understanding, ...caption.map(() => 0)],
          generation: new Array(prompt.inputIds.length + caption.length).fill(0),
          understandingImages: [record.image],
          generationImages: [],
        };
        break;
      }
      case "generation": {
        if (typeof record.caption !== "string") throw new PiscesProcessorError(`${where}: a generation record needs a caption string`);
        const prompt = this.generationPrompt(record.caption);
        const m = this.numGenerationVectors;
        const inputIds = [...prompt, ...new Array(m).fill(this.imageStartTokenId), this.imageEndTokenId];
        const labels = inputIds.map(() => -100);
        labels[labels.length - 1] = this.imageEndTokenId; // the last vector's hidden state predicts [/IMG]
        if (this.config.generationCaptionLoss) {
          // the caption tokens (after the fixed prompt text) are predicted too
          const fixed = this.encode(this.config.generationPrompt.split("{caption}")[0]!, true).length;
          for (let j = fixed; j < prompt.length; j++) labels[j] = prompt[j]!;
        }
        out = {
          inputIds,
          labels,
          understanding: new Array(inputIds.length).fill(0),
          generation: [...prompt.map(() => 0), ...new Array(m).fill(1), 0],
          understandingImages: [],
          generationImages: record.image === undefined ? [] : [record.image],
        };
        break;
      }
      case "chat":
        out = this.encodeChat(record.messages, record.images, { where });
        break;
      default:
        throw new PiscesProcessorError(`${where}: unknown task ${JSON.stringify((record as { task?: unknown }).task)} (captioning, generation, chat)`);
    }
    if (out.inputIds.length > maxLength)
      throw new PiscesProcessorError(
        `${where} is ${out.inputIds.length} tokens long, more than the LLM's ${maxLength} positions: shorten the caption or conversation`,
      );
    return out;
  }

  /**
   * A chat's ids, labels and images: image parts take their image from the part or, in order,
   * from `images`. With `addGenerationPrompt` the assistant's turn is opened (inference).
   */
  encodeChat(
    messages: readonly PiscesMessage[],
    images: readonly ImageInput[] | undefined,
    options: { addGenerationPrompt?: boolean; where?: string } = {},
  ): EncodedRecord {
    const where = options.where ?? "the chat";
    const c = this.chatPrompt(messages, options);
    const placed: ImageInput[] = [];
    let unnamed = 0;
    for (const m of messages)
      if (typeof m.content !== "string")
        for (const p of m.content)
          if (p.type === "image") {
            if (p.image !== undefined) placed.push(p.image);
            else placed.push(images?.[unnamed++] as ImageInput);
          }
    const given = images?.length ?? 0;
    if (placed.some((x) => x === undefined) || unnamed !== given)
      throw new PiscesProcessorError(
        `${where}: the messages place ${c.images} image(s) but ${given} were given in \`images\` (and ${c.images - unnamed} in parts)`,
      );
    return {
      inputIds: c.inputIds,
      labels: c.labels,
      understanding: c.understanding,
      generation: new Array(c.inputIds.length).fill(0),
      understandingImages: placed,
      generationImages: [],
    };
  }

  /** Records -> a padded batch with pixel values for both encoders. */
  async call(records: readonly PiscesRecord[], options: ProcessorOptions = {}): Promise<PiscesBatch> {
    if (!Array.isArray(records) || records.length === 0) throw new PiscesProcessorError("the batch has no records");
    const encoded = records.map((r, i) => this.encodeRecord(r, i));
    const understandingPixelValues = await this.pixels(encoded, "understanding", options);
    let generationPixelValues: T.Tensor | null = null;
    try {
      generationPixelValues = await this.pixels(encoded, "generation", options);
    } catch (e) {
      understandingPixelValues?.dispose();
      throw e;
    }
    return T.scope(() => ({ ...this.pad(encoded, options), understandingPixelValues, generationPixelValues }));
  }

  /** Pads encoded records into (B, T) tensors (left or right) without touching images. */
  pad(
    encoded: readonly EncodedRecord[],
    options: { padding?: "left" | "right"; device?: T.Device } = {},
  ): Omit<PiscesBatch, "understandingPixelValues" | "generationPixelValues"> {
    const L = Math.max(...encoded.map((e) => e.inputIds.length));
    const left = options.padding === "left";
    const pad = (row: readonly number[], value: number) => {
      const fill = new Array(L - row.length).fill(value);
      return left ? [...fill, ...row] : [...row, ...fill];
    };
    const device = options.device;
    const t = (rows: number[][]) => T.tensor(rows, { dtype: "int64", device });
    return {
      inputIds: t(encoded.map((e) => pad(e.inputIds, this.imageStartTokenId))),
      attentionMask: t(
        encoded.map((e) =>
          pad(
            e.inputIds.map(() => 1),
            0,
          ),
        ),
      ),
      labels: t(encoded.map((e) => pad(e.labels, -100))),
      understandingMask: t(encoded.map((e) => pad(e.understanding, 0))),
      generationMask: t(encoded.map((e) => pad(e.generation, 0))),
    };
  }

  private async pixels(encoded: readonly EncodedRecord[], path: "understanding" | "generation", options: ProcessorOptions): Promise<T.Tensor | null> {
    const processor = path === "understanding" ? this.siglipProcessor : this.genClipProcessor;
    const parts: T.Tensor[] = [];
    try {
      for (const [i, e] of encoded.entries())
        for (const image of path === "understanding" ? e.understandingImages : e.generationImages) {
          try {
            parts.push((await processor.preprocess(image, options)).pixelValues);
          } catch (err) {
            if (err instanceof Error) err.message = `record ${i}: ${err.message}`;
            throw err;
          }
        }
      return parts.length ? T.cat(parts, 0) : null;
    } finally {
      for (const p of parts) p.dispose();
    }
  }
}
