// Text generation for LlamaForCausalLM: greedy and sampled decoding over a static KV cache, batched
// with left padding, as transformers' generate() does (same logits processors, in the same order:
// repetition penalty, temperature, top-k, top-p). `decodeSteps` is the loop as a generator;
// `generate` collects it, `generateStream` yields UTF-8-safe text pieces as they come.
import * as T from "@pisces/tensor-cuda";
import { StaticCache } from "./cache.js";
import type { LlamaForCausalLM } from "./model.js";

/** What generation needs of a tokenizer: decoding ids (for stop strings and streamed text). */
export interface Decoder {
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

export interface GenerateOptions {
  /** Prompt ids (B, T) as a tensor or nested arrays; left-pad rows of unequal length and pass attentionMask. */
  inputIds?: T.Tensor | readonly (readonly number[])[];
  /** Prompt vectors (B, T, C) instead of ids (e.g. with image vectors spliced in). */
  inputsEmbeds?: T.Tensor;
  /** (B, T): 1 for prompt tokens, 0 for left padding. */
  attentionMask?: T.Tensor | readonly (readonly number[])[];
  maxNewTokens: number;
  /** Sample from the distribution (true) or take the most likely token (false, the default). */
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  /** > 1 discourages tokens already in the sequence (CTRL-style, as transformers). */
  repetitionPenalty?: number;
  /** Stops a row at any of these ids; defaults to the config's eos_token_id. null or [] never stops. */
  eosTokenId?: number | readonly number[] | null;
  /** Fills finished rows; defaults to the config's pad_token_id, else the first EOS id, else 0. */
  padTokenId?: number;
  /** Seeds the sampling generator, so a seed gives the same tokens every time. */
  seed?: number;
  /** Stops a row once its generated text contains one of these strings (needs `tokenizer`). */
  stopStrings?: readonly string[];
  tokenizer?: Decoder;
}

export interface GenerationStep {
  step: number;
  /** The token chosen for each row (the pad id for rows already finished). */
  tokens: number[];
  /** Whether each row has finished (EOS or a stop string) after this step. */
  finished: boolean[];
}

export interface StreamChunk extends GenerationStep {
  /** New text for each row since the previous chunk (empty while a multi-byte character is incomplete). */
  text: string[];
}

function toIdTensor(x: T.Tensor | readonly (readonly number[])[], what: string, device: T.Device): T.Tensor {
  if (x instanceof T.Tensor) {
    if (x.ndim !== 2) throw new RangeError(`${what} must be (batch, sequence), got shape [${x.shape}]`);
    const converted = x.to({ device, dtype: "int64" });
    return converted === x ? x.clone() : converted; // always a copy the loop owns
  }
  if (!Array.isArray(x) || x.length === 0 || !x.every((r) => Array.isArray(r) && r.length === x[0]!.length))
    throw new RangeError(`${what} must be a non-empty list of equally long rows (left-pad shorter prompts)`);
  return T.tensor(x as number[][], { dtype: "int64", device });
}

function validate(o: GenerateOptions): void {
  if ((o.inputIds === undefined) === (o.inputsEmbeds === undefined)) throw new TypeError("generate: give exactly one of inputIds and inputsEmbeds");
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens <= 0)
    throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${o.maxNewTokens}`);
  if (o.temperature !== undefined && !(o.temperature > 0)) throw new RangeError(`generate: temperature must be > 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new RangeError(`generate: topK must be a non-negative integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0))
    throw new RangeError(`generate: repetitionPenalty must be > 0, got ${o.repetitionPenalty}`);
  if (o.stopStrings?.length && !o.tokenizer) throw new TypeError("generate: stopStrings needs a tokenizer to decode the generated text");
}

/** transformers' logits processors, in its order. logits (B, V) float32; sequence (B, L) int64. */
export function processLogits(logits: T.Tensor, sequence: T.Tensor | null, o: GenerateOptions): T.Tensor {
  let x = logits;
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1 && sequence && sequence.size(1) > 0) {
    const score = x.gather(1, sequence);
    const penalised = T.where(score.lt(0), score.mul(o.repetitionPenalty), score.div(o.repetitionPenalty));
    x = x.scatter(1, sequence, penalised);
  }
  if (!o.doSample) return x;
  if (o.temperature !== undefined && o.temperature !== 1) x = x.div(o.temperature);
  if (o.topK !== undefined && o.topK > 0) {
    const k = Math.min(o.topK, x.size(-1));
    const threshold = x.topk(k).values.slice(-1, -1); // (B, 1): the k-th largest
    x = x.maskedFill(x.lt(threshold), -Infinity);
  }
  if (o.topP !== undefined && o.topP < 1) {
    const { values, indices } = x.sort({ descending: false });
    const cumulative = values.softmax(-1).cumsum(-1);
    const removeSorted = cumulative.le(1 - o.topP);
    const lastCol = removeSorted.size(-1) - 1;
    const keepLast = removeSorted.indexPut([null, T.tensor([lastCol], { device: x.device })], T.tensor(false, { device: x.device }));
    const remove = keepLast.scatter(1, indices, keepLast);
    x = x.maskedFill(remove, -Infinity);
  }
  return x;
}

/**
 * The decoding loop: prefill the prompt into a static cache, then one token per step. Yields each
 * step's tokens; stops when every row has finished or after maxNewTokens. All intermediate tensors
 * are freed per step.
 */
export function* decodeSteps(model: LlamaForCausalLM, options: GenerateOptions): Generator<GenerationStep> {
  validate(options);
  const { config } = model;
  const device = model.model.norm.weight.device; // (lm_head may be quantized: no .weight)
  const eos =
    options.eosTokenId === undefined
      ? config.eosTokenIds
      : options.eosTokenId === null
        ? []
        : typeof options.eosTokenId === "number"
          ? [options.eosTokenId]
          : options.eosTokenId;
  const pad = options.padTokenId ?? config.padTokenId ?? eos[0] ?? 0;
  const owned = new T.Owned(); // the loop's state across steps; freed however the loop ends
  const hold = <X extends T.Tensor>(t: X): X => owned.hold(t);
  try {
    const ids = options.inputIds !== undefined ? hold(toIdTensor(options.inputIds, "inputIds", device)) : null;
    const embeds = options.inputsEmbeds ?? null;
    const [B, promptLength] = (ids ?? embeds!).shape as [number, number];
    let mask = hold(
      options.attentionMask !== undefined ? toIdTensor(options.attentionMask, "attentionMask", device) : T.ones([B, promptLength], { dtype: "int64", device }),
    );
    if (mask.size(0) !== B || mask.size(1) !== promptLength) throw new RangeError(`attentionMask must be [${B}, ${promptLength}], got [${mask.shape}]`);
    const padded = T.scope(() => mask.eq(0).any().item()) === 1;
    const total = promptLength + options.maxNewTokens;
    if (total > config.maxPositionEmbeddings)
      throw new RangeError(`prompt (${promptLength}) + maxNewTokens (${options.maxNewTokens}) exceeds the model's ${config.maxPositionEmbeddings} positions`);
    const cache = new StaticCache(config, B, total, { dtype: model.model.norm.weight.dtype, device });
    const generator = options.doSample ? new T.Generator({ seed: options.seed ?? Math.floor(Math.random() * 2 ** 31), device }) : undefined;
    // Repetition penalty looks at the prompt ids (when given) and everything generated.
    let sequence = hold(ids ? ids.clone() : T.zeros([B, 0], { dtype: "int64", device }));
    const generated: number[][] = Array.from({ length: B }, () => []);
    const finished: boolean[] = new Array(B).fill(false);
    let last: T.Tensor | null = null;
    try {
      for (let step = 0; step < options.maxNewTokens; step++) {
        const tokens = T.noGrad(() =>
          T.scope(() => {
            const first = step === 0;
            const out = model.forward({
              inputIds: first ? (ids ?? undefined) : last!,
              inputsEmbeds: first && embeds ? embeds : undefined,
              attentionMask: padded ? mask : null,
              cache,
              logitsToKeep: 1,
            });
            const logits = processLogits(out.logits.select(1, -1).to("float32"), sequence, options); // (B, V)
            const next = options.doSample ? logits.softmax(-1).multinomial(1, { generator }).squeeze(1) : logits.argmax(-1);
            return (next.tolist() as number[]).map((t, i) => (finished[i] ? pad : t));
          }),
        );
        for (let i = 0; i < B; i++) {
          if (finished[i]) continue;
          generated[i]!.push(tokens[i]!);
          if (eos.includes(tokens[i]!)) finished[i] = true;
          else if (options.stopStrings?.length) {
            const text = options.tokenizer!.decode(generated[i]!, { skipSpecialTokens: true });
            if (options.stopStrings.some((s) => text.includes(s))) finished[i] = true;
          }
        }
        const [nextLast, nextSequence, nextMask] = T.scope(() => {
          const column = T.tensor(tokens, { dtype: "int64", device }).unsqueeze(1); // (B, 1)
          return [column, T.cat([sequence, column], 1), T.cat([mask, T.onesLike(column)], 1)];
        });
        [last, sequence, mask] = [owned.replace(last, nextLast), owned.replace(sequence, nextSequence), owned.replace(mask, nextMask)];
        yield { step, tokens, finished: finished.slice() };
        if (finished.every(Boolean)) break;
      }
    } finally {
      cache.dispose();
    }
  } finally {
    owned.dispose();
  }
}

/**
 * Generates up to maxNewTokens per row. With inputIds, returns (B, T + n) ids (prompt included,
 * finished rows padded), as transformers does; with inputsEmbeds, only the new ids (B, n).
 */
export function generate(model: LlamaForCausalLM, options: GenerateOptions): T.Tensor {
  const rows: number[][] = [];
  for (const step of decodeSteps(model, options))
    step.tokens.forEach((t, i) => {
      (rows[i] ??= []).push(t);
    });
  const prompt =
    options.inputIds === undefined
      ? null
      : options.inputIds instanceof T.Tensor
        ? (options.inputIds.tolist() as number[][])
        : options.inputIds.map((r) => [...r]);
  const out = rows.map((r, i) => (prompt ? [...prompt[i]!, ...r] : r));
  return T.tensor(out, { dtype: "int64", device: model.model.norm.weight.device });
}

/**
 * Streams generation: one chunk per step with each row's token and, given a tokenizer, the new
 * text. Text is held back while it ends in an incomplete UTF-8 sequence, so a character split
 * across tokens arrives whole. Yields to the event loop between steps.
 */
export async function* generateStream(model: LlamaForCausalLM, options: GenerateOptions): AsyncGenerator<StreamChunk> {
  const generated: number[][] = [];
  const emitted: string[] = [];
  let done: boolean[] = [];
  for (const step of decodeSteps(model, options)) {
    const text = step.tokens.map((t, i) => {
      if (!options.tokenizer || done[i]) return "";
      (generated[i] ??= []).push(t);
      const full = options.tokenizer.decode(generated[i]!, { skipSpecialTokens: true });
      const shown = emitted[i] ?? "";
      if (full.endsWith("\uFFFD") || !full.startsWith(shown)) return "";
      emitted[i] = full;
      return full.slice(shown.length);
    });
    done = step.finished;
    yield { ...step, text };
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
