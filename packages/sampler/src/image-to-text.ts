// Image to text with Pisces: captions (the paper's captioning prompt), questions about an image,
// and multi-turn chats with images, decoded greedily or sampled from the LLM after the SigLIP
// vectors. Streams UTF-8-safe text as an async generator; an AbortSignal stops it between tokens.
import type { ImageInput } from "@pisces/image";
import type { GenerateOptions } from "@pisces/llama";
import type { EncodedRecord, PiscesForConditionalGeneration, PiscesMessage } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { abortError, checkSignal, SamplerError } from "./errors.js";

/** How tokens are chosen: greedy by default; `doSample` with temperature / topK / topP and an explicit seed. */
export type SamplingOptions = Pick<GenerateOptions, "doSample" | "temperature" | "topK" | "topP" | "repetitionPenalty" | "seed">;

export interface ImageToTextOptions extends SamplingOptions {
  /** One row per image (captioning or a question); for a chat, the images its parts place, in order. */
  images?: ImageInput | readonly ImageInput[];
  /** A question or instruction about each image; without it (and without messages) the paper's captioning prompt. */
  prompt?: string;
  /** A conversation (one row); image parts take `images` in order or their own `image`. */
  messages?: readonly PiscesMessage[];
  /** Default 128. */
  maxNewTokens?: number;
  /** Stops a row once its text contains one of these (the text returned ends before it). */
  stopStrings?: readonly string[];
  signal?: AbortSignal;
}

export type ImageToTextEvent =
  | { stage: "text" /** new text per row (may be empty while a character is incomplete) */; text: string[]; tokens: number[]; finished: boolean[] }
  | { stage: "done"; texts: string[]; tokens: number[][] };

/** Captions, answers or chat replies for images, streamed. */
export async function* imageToText(model: PiscesForConditionalGeneration, options: ImageToTextOptions): AsyncGenerator<ImageToTextEvent> {
  const processor = model.processor;
  if (!processor) throw new SamplerError("this model has no processor (tokenizer): load it with PiscesForConditionalGeneration.fromPretrained");
  checkSignal(options.signal);
  const maxNewTokens = options.maxNewTokens ?? 128;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new SamplerError(`maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  const images = options.images === undefined ? [] : Array.isArray(options.images) ? [...options.images] : [options.images as ImageInput];
  let rows: EncodedRecord[];
  if (options.messages !== undefined) {
    if (options.prompt !== undefined) throw new SamplerError("give either prompt or messages, not both");
    rows = [processor.encodeChat(options.messages, images, { addGenerationPrompt: true })];
  } else {
    if (images.length === 0) throw new SamplerError("imageToText needs at least one image (images), or messages for a chat");
    if (options.prompt !== undefined && typeof options.prompt !== "string") throw new SamplerError("prompt must be a string");
    const text = options.prompt;
    rows = images.map((image) => {
      const p =
        text === undefined
          ? processor.captioningPrompt()
          : processor.tokenizer.chatTemplate !== null
            ? processor.encodeChat(
                [
                  {
                    role: "user",
                    content: [
                      { type: "image", image },
                      { type: "text", text },
                    ],
                  },
                ],
                [],
                { addGenerationPrompt: true },
              )
            : processor.imagePrompt(text);
      const ids = p.inputIds;
      return { inputIds: ids, labels: ids, understanding: p.understanding, generation: ids.map(() => 0), understandingImages: [image], generationImages: [] };
    });
  }
  const owned = new T.Owned();
  try {
    const device = model.language_model.model.norm.weight.device; // (lm_head may be quantized: no .weight)
    const list = rows.flatMap((r) => r.understandingImages);
    const pixels: T.Tensor[] = [];
    for (const [i, image] of list.entries()) {
      try {
        pixels.push(owned.hold((await processor.siglipProcessor.preprocess(image, { device })).pixelValues));
      } catch (e) {
        if (e instanceof Error) e.message = `image ${i}: ${e.message}`;
        throw e;
      }
      checkSignal(options.signal);
    }
    const padded = processor.pad(rows, { padding: "left", device });
    for (const t of Object.values(padded)) owned.hold(t);
    const understandingPixelValues = pixels.length ? owned.hold(T.scope(() => T.cat(pixels, 0))) : null;
    const inputsEmbeds = owned.hold(
      model.promptEmbeddings({ inputIds: padded.inputIds, understandingMask: padded.understandingMask, understandingPixelValues }),
    );
    const stops = options.stopStrings ?? [];
    const generated: number[][] = rows.map(() => []);
    const stream = model.language_model.generateStream({
      inputsEmbeds,
      attentionMask: padded.attentionMask,
      maxNewTokens,
      doSample: options.doSample,
      temperature: options.temperature,
      topK: options.topK,
      topP: options.topP,
      repetitionPenalty: options.repetitionPenalty,
      seed: options.seed,
      stopStrings: stops.length ? stops : undefined,
      tokenizer: processor.tokenizer,
    });
    let finished: boolean[] = rows.map(() => false);
    try {
      for await (const chunk of stream) {
        chunk.tokens.forEach((t, i) => {
          if (!finished[i]) generated[i]!.push(t);
        });
        finished = chunk.finished;
        yield { stage: "text", text: chunk.text, tokens: chunk.tokens, finished: chunk.finished };
        if (options.signal?.aborted) throw abortError(options.signal);
      }
    } finally {
      await stream.return(undefined as never);
    }
    const texts = generated.map((ids) => {
      let text = processor.tokenizer.decode(ids, { skipSpecialTokens: true });
      for (const s of stops) {
        const at = text.indexOf(s);
        if (at >= 0) text = text.slice(0, at);
      }
      return text;
    });
    yield { stage: "done", texts, tokens: generated };
  } finally {
    owned.dispose();
  }
}

/** Runs imageToText to the end and returns one text per row. */
export async function describeImages(model: PiscesForConditionalGeneration, options: ImageToTextOptions): Promise<string[]> {
  for await (const event of imageToText(model, options)) if (event.stage === "done") return event.texts;
  throw new SamplerError("imageToText ended without text");
}
