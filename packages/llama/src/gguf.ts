// GGUF import (llama.cpp's file format) for Llama-architecture models: parses the header and
// metadata, dequantizes F32 / F16 / BF16 / Q8_0 / Q4_0 / Q4_1 tensors to float32 on load, renames
// them to Hugging Face keys and undoes llama.cpp's rotary permutation of q/k, and rebuilds the
// byte-level BPE tokenizer and chat template stored in the metadata.
// Format: github.com/ggml-org/ggml/blob/master/docs/gguf.md. Block layouts: ggml-common.h.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import * as T from "@pisces/tensor-cuda";
import { type LlamaConfigJson, resolveLlamaConfig } from "./config.js";
import { disposeReplaced, LlamaForCausalLM, type ModelOptions } from "./model.js";
import { AutoTokenizer } from "./tokenizer.js";
import { replaceModule, withTiedLmHead } from "./weights.js";

export class GGUFError extends Error {
  override name = "GGUFError";
}

enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml tensor types this importer dequantizes: [name, elements per block, bytes per block]. */
const GGML_TYPES: Record<number, [string, number, number]> = {
  0: ["F32", 1, 4],
  1: ["F16", 1, 2],
  2: ["Q4_0", 32, 18],
  3: ["Q4_1", 32, 20],
  8: ["Q8_0", 32, 34],
  12: ["Q4_K", 256, 144],
  14: ["Q6_K", 256, 210],
  30: ["BF16", 1, 2],
};
/** Every other ggml type whose layout is known (ggml.c's type_traits): sizes are checked, data is not read. */
const GGML_OTHER_TYPES: Record<number, [string, number, number]> = {
  6: ["Q5_0", 32, 22],
  7: ["Q5_1", 32, 24],
  9: ["Q8_1", 32, 36],
  10: ["Q2_K", 256, 84],
  11: ["Q3_K", 256, 110],
  13: ["Q5_K", 256, 176],
  15: ["Q8_K", 256, 292],
  24: ["I8", 1, 1],
  25: ["I16", 1, 2],
  26: ["I32", 1, 4],
  27: ["I64", 1, 8],
  28: ["F64", 1, 8],
};
const GGML_TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(GGML_OTHER_TYPES).map(([k, v]) => [k, v[0]]));
/** llama.cpp's limits: GGML_MAX_DIMS and GGML_MAX_NAME (names are shorter than 64 bytes). */
const GGML_MAX_DIMS = 4;
const GGML_MAX_NAME = 64;

export type GGUFValue = number | bigint | boolean | string | GGUFValue[];

export interface GGUFTensorInfo {
  name: string;
  /** Shape in PyTorch order (outermost first): GGUF lists dimensions innermost first. */
  shape: number[];
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

/** A buffered little-endian reader over a file descriptor. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly path: string,
  ) {}
  private ensure(n: number): void {
    if (this.pos + n > this.size) throw new GGUFError(`${this.path}: unexpected end of file at byte ${this.pos} (truncated?)`);
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
    this.buf = Buffer.alloc(len);
    readSync(this.fd, this.buf, 0, len, this.pos);
    this.bufStart = this.pos;
  }
  private at(n: number): number {
    this.ensure(n);
    const o = this.pos - this.bufStart;
    this.pos += n;
    return o;
  }
  u8 = () => {
    const o = this.at(1); // first: at() may refill the buffer
    return this.buf.readUInt8(o);
  };
  i8 = () => {
    const o = this.at(1); // first: at() may refill the buffer
    return this.buf.readInt8(o);
  };
  u16 = () => {
    const o = this.at(2); // first: at() may refill the buffer
    return this.buf.readUInt16LE(o);
  };
  i16 = () => {
    const o = this.at(2); // first: at() may refill the buffer
    return this.buf.readInt16LE(o);
  };
  u32 = () => {
    const o = this.at(4); // first: at() may refill the buffer
    return this.buf.readUInt32LE(o);
  };
  i32 = () => {
    const o = this.at(4); // first: at() may refill the buffer
    return this.buf.readInt32LE(o);
  };
  f32 = () => {
    const o = this.at(4); // first: at() may refill the buffer
    return this.buf.readFloatLE(o);
  };
  f64 = () => {
    const o = this.at(8); // first: at() may refill the buffer
    return this.buf.readDoubleLE(o);
  };
  u64 = () => {
    const o = this.at(8); // first: at() may refill the buffer
    return this.buf.readBigUInt64LE(o);
  };
  i64 = () => {
    const o = this.at(8); // first: at() may refill the buffer
    return this.buf.readBigInt64LE(o);
  };
  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  count(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || Number(v) > this.size) throw new GGUFError(`${this.path}: implausible ${what} ${v} (corrupt file?)`);
    return Number(v);
  }
  string(): string {
    const n = this.count("string length");
    const o = this.at(n);
    return this.buf.toString("utf8", o, o + n);
  }
}

export interface GGUFFile {
  path: string;
  version: number;
  metadata: Map<string, GGUFValue>;
  tensors: Map<string, GGUFTensorInfo>;
}

/**
 * Reads the header, metadata and tensor directory of a GGUF file (no tensor data), checking what
 * llama.cpp's loader checks: known value and tensor types, no arrays of arrays, unique keys and
 * tensor names shorter than 64 bytes, at most 4 dimensions, element counts that fit, an alignment
 * that is a power of two, each tensor at the running aligned offset with its byte size from its
 * type and shape, all inside the file.
 */
export function readGGUF(path: string): GGUFFile {
  try {
    T.checkedFile(path, "GGUF");
  } catch (e) {
    throw new GGUFError((e as Error).message);
  }
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new GGUFError(`cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const c = new Cursor(fd, size, path);
    if (size < 24 || c.u32() !== 0x46554747) throw new GGUFError(`${path}: not a GGUF file (no 'GGUF' magic)`);
    const version = c.u32();
    if (version < 2 || version > 3) throw new GGUFError(`${path}: GGUF version ${version} is not supported (2 and 3 are)`);
    const tensorCount = c.count("tensor count");
    const kvCount = c.count("metadata count");
    const metadata = new Map<string, GGUFValue>();
    const types = new Map<string, number>();
    const scalar = (type: number): GGUFValue => {
      switch (type) {
        case ValueType.UINT8:
          return c.u8();
        case ValueType.INT8:
          return c.i8();
        case ValueType.UINT16:
          return c.u16();
        case ValueType.INT16:
          return c.i16();
        case ValueType.UINT32:
          return c.u32();
        case ValueType.INT32:
          return c.i32();
        case ValueType.FLOAT32:
          return c.f32();
        case ValueType.BOOL: {
          const b = c.u8();
          if (b > 1) throw new GGUFError(`${path}: invalid boolean value ${b} at byte ${c.pos - 1}`);
          return b === 1;
        }
        case ValueType.STRING:
          return c.string();
        case ValueType.UINT64:
          return c.u64();
        case ValueType.INT64:
          return c.i64();
        case ValueType.FLOAT64:
          return c.f64();
        default:
          throw new GGUFError(`${path}: unknown metadata value type ${type} at byte ${c.pos}`);
      }
    };
    const readValue = (type: number, key: string): GGUFValue => {
      if (type !== ValueType.ARRAY) return scalar(type);
      const itemType = c.u32();
      if (itemType === ValueType.ARRAY) throw new GGUFError(`${path}: metadata '${key}' is an array of arrays, which GGUF readers do not support`);
      const n = c.count("array length");
      const out: GGUFValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = scalar(itemType);
      return out;
    };
    for (let i = 0; i < kvCount; i++) {
      const key = c.string();
      if (metadata.has(key)) throw new GGUFError(`${path}: metadata key '${key.slice(0, 80)}' appears twice`);
      const type = c.u32();
      types.set(key, type);
      metadata.set(key, readValue(type, key));
    }
    const infos: (Omit<GGUFTensorInfo, "offset"> & { bytes: number })[] = [];
    const relative: number[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string();
      if (Buffer.byteLength(name) >= GGML_MAX_NAME)
        throw new GGUFError(`${path}: tensor name '${name.slice(0, 80)}' is ${Buffer.byteLength(name)} bytes (at most ${GGML_MAX_NAME - 1})`);
      if (names.has(name)) throw new GGUFError(`${path}: tensor '${name}' appears twice`);
      names.add(name);
      const nDims = c.u32();
      if (nDims > GGML_MAX_DIMS) throw new GGUFError(`${path}: tensor '${name}' has ${nDims} dimensions (at most ${GGML_MAX_DIMS})`);
      const dims: number[] = [];
      let numel = 1;
      for (let d = 0; d < nDims; d++) {
        const v = c.u64();
        numel *= Number(v);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || !Number.isSafeInteger(numel))
          throw new GGUFError(`${path}: tensor '${name}' has an element count that overflows (dimension ${v})`);
        dims.push(Number(v));
      }
      const type = c.u32();
      const spec = GGML_TYPES[type] ?? GGML_OTHER_TYPES[type];
      if (!spec) throw new GGUFError(`${path}: tensor '${name}' has unknown ggml type ${type}`);
      if ((dims[0] ?? 1) % spec[1] !== 0)
        throw new GGUFError(`${path}: tensor '${name}' has a first dimension ${dims[0]} that is not a multiple of the ${spec[0]} block size ${spec[1]}`);
      relative.push(c.count("tensor offset"));
      infos.push({ name, shape: dims.reverse(), type, bytes: (numel / spec[1]) * spec[2] });
    }
    let alignment = 32;
    if (metadata.has("general.alignment")) {
      const a = metadata.get("general.alignment");
      if (types.get("general.alignment") !== ValueType.UINT32 || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0)
        throw new GGUFError(`${path}: general.alignment must be a non-zero power of two stored as uint32 (got ${String(a)})`);
      alignment = a;
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GGUFTensorInfo>();
    let expected = 0;
    infos.forEach((info, i) => {
      const rel = relative[i]!;
      if (rel !== expected)
        throw new GGUFError(
          `${path}: tensor '${info.name}' has offset ${rel}, expected ${expected} (tensors must follow each other, each aligned to ${alignment} bytes)`,
        );
      const offset = dataStart + rel;
      if (offset + info.bytes > size) throw new GGUFError(`${path}: tensor '${info.name}' runs past the end of the file (truncated?)`);
      expected += Math.ceil(info.bytes / alignment) * alignment;
      tensors.set(info.name, { name: info.name, shape: info.shape, type: info.type, offset });
    });
    return { path, version, metadata, tensors };
  } finally {
    closeSync(fd);
  }
}

const f16Table = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  f16Table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? Number.NaN : s * Number.POSITIVE_INFINITY) : s * (1 + m / 1024) * 2 ** (e - 15);
}

const SUPPORTED = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K";
/** Dequantizes one tensor's raw bytes to float32, as ggml does. */
export function dequantize(raw: Buffer, type: number, numel: number): Float32Array {
  const out = new Float32Array(numel);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (type) {
    case 0:
      for (let i = 0; i < numel; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 1:
      for (let i = 0; i < numel; i++) out[i] = f16Table[view.getUint16(i * 2, true)]!;
      break;
    case 30: {
      const u32 = new Uint32Array(1);
      const f = new Float32Array(u32.buffer);
      for (let i = 0; i < numel; i++) {
        u32[0] = view.getUint16(i * 2, true) << 16;
        out[i] = f[0]!;
      }
      break;
    }
    case 8: // Q8_0: {f16 d; int8 q[32]}; x = q * d
      for (let b = 0, o = 0; o < numel; b += 34, o += 32) {
        const d = f16Table[view.getUint16(b, true)]!;
        for (let j = 0; j < 32; j++) out[o + j] = view.getInt8(b + 2 + j) * d;
      }
      break;
    case 2: // Q4_0: {f16 d; u8 qs[16]}; x[j] = (lo - 8) d, x[j + 16] = (hi - 8) d
      for (let b = 0, o = 0; o < numel; b += 18, o += 32) {
        const d = f16Table[view.getUint16(b, true)]!;
        for (let j = 0; j < 16; j++) {
          const q = raw[b + 2 + j]!;
          out[o + j] = ((q & 0x0f) - 8) * d;
          out[o + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      break;
    case 3: // Q4_1: {f16 d; f16 m; u8 qs[16]}; x[j] = lo d + m, x[j + 16] = hi d + m
      for (let b = 0, o = 0; o < numel; b += 20, o += 32) {
        const d = f16Table[view.getUint16(b, true)]!;
        const m = f16Table[view.getUint16(b + 2, true)]!;
        for (let j = 0; j < 16; j++) {
          const q = raw[b + 4 + j]!;
          out[o + j] = Math.fround(Math.fround((q & 0x0f) * d) + m);
          out[o + j + 16] = Math.fround(Math.fround((q >> 4) * d) + m);
        }
      }
      break;
    case 12: // Q4_K and Q6_K: @pisces/tensor-cuda's loop (ggml's dequantize_row_q4_K / _q6_K)
    case 14: {
      const [, values, bytes] = GGML_TYPES[type]!;
      const format = type === 12 ? "Q4_K" : "Q6_K";
      if (numel % values !== 0 || raw.length < (numel / values) * bytes)
        throw new GGUFError(`${format}: ${numel} values need ${(numel / values) * bytes} bytes`);
      T.scope(() => {
        const packed = T.tensor(raw.subarray(0, (numel / values) * bytes), { shape: [numel / values, bytes], dtype: "uint8" });
        out.set(T.dequantizeGgml(packed, format, values).toArray() as Float32Array);
      });
      break;
    }
    default:
      throw new GGUFError(`tensor type ${GGML_TYPE_NAMES[type] ?? type} is not supported (${SUPPORTED} are)`);
  }
  return out;
}

function readRaw(file: GGUFFile, info: GGUFTensorInfo, bytes: number): Buffer {
  const raw = Buffer.alloc(bytes);
  const fd = openSync(file.path, "r");
  try {
    readSync(fd, raw, 0, raw.length, info.offset);
  } finally {
    closeSync(fd);
  }
  return raw;
}

/** A 2-d tensor's blocks as they are in the file: uint8 (rows, row bytes). */
function readPacked(file: GGUFFile, info: GGUFTensorInfo, format: T.GgmlFormat): T.Tensor {
  const [rows, cols] = info.shape as [number, number];
  const rowBytes = T.packedRowBytes(format, cols);
  return T.fromFile(file.path, { offset: info.offset, shape: [rows, rowBytes], dtype: "uint8" }); // straight into tensor memory
}

function readTensor(file: GGUFFile, info: GGUFTensorInfo): T.Tensor {
  const spec = GGML_TYPES[info.type];
  if (!spec)
    throw new GGUFError(`${file.path}: tensor '${info.name}' has type ${GGML_TYPE_NAMES[info.type] ?? info.type}, which is not supported (${SUPPORTED} are)`);
  const numel = info.shape.reduce((a, b) => a * b, 1);
  if (numel % spec[1] !== 0) throw new GGUFError(`${file.path}: tensor '${info.name}' has ${numel} elements, not a whole number of ${spec[0]} blocks`);
  const raw = readRaw(file, info, (numel / spec[1]) * spec[2]);
  return T.tensor(dequantize(raw, info.type, numel), { shape: info.shape });
}

/** llama.cpp stores q/k rows interleaved for its rotary kernel; this restores Hugging Face's order. */
function unpermuteRotary(w: T.Tensor, heads: number): T.Tensor {
  return T.scope(() => {
    const [rows, cols] = w.shape as [number, number];
    const half = rows / heads / 2;
    return w.reshape([heads, half, 2, cols]).transpose(1, 2).reshape([rows, cols]).contiguous();
  });
}

/** GGUF tensor name -> Hugging Face key (the one rename table, in one place). */
function hfKey(name: string): string | null {
  const layer = /^blk\.(\d+)\.(.+)\.weight$/.exec(name);
  if (layer) {
    const part: Record<string, string> = {
      attn_q: "self_attn.q_proj",
      attn_k: "self_attn.k_proj",
      attn_v: "self_attn.v_proj",
      attn_output: "self_attn.o_proj",
      attn_norm: "input_layernorm",
      ffn_norm: "post_attention_layernorm",
      ffn_gate: "mlp.gate_proj",
      ffn_up: "mlp.up_proj",
      ffn_down: "mlp.down_proj",
    };
    const hf = part[layer[2]!];
    return hf ? `model.layers.${layer[1]}.${hf}.weight` : null;
  }
  return (
    (
      { "token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight" } as Record<
        string,
        string
      >
    )[name] ?? null
  );
}

/** A Hugging Face-style config.json object from a llama GGUF's metadata. */
export function ggufConfig(file: GGUFFile): LlamaConfigJson {
  const md = file.metadata;
  const arch = md.get("general.architecture");
  if (arch !== "llama") throw new GGUFError(`${file.path}: architecture '${String(arch)}' is not supported (only 'llama')`);
  const num = (key: string, fallback?: number): number => {
    const v = md.get(`llama.${key}`);
    if (v === undefined) {
      if (fallback === undefined) throw new GGUFError(`${file.path}: metadata llama.${key} is missing`);
      return fallback;
    }
    if (typeof v !== "number" && typeof v !== "bigint") throw new GGUFError(`${file.path}: metadata llama.${key} must be a number (got ${typeof v})`);
    return Number(v);
  };
  const tokens = md.get("tokenizer.ggml.tokens");
  if (tokens === undefined) throw new GGUFError(`${file.path}: metadata tokenizer.ggml.tokens (the token list) is missing`);
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string"))
    throw new GGUFError(`${file.path}: metadata tokenizer.ggml.tokens must be an array of strings`);
  const vocabSize = num("vocab_size", tokens.length);
  if (tokens.length !== vocabSize) throw new GGUFError(`${file.path}: the token list holds ${tokens.length} tokens but llama.vocab_size is ${vocabSize}`);
  const heads = num("attention.head_count");
  const hidden = num("embedding_length");
  const ids = (key: string): number | null => {
    if (!md.has(key)) return null;
    const v = md.get(key);
    const id = typeof v === "number" || typeof v === "bigint" ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(id) || id < 0 || id >= tokens.length)
      throw new GGUFError(`${file.path}: metadata ${key} = ${String(v)} is not a token id of the ${tokens.length}-token vocabulary`);
    return id;
  };
  const eps = num("attention.layer_norm_rms_epsilon", 1e-5);
  if (!(eps > 0) || !Number.isFinite(eps))
    throw new GGUFError(`${file.path}: metadata llama.attention.layer_norm_rms_epsilon = ${eps} must be a positive finite number`);
  return {
    model_type: "llama",
    vocab_size: vocabSize,
    hidden_size: hidden,
    intermediate_size: num("feed_forward_length"),
    num_hidden_layers: num("block_count"),
    num_attention_heads: heads,
    num_key_value_heads: num("attention.head_count_kv", heads),
    head_dim: num("attention.key_length", num("rope.dimension_count", hidden / heads)),
    max_position_embeddings: num("context_length"),
    rms_norm_eps: eps,
    rope_theta: num("rope.freq_base", 10000),
    tie_word_embeddings: !file.tensors.has("output.weight"),
    bos_token_id: ids("tokenizer.ggml.bos_token_id"),
    eos_token_id: ids("tokenizer.ggml.eos_token_id"),
    pad_token_id: ids("tokenizer.ggml.padding_token_id"),
  };
}

/** GPT-2's byte -> printable character table used by byte-level BPE vocabularies. */
function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  return new Map(bs.map((b, i) => [b, String.fromCodePoint(cs[i]!)]));
}

/** Split patterns llama.cpp names in `tokenizer.ggml.pre` whose merges need them (as transformers' GGUF loader). */
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRE_SPLITS: Record<string, string> = {
  llama3: LLAMA3_SPLIT,
  "llama-v3": LLAMA3_SPLIT,
  "llama-bpe": LLAMA3_SPLIT,
  "smaug-bpe": LLAMA3_SPLIT,
  dbrx: LLAMA3_SPLIT,
};

/** Rebuilds the tokenizer stored in a GGUF file (byte-level BPE, `tokenizer.ggml.model = gpt2`). */
export function ggufTokenizer(file: GGUFFile): AutoTokenizer {
  const md = file.metadata;
  const model = md.get("tokenizer.ggml.model");
  if (model !== "gpt2") throw new GGUFError(`${file.path}: tokenizer model '${String(model)}' is not supported (only byte-level BPE, 'gpt2')`);
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  const types = (md.get("tokenizer.ggml.token_type") as number[] | undefined) ?? [];
  const merges = (md.get("tokenizer.ggml.merges") as string[] | undefined) ?? [];
  const spelling = bytesToUnicode();
  const alphabet = new Set(spelling.values());
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    const spelled = [...t].every((ch) => alphabet.has(ch)) ? t : [...new TextEncoder().encode(t)].map((b) => spelling.get(b)!).join("");
    vocab[spelled] = i;
  });
  const added = tokens
    .map((content, id) => ({ content, id, type: types[id] }))
    .filter((t) => (t.type === 3 && [...t.content].every((ch) => alphabet.has(ch))) || t.type === 4)
    .map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: t.type === 4, special: t.type === 3 }));
  const split = PRE_SPLITS[String(md.get("tokenizer.ggml.pre"))];
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: split === undefined };
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: split
      ? { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: split }, behavior: "Isolated", invert: false }, byteLevel] }
      : byteLevel,
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenAt = (key: string) => (md.has(key) ? tokens[Number(md.get(key))] : undefined);
  const config: Record<string, unknown> = {
    bos_token: tokenAt("tokenizer.ggml.bos_token_id"),
    eos_token: tokenAt("tokenizer.ggml.eos_token_id"),
    unk_token: tokenAt("tokenizer.ggml.unknown_token_id"),
    pad_token: tokenAt("tokenizer.ggml.padding_token_id"),
  };
  const template = md.get("tokenizer.chat_template");
  if (template !== undefined && typeof template !== "string") throw new GGUFError(`${file.path}: metadata tokenizer.chat_template must be a string`);
  return AutoTokenizer.fromObjects(json, config, template ?? null, `${file.path} (tokenizer.chat_template)`);
}

/** Options of `loadGGUF`. */
export interface GGUFLoadOptions extends ModelOptions {
  /**
   * false (the default): Q4_0, Q4_1 and Q8_0 weights of the linear layers and the embedding stay
   * packed as in the file (`T.QuantizedLinear` / `T.QuantizedEmbedding`, inference in float32; the
   * other tensors are dequantized). true: every tensor is dequantized to float32, then cast to
   * `dtype` (a model that trains, or runs in bf16).
   */
  dequantize?: boolean;
  /**
   * true: the packed weights of a CPU model are copied into one region in the order a decode step
   * reads them (layer by layer, q k v o gate up down, then the embedding / lm_head), 2 MiB aligned
   * and advised for transparent huge pages (`T.packTogether`). false (the default): each weight
   * keeps its own allocation. Measured on SmolLM2-135M Q4_1 (2 threads, batch 1, six alternating
   * runs, AMD EPYC 2 cores): 6.84 vs 7.04 ms a token at best, 7.51 vs 7.28 median, with 92 MB in
   * huge pages: no gain above the noise, so the plain layout stays the default.
   */
  hugePages?: boolean;
}

/** The order a decode step reads a layer's packed weights in (the embedding and lm_head after every layer). */
const READ_ORDER = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];
function readRank(key: string): number {
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(key);
  return m ? Number(m[1]) * READ_ORDER.length + READ_ORDER.indexOf(m[2]!) : Number.MAX_SAFE_INTEGER;
}

/** The Hugging Face keys whose weights can stay packed: every linear layer and the embedding. */
const PACKABLE = /^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)|lm_head|model\.embed_tokens)\.weight$/;

/**
 * Loads a Llama-architecture GGUF checkpoint: the model and the tokenizer from its metadata. By
 * default quantized weights stay quantized (see `GGUFLoadOptions.dequantize`); a model loaded so is
 * for inference (no `resizeTokenEmbeddings`, no gradients to the packed weights).
 */
export function loadGGUF(path: string, options: GGUFLoadOptions = {}): { model: LlamaForCausalLM; tokenizer: AutoTokenizer; config: LlamaConfigJson } {
  const file = readGGUF(path);
  const json = ggufConfig(file);
  const what = `${path} (GGUF metadata)`;
  const { config } = resolveLlamaConfig(json, what);
  const tokenizer = ggufTokenizer(file);
  const { dequantize: dequantizeAll = false, hugePages = false, ...modelOptions } = options;
  const { dtype, device } = T.resolveLoadOptions(modelOptions);
  // A lazy state dict under Hugging Face keys: each tensor is dequantized (and q/k un-permuted) when loaded.
  const byKey = new Map<string, GGUFTensorInfo>();
  for (const info of file.tensors.values()) {
    if (info.name === "rope_freqs.weight") continue; // Llama 3.1's RoPE scaling as a tensor: applied below
    const key = hfKey(info.name);
    if (key === null) throw new GGUFError(`${path}: unexpected tensor '${info.name}' for a llama model`);
    byKey.set(key, info);
  }
  const rotaryHeads = (k: string) => (k.endsWith("q_proj.weight") ? config.numAttentionHeads : k.endsWith("k_proj.weight") ? config.numKeyValueHeads : 0);
  /** q/k rows back in Hugging Face's order (float or packed: whole rows move); other weights as they are. */
  const inHfOrder = (k: string, t: T.Tensor): T.Tensor => {
    const heads = rotaryHeads(k);
    if (!heads) return t;
    const fixed = unpermuteRotary(t, heads);
    t.dispose();
    return fixed;
  };
  // The weights that stay packed, read now (q/k rows un-permuted: whole rows of blocks move).
  const packed = new Map<string, { tensor: T.Tensor; format: T.GgmlFormat; shape: number[] }>();
  if (!dequantizeAll)
    for (const [k, info] of byKey) {
      const format = T.ggmlFormatOf(info.type);
      if (!format || !PACKABLE.test(k) || info.shape.length !== 2) continue;
      if (dtype !== "float32") {
        for (const p of packed.values()) p.tensor.dispose();
        throw new GGUFError(`${path}: quantized weights stay packed for float32 inference; for dtype ${dtype} pass { dequantize: true }`);
      }
      let t = inHfOrder(k, readPacked(file, info, format));
      if (device !== "cpu") {
        const moved = t.to(device);
        t.dispose();
        t = moved;
      }
      packed.set(k, { tensor: T.keep(t), format, shape: info.shape.slice() });
    }
  if (hugePages && device === "cpu" && packed.size) {
    const order = [...packed.keys()].sort((a, b) => readRank(a) - readRank(b));
    const copies = T.packTogether(order.map((k) => packed.get(k)!.tensor));
    order.forEach((k, i) => {
      const p = packed.get(k)!;
      p.tensor.dispose();
      p.tensor = T.keep(copies[i]!);
    });
  }
  const embed = packed.get("model.embed_tokens.weight");
  if (config.tieWordEmbeddings && embed && !byKey.has("lm_head.weight")) packed.set("lm_head.weight", embed);
  const keys = [...byKey.keys()].filter((k) => !packed.has(k));
  const weights = {
    keys: () => keys,
    shapeOf: (k: string) => byKey.get(k)!.shape.slice(),
    get: (k: string) => inHfOrder(k, readTensor(file, byKey.get(k)!)),
  };
  const source = embed && config.tieWordEmbeddings ? weights : withTiedLmHead(weights, config.tieWordEmbeddings);
  let model: LlamaForCausalLM;
  try {
    model = T.loadPretrained({
      what,
      weights: source,
      options: modelOptions,
      extraTensors: 3 * packed.size, // each swapped layer: its meta weight, and the packed buffer
      build: (o) => {
        const m = new LlamaForCausalLM(config, o);
        const byPath = new Map(m.namedModules());
        for (const [k, { tensor, format, shape }] of packed) {
          const [rows, cols] = shape as [number, number];
          const path = k.slice(0, -".weight".length);
          const replaced = byPath.get(path)!;
          if (k === "model.embed_tokens.weight") replaceModule(m, path, new T.QuantizedEmbedding(rows, cols, format, tensor));
          else replaceModule(m, path, new T.QuantizedLinear(cols, rows, format, tensor));
          disposeReplaced(m, replaced);
        }
        return m;
      },
    });
  } catch (e) {
    for (const p of packed.values()) p.tensor.dispose();
    throw e;
  }
  const ropeFreqs = file.tensors.get("rope_freqs.weight");
  if (ropeFreqs) {
    // llama.cpp divides each rotary frequency by its factor (ggml_rope_ext's freq_factors); the
    // converter writes factors that turn the plain frequencies into Llama 3.1's scaled ones.
    const half = config.headDim / 2;
    if (ropeFreqs.shape.length !== 1 || ropeFreqs.shape[0] !== half || ropeFreqs.type !== 0) {
      model.dispose();
      throw new GGUFError(`${path}: rope_freqs.weight must be F32 [${half}] (head_dim / 2), got type ${ropeFreqs.type} [${ropeFreqs.shape.join(", ")}]`);
    }
    const factors = readTensor(file, ropeFreqs);
    try {
      if (!(T.scope(() => factors.min().item()) > 0)) {
        model.dispose();
        throw new GGUFError(`${path}: rope_freqs.weight holds a factor <= 0 (or NaN)`);
      }
      const rotary = model.model.rotary_emb;
      const plain = rotary.inv_freq;
      rotary.inv_freq = T.keep(plain.div(factors));
      plain.dispose();
    } finally {
      factors.dispose();
    }
  }
  model.model.rotary_emb.to(device);
  return { model, tokenizer, config: json };
}
