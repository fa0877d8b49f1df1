// SigLIP's text tokenizer: the checkpoint's SentencePiece unigram model (`spiece.model`), run by
// @huggingface/tokenizers, with the text canonicalisation transformers' SiglipTokenizer applies
// (lower case, ASCII punctuation removed, whitespace runs collapsed), an EOS at the end and, for
// the text tower, padding to `model_max_length` (64 for the published checkpoints).
//
// SiglipTokenizer encodes a text as SentencePiece does for "▁" + text with no dummy prefix of its
// own (it encodes "<unk>" + text and drops the "<unk>" pieces). The normalizer sequence below
// reproduces that: canonicalise, then SentencePiece's normalisation (NFKC, "▁" read as a space,
// runs of spaces collapsed, trailing space removed, spaces escaped as "▁"), then the unigram
// lattice. Special tokens (</s>, <unk>, <pad>) in the text are kept whole and eat the spaces
// around them, as transformers' added tokens do.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

/** One entry of a SentencePiece model: the piece, its log-probability score and its kind. */
export interface SentencePiece {
  piece: string;
  score: number;
  /** 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
  type: number;
}

/** The parts of a SentencePiece `ModelProto` the tokenizer needs. */
export interface SentencePieceModel {
  pieces: SentencePiece[];
  modelType: number; // 1 unigram, 2 BPE, 3 word, 4 char
  unkId: number;
  byteFallback: boolean;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

// ---- a minimal protobuf (proto2 wire format) reader for sentencepiece_model.proto ---------------

class ProtoReader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error(`${this.what}: truncated protobuf (varint)`);
      const b = this.buf[this.pos++]!;
      if (shift < 49) result += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return result;
      shift += 7;
      if (shift > 70) throw new Error(`${this.what}: malformed protobuf varint`);
    }
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new Error(`${this.what}: truncated protobuf (a field runs past the end)`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    if (this.pos + 4 > this.buf.length) throw new Error(`${this.what}: truncated protobuf (float)`);
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  /** Calls `field(number, wireType, reader)` per field; it reads the value, or returns false to have it skipped. */
  fields(field: (num: number, wire: number, r: ProtoReader) => boolean): void {
    while (!this.done) {
      const key = this.varint();
      const num = Math.floor(key / 8);
      const wire = key & 7;
      if (field(num, wire, this)) continue;
      if (wire === 0) this.varint();
      else if (wire === 1) this.skip(8);
      else if (wire === 2) this.bytes();
      else if (wire === 5) this.skip(4);
      else throw new Error(`${this.what}: unsupported protobuf wire type ${wire}`);
    }
  }
  private skip(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error(`${this.what}: truncated protobuf`);
    this.pos += n;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a SentencePiece `.model` file (a serialized ModelProto): pieces, trainer and normalizer settings. */
export function parseSentencePieceModel(data: Uint8Array, what = "spiece.model"): SentencePieceModel {
  const model: SentencePieceModel = {
    pieces: [],
    modelType: 1,
    unkId: 0,
    byteFallback: false,
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  // field numbers from sentencepiece_model.proto
  new ProtoReader(data, what).fields((num, wire, r) => {
    if (num === 1 && wire === 2) {
      const p: SentencePiece = { piece: "", score: 0, type: 1 };
      new ProtoReader(r.bytes(), what).fields((n, w, q) => {
        if (n === 1 && w === 2) p.piece = utf8.decode(q.bytes());
        else if (n === 2 && w === 5) p.score = q.float();
        else if (n === 3 && w === 0) p.type = q.varint();
        else return false;
        return true;
      });
      model.pieces.push(p);
    } else if (num === 2 && wire === 2) {
      new ProtoReader(r.bytes(), what).fields((n, w, q) => {
        if (n === 3 && w === 0) model.modelType = q.varint();
        else if (n === 40 && w === 0) model.unkId = q.varint();
        else if (n === 35 && w === 0) model.byteFallback = q.varint() !== 0;
        else return false;
        return true;
      });
    } else if (num === 3 && wire === 2) {
      new ProtoReader(r.bytes(), what).fields((n, w, q) => {
        if (n === 2 && w === 2) model.precompiledCharsmap = q.bytes();
        else if (n === 3 && w === 0) model.addDummyPrefix = q.varint() !== 0;
        else if (n === 4 && w === 0) model.removeExtraWhitespaces = q.varint() !== 0;
        else if (n === 5 && w === 0) model.escapeWhitespaces = q.varint() !== 0;
        else return false;
        return true;
      });
    } else return false;
    return true;
  });
  if (model.pieces.length === 0) throw new Error(`${what}: no pieces found (not a SentencePiece model file?)`);
  return model;
}

// ---- the tokenizer ---------------------------------------------------------------------------------

/** Python's string.punctuation, removed by SigLIP's canonicalisation. */
const ASCII_PUNCTUATION = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]";

function tokenString(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export interface SiglipTokenizerConfig {
  eos_token?: string | { content: string };
  unk_token?: string | { content: string };
  pad_token?: string | { content: string };
  additional_special_tokens?: (string | { content: string })[];
  model_max_length?: number;
  do_lower_case?: boolean;
  [key: string]: unknown;
}

export interface BatchEncodeOptions {
  /** "max_length" (what SigLIP was trained with), "longest" (to the longest in the batch) or false. */
  padding?: "max_length" | "longest" | false;
  /** Defaults to `model_max_length` (64 for the published checkpoints). */
  maxLength?: number;
  /** Cut texts longer than maxLength (the EOS is kept); default true. */
  truncation?: boolean;
}

export class SiglipTokenizer {
  private readonly tokenizer: Tokenizer;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
  readonly modelMaxLength: number;
  private readonly pieces: string[];
  private readonly specialTokens: Set<string>;

  constructor(
    model: SentencePieceModel,
    readonly config: SiglipTokenizerConfig = {},
  ) {
    if (model.modelType !== 1) throw new Error(`SiglipTokenizer: the SentencePiece model is of type ${model.modelType}; SigLIP's is a unigram model (type 1)`);
    this.pieces = model.pieces.map((p) => p.piece);
    const idOf = (name: string, fallback: string): number => {
      const token = tokenString(config[name]) ?? fallback;
      const id = this.pieces.indexOf(token);
      if (id < 0) throw new Error(`SiglipTokenizer: ${name} "${token}" is not a piece of the SentencePiece model`);
      return id;
    };
    this.eosTokenId = idOf("eos_token", "</s>");
    this.unkTokenId = idOf("unk_token", "<unk>");
    this.padTokenId = idOf("pad_token", "</s>");
    this.modelMaxLength = config.model_max_length ?? 64;
    const special = new Set([this.eosTokenId, this.unkTokenId, this.padTokenId]);
    for (const t of config.additional_special_tokens ?? []) {
      const id = this.pieces.indexOf(tokenString(t) ?? "");
      if (id >= 0) special.add(id);
    }
    this.specialTokens = new Set([...special].map((id) => this.pieces[id]!));
    const normalizers: object[] = [];
    if (config.do_lower_case ?? true) normalizers.push({ type: "Lowercase" });
    normalizers.push(
      { type: "Replace", pattern: { Regex: ASCII_PUNCTUATION }, content: "" },
      { type: "Replace", pattern: { Regex: "\\s+" }, content: " " },
      { type: "Strip", strip_left: true, strip_right: true },
      // SentencePiece: NFKC (the library applies it in place of the charsmap; it also reads "▁" as a space)
      { type: "Precompiled", precompiled_charsmap: Buffer.from(model.precompiledCharsmap).toString("base64") },
    );
    if (model.removeExtraWhitespaces)
      normalizers.push({ type: "Replace", pattern: { Regex: " {2,}" }, content: " " }, { type: "Replace", pattern: { Regex: " +$" }, content: "" });
    if (model.escapeWhitespaces) normalizers.push({ type: "Replace", pattern: { String: " " }, content: "\u2581" });
    const json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [...special]
        .sort((a, b) => a - b)
        .map((id) => ({
          id,
          content: this.pieces[id]!,
          single_word: false,
          lstrip: true,
          rstrip: true,
          normalized: false,
          special: true,
        })),
      normalizer: { type: "Sequence", normalizers },
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "always", split: true },
      model: { type: "Unigram", unk_id: model.unkId, vocab: model.pieces.map((p) => [p.piece, p.score]), byte_fallback: model.byteFallback },
    };
    this.tokenizer = new Tokenizer(json, { ...config, eos_token: this.pieces[this.eosTokenId], unk_token: this.pieces[this.unkTokenId] });
  }

  /** Reads `spiece.model` and `tokenizer_config.json` from a SigLIP model folder. */
  static fromPretrained(dir: string): SiglipTokenizer {
    const modelPath = join(dir, "spiece.model");
    if (!existsSync(modelPath)) throw new Error(`${dir}: no spiece.model (SigLIP's SentencePiece model)`);
    const configPath = join(dir, "tokenizer_config.json");
    let config: SiglipTokenizerConfig = {};
    if (existsSync(configPath)) {
      try {
        config = JSON.parse(readFileSync(configPath, "utf8")) as SiglipTokenizerConfig;
      } catch (e) {
        throw new Error(`${configPath}: cannot read JSON (${(e as Error).message})`);
      }
    }
    return new SiglipTokenizer(parseSentencePieceModel(readFileSync(modelPath), modelPath), config);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** The pieces of `text` (as transformers' `tokenize`), without the EOS. */
  tokenize(text: string): string[] {
    return this.encode(text, { addSpecialTokens: false }).map((id) => this.pieces[id]!);
  }

  /** Token ids of one text, ending with the EOS unless `addSpecialTokens` is false. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`SiglipTokenizer.encode(): expected a string, got ${typeof text}`);
    // transformers prefixes "▁" (its pieces mark word starts) and reads any "▁" in the text as a space
    const { ids, tokens } = this.tokenizer.encode(`\u2581${text.replaceAll("\u2581", " ")}`, { add_special_tokens: false });
    // a lone "▁" before a special token written in the text is dropped, as transformers does
    // (tokens holds the text of each piece: an unknown character is itself, not "<unk>")
    if (tokens.length > 1 && tokens[0] === "\u2581" && this.specialTokens.has(tokens[1]!)) ids.shift();
    if ((options.addSpecialTokens ?? true) && ids[ids.length - 1] !== this.eosTokenId) ids.push(this.eosTokenId);
    return ids;
  }

  /** Ids of several texts, truncated and padded (by default to `model_max_length`, as SigLIP expects). */
  batchEncode(texts: readonly string[], options: BatchEncodeOptions = {}): number[][] {
    return this.batchEncodeWithMask(texts, options).inputIds;
  }

  /** `batchEncode` plus the attention mask transformers returns beside it (1 for text and EOS, 0 for padding). */
  batchEncodeWithMask(texts: readonly string[], options: BatchEncodeOptions = {}): { inputIds: number[][]; attentionMask: number[][] } {
    if (!Array.isArray(texts)) throw new TypeError("SiglipTokenizer.batchEncode(): expected an array of strings");
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
    const rows = texts.map((t) => {
      const ids = this.encode(t);
      if ((options.truncation ?? true) && ids.length > maxLength) {
        const endsWithEos = ids[ids.length - 1] === this.eosTokenId;
        return endsWithEos ? [...ids.slice(0, maxLength - 1), this.eosTokenId] : ids.slice(0, maxLength);
      }
      return ids;
    });
    const padding = options.padding ?? "max_length";
    const width = padding === false ? 0 : padding === "longest" ? Math.max(0, ...rows.map((r) => r.length)) : maxLength;
    const pad = (r: number[], value: number) => (r.length >= width ? r : [...r, ...new Array<number>(width - r.length).fill(value)]);
    return { inputIds: rows.map((r) => pad(r, this.padTokenId)), attentionMask: rows.map((r) => pad(new Array<number>(r.length).fill(1), 0)) };
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length)
        throw new RangeError(`decode(): token id ${id} is out of range for a vocabulary of ${this.pieces.length}`);
    return this.tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }
}
