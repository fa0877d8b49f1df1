// safetensors reading and writing. Reading is lazy: the header is parsed and validated up front
// (the same checks as the reference `safetensors` crate), and each tensor is read from disk into
// its own storage only when asked for, so a checkpoint never needs two copies in memory.
// Writing goes to a temporary file beside the target, fsynced, then renamed (atomic).
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { type DType, DTYPE_SIZE, dtypeCode } from "./dtype.js";
import { readJsonFile } from "./config.js";
import { SafetensorsError } from "./errors.js";
import { checkedFile, removeStaleTemporaries, temporaryPathFor } from "./files.js";
import { native } from "./native.js";
import { parseStrictJson, type StrictJson } from "./strict-json.js";
import { type Device, Tensor } from "./tensor.js";

/** The reference implementation refuses headers above 100 MB. */
export const MAX_HEADER_SIZE = 100_000_000;

const ST_TO_DTYPE: Record<string, DType> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};
const DTYPE_TO_ST = Object.fromEntries(Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;
/** dtypes valid in the format that this library cannot hold (named in errors). */
const KNOWN_UNSUPPORTED = new Set(["U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"]);

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** Byte offsets [begin, end) inside the data section. */
  dataOffsets: [number, number];
}

export interface LoadOptions {
  dtype?: DType;
  device?: Device;
}

/** One safetensors file, header parsed and validated; tensors are read on demand. */
export class SafetensorsFile {
  readonly metadata: Record<string, string>;
  readonly tensors: Map<string, TensorInfo>;
  private readonly dataStart: number;

  constructor(readonly path: string) {
    try {
      checkedFile(path, "safetensors");
    } catch (e) {
      throw new SafetensorsError("IO", (e as Error).message.startsWith(path) ? (e as Error).message.slice(path.length + 2) : (e as Error).message, path);
    }
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (e) {
      throw new SafetensorsError("IO", `cannot open: ${(e as Error).message}`, path);
    }
    try {
      const fileSize = fstatSync(fd).size;
      if (fileSize < 8)
        throw new SafetensorsError("HEADER_TOO_SMALL", `file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`, path);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = lenBuf.readBigUInt64LE(0);
      if (headerLen > BigInt(MAX_HEADER_SIZE))
        throw new SafetensorsError("HEADER_TOO_LARGE", `header length ${headerLen} exceeds the ${MAX_HEADER_SIZE}-byte limit (corrupt file?)`, path);
      const n = Number(headerLen);
      if (8 + n > fileSize)
        throw new SafetensorsError("INVALID_HEADER", `header length ${n} runs past the end of the ${fileSize}-byte file (truncated?)`, path);
      const headerBuf = Buffer.alloc(n);
      readSync(fd, headerBuf, 0, n, 8);
      const parsed = parseHeader(headerBuf, path);
      this.metadata = parsed.metadata;
      this.tensors = parsed.tensors;
      this.dataStart = 8 + n;
      validateOffsets(this.tensors, fileSize - this.dataStart, path);
    } finally {
      closeSync(fd);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  shapeOf(name: string): number[] {
    return this.info(name).shape.slice();
  }
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError("MISSING_TENSOR", `no tensor named '${name}'`, this.path);
    return info;
  }

  /** Reads one tensor (straight from disk into libtorch memory), optionally cast and moved. */
  get(name: string, options: LoadOptions = {}): Tensor {
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    let t: Tensor;
    // bool is read as bytes and normalised to 0/1 as torch does (a byte of 2 means true)
    const stored = info.dtype === "bool" ? "uint8" : info.dtype;
    try {
      t = new Tensor(native.readFile(this.path, this.dataStart + begin, end - begin, info.shape, dtypeCode(stored)));
    } catch (e) {
      throw new SafetensorsError("TRUNCATED", `reading '${name}': ${(e as Error).message}`, this.path);
    }
    if (info.dtype === "bool") {
      const b = t.ne(0);
      t.dispose();
      t = b;
    }
    if (options.dtype === undefined && options.device === undefined) return t;
    const moved = t.to({ dtype: options.dtype, device: options.device });
    if (moved !== t) t.dispose();
    return moved;
  }
}

function parseHeader(buf: Buffer, path: string): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  let text: string;
  try {
    // ignoreBOM keeps a leading U+FEFF in the text, so a BOM before the header is rejected below
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    throw new SafetensorsError("INVALID_HEADER", "header is not valid UTF-8", path);
  }
  if (!text.startsWith("{"))
    throw new SafetensorsError(
      "INVALID_HEADER",
      text.charCodeAt(0) === 0xfeff
        ? "header starts with a byte-order mark; it must start with '{'"
        : "header does not start with '{' (not a safetensors file?)",
      path,
    );
  let json: StrictJson;
  try {
    json = parseStrictJson(text);
  } catch (e) {
    throw new SafetensorsError("INVALID_JSON", `header is not valid JSON: ${(e as Error).message}`, path);
  }
  if (!(json instanceof Map)) throw new SafetensorsError("INVALID_JSON", "header must be a JSON object", path);
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of json) {
    if (name === "__metadata__") {
      if (!(value instanceof Map)) throw new SafetensorsError("INVALID_METADATA", "__metadata__ must be an object of strings", path);
      for (const [k, v] of value) {
        if (typeof v !== "string") throw new SafetensorsError("INVALID_METADATA", `__metadata__.${k} must be a string`, path);
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (!(value instanceof Map)) throw new SafetensorsError("INVALID_HEADER", `entry '${name}' must be an object with dtype, shape and data_offsets`, path);
    const extra = [...value.keys()].filter((k) => k !== "dtype" && k !== "shape" && k !== "data_offsets");
    if (extra.length) throw new SafetensorsError("INVALID_HEADER", `entry '${name}' has unknown field '${extra[0]}'`, path);
    const dtypeName = value.get("dtype");
    if (typeof dtypeName !== "string") throw new SafetensorsError("INVALID_HEADER", `entry '${name}' has no dtype string`, path);
    const dtype = ST_TO_DTYPE[dtypeName];
    if (!dtype || !Object.hasOwn(ST_TO_DTYPE, dtypeName))
      throw new SafetensorsError(
        "UNKNOWN_DTYPE",
        KNOWN_UNSUPPORTED.has(dtypeName)
          ? `tensor '${name}' has dtype ${dtypeName}, which @pisces/tensor-cuda does not support`
          : `tensor '${name}' has unknown dtype '${dtypeName.slice(0, 40)}'`,
        path,
      );
    const shape = value.get("shape");
    if (!Array.isArray(shape) || shape.length > 64 || !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError("INVALID_SHAPE", `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`, path);
    const offs = value.get("data_offsets");
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError("INVALID_OFFSETS", `tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`, path);
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new SafetensorsError("INVALID_OFFSETS", `tensor '${name}' ends (${end}) before it begins (${begin})`, path);
    // checked multiplication in order, as the reference crate: an intermediate overflow is an error even if a later 0 would hide it
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel))
        throw new SafetensorsError("SIZE_MISMATCH", `tensor '${name}': the element count of shape [${(shape as number[]).join(", ")}] overflows`, path);
    }
    const nbytes = numel * DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(nbytes) || nbytes !== end - begin)
      throw new SafetensorsError(
        "SIZE_MISMATCH",
        `tensor '${name}': shape [${(shape as number[]).join(", ")}] of ${dtypeName} needs ${nbytes} bytes but data_offsets span ${end - begin}`,
        path,
      );
    tensors.set(name, { dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }
  return { metadata, tensors };
}

function validateOffsets(tensors: Map<string, TensorInfo>, dataSize: number, path: string): void {
  const sorted = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let expected = 0;
  for (const [name, info] of sorted) {
    const [begin, end] = info.dataOffsets;
    if (begin !== expected)
      throw new SafetensorsError(
        "INVALID_OFFSETS",
        begin < expected
          ? `tensor '${name}' starts at byte ${begin}, overlapping the previous tensor (which ends at ${expected})`
          : `tensor '${name}' starts at byte ${begin}, leaving a gap after byte ${expected}`,
        path,
      );
    expected = end;
  }
  if (expected > dataSize)
    throw new SafetensorsError("TRUNCATED", `tensor data ends at byte ${expected} but the file holds only ${dataSize} data bytes (truncated?)`, path);
  if (expected < dataSize) throw new SafetensorsError("INVALID_OFFSETS", `the file holds ${dataSize - expected} bytes after the last tensor`, path);
}

/**
 * A lazy view of a checkpoint: a single `.safetensors` file, or a sharded one through its
 * `*.safetensors.index.json` (`weight_map`: tensor name -> shard file). Also accepts a folder,
 * where it looks for `model.safetensors.index.json`, then `model.safetensors`.
 */
export class SafetensorsReader {
  readonly metadata: Record<string, string>;
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly weightMap: Map<string, string>;

  constructor(readonly path: string) {
    if (path.endsWith(".json")) {
      let index: { metadata?: Record<string, unknown>; weight_map?: Record<string, unknown> };
      try {
        index = readJsonFile(path, "shard index") as typeof index;
      } catch (e) {
        throw new SafetensorsError("INVALID_INDEX", `cannot read the shard index: ${(e as Error).message}`, path);
      }
      if (!index || typeof index !== "object" || typeof index.weight_map !== "object" || index.weight_map === null || Array.isArray(index.weight_map))
        throw new SafetensorsError("INVALID_INDEX", "the shard index has no weight_map object", path);
      this.weightMap = new Map();
      const dir = dirname(path);
      for (const [name, file] of Object.entries(index.weight_map)) {
        if (typeof file !== "string" || file.includes("/") || file.includes("\\") || file === "." || file === ".." || file.length === 0)
          throw new SafetensorsError("INVALID_INDEX", `weight_map['${name}'] must be a file name in the same folder`, path);
        this.weightMap.set(name, join(dir, file));
      }
      for (const shard of new Set(this.weightMap.values())) {
        if (!existsSync(shard)) throw new SafetensorsError("IO", `shard ${basename(shard)} named by the index is missing`, path);
        const f = new SafetensorsFile(shard);
        this.files.set(shard, f);
      }
      for (const [name, shard] of this.weightMap)
        if (!this.files.get(shard)!.has(name))
          throw new SafetensorsError("INVALID_INDEX", `the index places '${name}' in ${basename(shard)}, which does not hold it`, path);
      this.metadata = Object.fromEntries(Object.entries(index.metadata ?? {}).map(([k, v]) => [k, String(v)]));
    } else {
      const f = new SafetensorsFile(path);
      this.files.set(path, f);
      this.weightMap = new Map(f.keys().map((k) => [k, path]));
      this.metadata = f.metadata;
    }
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }
  has(name: string): boolean {
    return this.weightMap.has(name);
  }
  private file(name: string): SafetensorsFile {
    const shard = this.weightMap.get(name);
    if (shard === undefined) throw new SafetensorsError("MISSING_TENSOR", `no tensor named '${name}'`, this.path);
    return this.files.get(shard)!;
  }
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }
  shapeOf(name: string): number[] {
    return this.file(name).shapeOf(name);
  }
  get(name: string, options: LoadOptions = {}): Tensor {
    return this.file(name).get(name, options);
  }
  /** Reads every tensor into a Map (all in memory at once; prefer get() for big checkpoints). */
  toMap(options: LoadOptions = {}): Map<string, Tensor> {
    return new Map(this.keys().map((k) => [k, this.get(k, options)]));
  }
  *[Symbol.iterator](): Iterator<[string, Tensor]> {
    for (const k of this.keys()) yield [k, this.get(k)];
  }
}

/** The checkpoint names a model folder may hold, in the order they are looked for (shards first). */
export const WEIGHT_FILES = ["model.safetensors.index.json", "model.safetensors"] as const;

/** The first of `names` present in `dir`, or undefined. */
export function weightsFileIn(dir: string, names: readonly string[] = WEIGHT_FILES): string | undefined {
  return names.map((n) => join(dir, n)).find((p) => existsSync(p));
}

/** Opens a safetensors checkpoint (file, shard index or folder) for lazy, validated reading. */
export function loadSafetensors(path: string): SafetensorsReader {
  // stat, not open: opening a FIFO would block
  const named = path.endsWith(".json") || path.endsWith(".safetensors"); // a file name: a folder there is an error
  if (!named && statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    const file = weightsFileIn(path);
    if (!file) throw new SafetensorsError("IO", "folder holds neither model.safetensors nor model.safetensors.index.json", path);
    return new SafetensorsReader(file);
  }
  return new SafetensorsReader(path);
}

/**
 * Writes tensors to `path` in the safetensors format, atomically: the bytes go to a temporary
 * file in the same folder, which is fsynced and renamed over `path` only when complete.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
  options: { /** @internal chunk size of the writes (tests) */ chunkBytes?: number } = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== "string") throw new TypeError(`saveSafetensors(): metadata '${k}' must be a string`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const plan: { name: string; tensor: Tensor; nbytes: number }[] = [];
  for (const [name, tensor] of entries) {
    if (!(tensor instanceof Tensor)) throw new TypeError(`saveSafetensors(): '${name}' is not a Tensor`);
    if (tensor.isDisposed) throw new TypeError(`saveSafetensors(): '${name}' was disposed`);
    const dtype = tensor.dtype;
    const nbytes = tensor.numel() * DTYPE_SIZE[dtype];
    header[name] = { dtype: DTYPE_TO_ST[dtype], shape: tensor.shape, data_offsets: [offset, offset + nbytes] };
    plan.push({ name, tensor, nbytes });
    offset += nbytes;
  }
  let headerText = JSON.stringify(header);
  headerText += " ".repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8); // align the data to 8 bytes
  const headerBuf = Buffer.from(headerText, "utf8");
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));

  removeStaleTemporaries(path);
  const tmp = temporaryPathFor(path);
  const fd = openSync(tmp, "w");
  let ok = false;
  try {
    writeAll(fd, lenBuf);
    writeAll(fd, headerBuf);
    for (const { tensor, nbytes } of plan) {
      if (nbytes === 0) continue;
      writeTensorBytes(fd, tensor, nbytes, options.chunkBytes ?? WRITE_CHUNK_BYTES);
    }
    fsyncSync(fd);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(tmp, { force: true });
  }
  renameSync(tmp, path);
}

/** Tensors are written in chunks of this many bytes, so no JS buffer ever holds a whole large tensor. */
const WRITE_CHUNK_BYTES = 256 * 1024 * 1024;

function writeAll(fd: number, bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
}

/** Writes a tensor's bytes (C order, little-endian as stored) chunk by chunk, straight from its storage. */
function writeTensorBytes(fd: number, tensor: Tensor, nbytes: number, chunkBytes: number): void {
  if (nbytes <= chunkBytes) {
    writeAll(fd, new Uint8Array(native.toBuffer(tensor._h)));
    return;
  }
  // a flat byte view of the contiguous CPU tensor; each chunk is a narrow slice copied out on its own
  const cpu = tensor.device === "cpu" ? tensor.contiguous() : tensor.to("cpu").contiguous();
  const bytes = cpu.dtype === "bool" ? cpu.to("uint8") : cpu.reshape([-1]).view("uint8");
  try {
    for (let start = 0; start < nbytes; start += chunkBytes) {
      const piece = bytes.slice(0, start, Math.min(nbytes, start + chunkBytes)).contiguous();
      try {
        writeAll(fd, new Uint8Array(native.toBuffer(piece._h)));
      } finally {
        piece.dispose();
      }
    }
  } finally {
    if (bytes !== cpu) bytes.dispose();
    if (cpu !== tensor) cpu.dispose();
  }
}
