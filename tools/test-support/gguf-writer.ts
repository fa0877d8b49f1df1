// A small GGUF v3 writer for tests and the fuzz harness: builds valid llama-architecture files
// (F32 tensors) and lets a test break one thing at a time (a tensor's type, its offset, the
// alignment, a metadata value). Format: github.com/ggml-org/ggml/blob/master/docs/gguf.md.

export const GGUF_TYPE = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;

export type GgufMeta =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "u64"; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "strings"; value: string[] }
  | { type: "i32s"; value: number[] }
  | { type: "f32s"; value: number[] }
  /** raw bytes after the key (type id included): for malformed values */
  | { type: "raw"; bytes: Buffer };

export interface GgufTensor {
  name: string;
  /** PyTorch order (outermost first); written innermost first as GGUF does. */
  shape: number[];
  /** ggml type (0 = F32). */
  type?: number;
  data: Float32Array | Buffer;
}

export interface GgufOptions {
  /** Override a tensor's stored relative offset. */
  offsets?: Record<string, bigint>;
  /** Alignment used to lay out data (the metadata value is written only if given in `metadata`). */
  alignment?: number;
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u64 = (v: bigint | number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const str = (s: string) => {
  const bytes = Buffer.from(s, "utf8");
  return Buffer.concat([u64(bytes.length), bytes]);
};

function metaValue(m: GgufMeta): Buffer {
  switch (m.type) {
    case "u32":
      return Buffer.concat([u32(GGUF_TYPE.UINT32), u32(m.value)]);
    case "i32": {
      const b = Buffer.alloc(4);
      b.writeInt32LE(m.value);
      return Buffer.concat([u32(GGUF_TYPE.INT32), b]);
    }
    case "f32": {
      const b = Buffer.alloc(4);
      b.writeFloatLE(m.value);
      return Buffer.concat([u32(GGUF_TYPE.FLOAT32), b]);
    }
    case "u64":
      return Buffer.concat([u32(GGUF_TYPE.UINT64), u64(m.value)]);
    case "bool":
      return Buffer.concat([u32(GGUF_TYPE.BOOL), Buffer.from([m.value ? 1 : 0])]);
    case "string":
      return Buffer.concat([u32(GGUF_TYPE.STRING), str(m.value)]);
    case "strings":
      return Buffer.concat([u32(GGUF_TYPE.ARRAY), u32(GGUF_TYPE.STRING), u64(m.value.length), ...m.value.map(str)]);
    case "i32s":
      return Buffer.concat([
        u32(GGUF_TYPE.ARRAY),
        u32(GGUF_TYPE.INT32),
        u64(m.value.length),
        ...m.value.map((v) => {
          const b = Buffer.alloc(4);
          b.writeInt32LE(v);
          return b;
        }),
      ]);
    case "f32s":
      return Buffer.concat([u32(GGUF_TYPE.ARRAY), u32(GGUF_TYPE.FLOAT32), u64(m.value.length), Buffer.from(new Float32Array(m.value).buffer)]);
    case "raw":
      return m.bytes;
  }
}

/** Serialises a GGUF v3 file. */
export function writeGguf(metadata: [string, GgufMeta][], tensors: GgufTensor[], options: GgufOptions = {}): Buffer {
  const alignment = options.alignment ?? 32;
  const parts: Buffer[] = [Buffer.from("GGUF", "latin1"), u32(3), u64(tensors.length), u64(metadata.length)];
  for (const [k, v] of metadata) parts.push(str(k), metaValue(v));
  let offset = 0;
  const datas: Buffer[] = [];
  for (const t of tensors) {
    const data = t.data instanceof Float32Array ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) : t.data;
    parts.push(str(t.name), u32(t.shape.length), ...[...t.shape].reverse().map((d) => u64(d)), u32(t.type ?? 0), u64(options.offsets?.[t.name] ?? BigInt(offset)));
    const padded = Math.ceil(data.length / alignment) * alignment;
    datas.push(Buffer.concat([data, Buffer.alloc(padded - data.length)]));
    offset += padded;
  }
  const header = Buffer.concat(parts);
  const pad = Math.ceil(header.length / alignment) * alignment - header.length;
  return Buffer.concat([header, Buffer.alloc(pad), ...datas]);
}

/** A tiny valid llama GGUF: vocab 8 byte-level tokens, width 8, 1 layer, 2 heads, F32. */
export function tinyLlamaGguf(edit: (m: Map<string, GgufMeta>, t: GgufTensor[], o: GgufOptions) => void = () => {}): Buffer {
  const V = 8;
  const H = 8;
  const I = 16;
  const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 97 + i * 13.7) * 0.5);
  const meta = new Map<string, GgufMeta>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.alignment", { type: "u32", value: 32 }],
    ["llama.block_count", { type: "u32", value: 1 }],
    ["llama.context_length", { type: "u32", value: 64 }],
    ["llama.embedding_length", { type: "u32", value: H }],
    ["llama.feed_forward_length", { type: "u32", value: I }],
    ["llama.attention.head_count", { type: "u32", value: 2 }],
    ["llama.attention.head_count_kv", { type: "u32", value: 2 }],
    ["llama.rope.dimension_count", { type: "u32", value: 4 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.rope.freq_base", { type: "f32", value: 10000 }],
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.tokens", { type: "strings", value: ["a", "b", "c", "d", "e", "f", "<s>", "</s>"] }],
    ["tokenizer.ggml.token_type", { type: "i32s", value: [1, 1, 1, 1, 1, 1, 3, 3] }],
    ["tokenizer.ggml.merges", { type: "strings", value: [] }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: 6 }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: 7 }],
    ["tokenizer.chat_template", { type: "string", value: "{% for m in messages %}{{ m['content'] }}{% endfor %}" }],
  ]);
  const tensors: GgufTensor[] = [
    { name: "token_embd.weight", shape: [V, H], data: rand(V * H, 1) },
    { name: "blk.0.attn_norm.weight", shape: [H], data: rand(H, 2) },
    { name: "blk.0.attn_q.weight", shape: [H, H], data: rand(H * H, 3) },
    { name: "blk.0.attn_k.weight", shape: [H, H], data: rand(H * H, 4) },
    { name: "blk.0.attn_v.weight", shape: [H, H], data: rand(H * H, 5) },
    { name: "blk.0.attn_output.weight", shape: [H, H], data: rand(H * H, 6) },
    { name: "blk.0.ffn_norm.weight", shape: [H], data: rand(H, 7) },
    { name: "blk.0.ffn_gate.weight", shape: [I, H], data: rand(I * H, 8) },
    { name: "blk.0.ffn_up.weight", shape: [I, H], data: rand(I * H, 9) },
    { name: "blk.0.ffn_down.weight", shape: [H, I], data: rand(H * I, 10) },
    { name: "output_norm.weight", shape: [H], data: rand(H, 11) },
  ];
  const options: GgufOptions = {};
  edit(meta, tensors, options);
  return writeGguf([...meta.entries()], tensors, options);
}
