// Tokenizer for Hugging Face model folders: `tokenizer.json` run by @huggingface/tokenizers, chat
// templates rendered by @huggingface/jinja from the model's own template (tokenizer_config.json's
// `chat_template`, or `chat_template.jinja` as newer transformers releases save it).
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE_LIMITS } from "./chat-template.js";
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

/** tokenizer.json files of large vocabularies run to tens of MB (Llama 3's is 9 MB). */
const MAX_TOKENIZER_JSON_BYTES = 256 * 1024 * 1024;

function readJson<T>(path: string, what: string): T {
  const json = T.readJsonFile(path, what, MAX_TOKENIZER_JSON_BYTES);
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new T.ConfigError([`the ${what} must be a JSON object`], path);
  return json as T;
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export class AutoTokenizer {
  private tokenizer: Tokenizer;
  private readonly template: ChatTemplate | null;

  private constructor(
    private json: TokenizerJson,
    private readonly config: Record<string, unknown>,
    readonly chatTemplate: string | null,
    private readonly templateOrigin = "chat template",
  ) {
    if (!json || typeof json !== "object" || !json.model || typeof json.model !== "object")
      throw new T.ConfigError(["tokenizer.json has no model object (not a fast-tokenizer file?)"], templateOrigin);
    try {
      this.tokenizer = new Tokenizer(json, config);
    } catch (e) {
      throw new T.ConfigError([`the tokenizer cannot be built (${(e as Error).message})`], templateOrigin);
    }
    this.template = chatTemplate !== null && chatTemplate !== undefined ? new ChatTemplate(chatTemplate, templateOrigin) : null;
  }

  /** Loads `tokenizer.json` (+ `tokenizer_config.json`, chat template) from a model folder. */
  static fromPretrained(dir: string): AutoTokenizer {
    const path = join(dir, "tokenizer.json");
    if (!existsSync(path)) throw new Error(`${dir}: no tokenizer.json (only fast-tokenizer folders are supported)`);
    const json = readJson<TokenizerJson>(path, "tokenizer.json");
    const configPath = join(dir, "tokenizer_config.json");
    const config = existsSync(configPath) ? readJson<Record<string, unknown>>(configPath, "tokenizer config") : {};
    let template: string | null = null;
    let origin = configPath;
    const jinjaPath = join(dir, "chat_template.jinja");
    const templateJson = join(dir, "chat_template.json");
    if (config.chat_template !== undefined && config.chat_template !== null) {
      if (typeof config.chat_template !== "string")
        throw new T.ConfigError(["chat_template must be a string (lists of named templates are not supported)"], configPath);
      template = config.chat_template;
    } else if (existsSync(jinjaPath)) {
      T.checkedFile(jinjaPath, "chat template");
      if (statSync(jinjaPath).size > DEFAULT_CHAT_TEMPLATE_LIMITS.maxOutputLength) throw new T.ConfigError(["the chat template file is too large"], jinjaPath);
      template = readFileSync(jinjaPath, "utf8");
      origin = jinjaPath;
    } else if (existsSync(templateJson)) {
      const t = readJson<{ chat_template?: unknown }>(templateJson, "chat template").chat_template;
      if (t !== undefined && typeof t !== "string") throw new T.ConfigError(["chat_template must be a string"], templateJson);
      template = (t as string | undefined) ?? null;
      origin = templateJson;
    }
    return new AutoTokenizer(json, config, template, origin);
  }

  /** From in-memory tokenizer.json / tokenizer_config.json objects (e.g. read from a GGUF file). */
  static fromObjects(
    tokenizerJson: object,
    tokenizerConfig: Record<string, unknown> = {},
    chatTemplate: string | null = null,
    origin = "chat template",
  ): AutoTokenizer {
    return new AutoTokenizer(
      tokenizerJson as TokenizerJson,
      tokenizerConfig,
      chatTemplate ?? (tokenizerConfig.chat_template as string | undefined) ?? null,
      origin,
    );
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

  /** The tokenizer.json this tokenizer runs (with tokens added by addSpecialTokens), to save it. */
  toJSON(): object {
    return this.json;
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
    if (!this.template)
      throw new Error(
        `${this.templateOrigin}: this tokenizer has no chat_template (not in tokenizer_config.json nor chat_template.jinja); pass the conversation as plain text or add a template`,
      );
    if (!Array.isArray(messages) || messages.some((m) => typeof m?.role !== "string" || typeof m?.content !== "string"))
      throw new TypeError("applyChatTemplate(): messages must be an array of {role: string, content: string}");
    const text = this.template.render({
      ...this.specialTokens,
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    }); // rendered with limits (chat-template.ts)
    // The template already wrote BOS and the other special tokens: do not add them again.
    return options.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }
}
