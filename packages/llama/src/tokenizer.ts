// Tokenizer for Hugging Face model folders: `tokenizer.json` run by @huggingface/tokenizers, chat
// templates rendered by @huggingface/jinja from the model's own template (tokenizer_config.json's
// `chat_template`, or `chat_template.jinja` as newer transformers releases save it).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";

export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  model: { vocab?: Record<string, number> | unknown[] };
  [key: string]: unknown;
}

const SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] as const;

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch (e) {
    throw new Error(`${path}: cannot read JSON (${(e as Error).message})`);
  }
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export class AutoTokenizer {
  private tokenizer: Tokenizer;
  private readonly template: Template | null;

  private constructor(
    private json: TokenizerJson,
    private readonly config: Record<string, unknown>,
    readonly chatTemplate: string | null,
  ) {
    this.tokenizer = new Tokenizer(json, config);
    this.template = chatTemplate ? new Template(chatTemplate) : null;
  }

  /** Loads `tokenizer.json` (+ `tokenizer_config.json`, chat template) from a model folder. */
  static fromPretrained(dir: string): AutoTokenizer {
    const path = join(dir, "tokenizer.json");
    if (!existsSync(path)) throw new Error(`${dir}: no tokenizer.json (only fast-tokenizer folders are supported)`);
    const json = readJson<TokenizerJson>(path);
    const configPath = join(dir, "tokenizer_config.json");
    const config = existsSync(configPath) ? readJson<Record<string, unknown>>(configPath) : {};
    let template: string | null = null;
    if (typeof config.chat_template === "string") template = config.chat_template;
    else if (existsSync(join(dir, "chat_template.jinja"))) template = readFileSync(join(dir, "chat_template.jinja"), "utf8");
    else if (existsSync(join(dir, "chat_template.json"))) template = readJson<{ chat_template?: string }>(join(dir, "chat_template.json")).chat_template ?? null;
    return new AutoTokenizer(json, config, template);
  }

  /** From in-memory tokenizer.json / tokenizer_config.json objects (e.g. read from a GGUF file). */
  static fromObjects(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}, chatTemplate: string | null = null): AutoTokenizer {
    return new AutoTokenizer(tokenizerJson as TokenizerJson, tokenizerConfig, chatTemplate ?? (tokenizerConfig.chat_template as string | undefined) ?? null);
  }

  /** Token ids of `text`; special tokens (e.g. BOS) are added as the post-processor says, unless disabled. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode(): expected a string, got ${typeof text}`);
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const size = this.vocabSize;
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= size) throw new RangeError(`decode(): token id ${id} is out of range for a vocabulary of ${size}`);
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }
  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /** Number of ids, added tokens included (the embedding table needs at least this many rows). */
  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }

  /** The special-token strings from tokenizer_config.json (bos_token, eos_token, ...). */
  get specialTokens(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of SPECIAL_KEYS) {
      const v = tokenString(this.config[key]);
      if (v !== undefined) out[key] = v;
    }
    return out;
  }

  /**
   * Adds tokens (e.g. Pisces' `[IMG]`, `[/IMG]`) as special added tokens with new ids after the
   * current vocabulary; existing tokens are left alone. Returns how many were added: resize the
   * model's embeddings to `vocabSize` afterwards.
   */
  addSpecialTokens(tokens: readonly string[]): number {
    const added = [...(this.json.added_tokens ?? [])];
    let next = this.vocabSize;
    let count = 0;
    for (const content of tokens) {
      if (this.tokenToId(content) !== undefined) continue;
      added.push({ id: next++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
      count++;
    }
    if (count) {
      this.json = { ...this.json, added_tokens: added };
      this.tokenizer = new Tokenizer(this.json, this.config);
    }
    return count;
  }

  /**
   * Renders a conversation with the model's own chat template (as transformers'
   * `apply_chat_template(..., tokenize=False)`), or its ids with `{tokenize: true}`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean; tokenize?: false; extra?: Record<string, unknown> }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean; tokenize: true; extra?: Record<string, unknown> }): number[];
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: { addGenerationPrompt?: boolean; tokenize?: boolean; extra?: Record<string, unknown> } = {},
  ): string | number[] {
    if (!this.template) throw new Error("this tokenizer has no chat_template (not in tokenizer_config.json nor chat_template.jinja)");
    if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string"))
      throw new TypeError("applyChatTemplate(): messages must be an array of {role: string, content: string}");
    const text = this.template.render({
      ...this.specialTokens,
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    }); // @huggingface/jinja provides raise_exception itself
    // The template already wrote BOS and the other special tokens: do not add them again.
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }
}
