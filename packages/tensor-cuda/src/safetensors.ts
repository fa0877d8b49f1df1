// safetensors reading and writing. Reading is lazy: the header is parsed and validated up front
// (the same checks as the reference `safetensors` crate), and each tensor is read from disk into
// its own storage only when asked for, so a checkpoint never needs two copies in memory.
// Writing goes to a temporary file beside the target, fsynced, then renamed (atomic).
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { type DType, DTYPE_SIZE, dtypeCode } from "./dtype.js";
import { SafetensorsError } from "./errors.js";
import { native } from "./native.js";
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
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (e) {
      throw new SafetensorsError("IO", `cannot open: ${(e as Error).message}`, path);
    }
    try {
      const fileSize = fstatSync(fd).size;
      if (fileSize < 8) throw new SafetensorsError("HEADER_TOO_SMALL", `file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`, path);
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
    try {
      t = new Tensor(native.readFile(this.path, this.dataStart + begin, end - begin, info.shape, dtypeCode(info.dtype)));
    } catch (e) {
      throw new SafetensorsError("TRUNCATED", `reading '${name}': ${(e as Error).message}`, this.path);
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
    text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw new SafetensorsError("INVALID_HEADER", "header is not valid UTF-8", path);
  }
  if (!text.startsWith("{")) throw new SafetensorsError("INVALID_HEADER", "header does not start with '{' (not a safetensors file?)", path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError("INVALID_JSON", `header is not valid JSON: ${(e as Error).message}`, path);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new SafetensorsError("INVALID_JSON", "header must be a JSON object", path);
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (value === null || typeof value !== "object" || Array.isArray(value))
        throw new SafetensorsError("INVALID_METADATA", "__metadata__ must be an object of strings", path);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") throw new SafetensorsError("INVALID_METADATA", `__metadata__.${k} must be a string`, path);
        metadata[k] = v;
      }
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (entry === null || typeof entry !== "object")
      throw new SafetensorsError("INVALID_HEADER", `entry '${name}' must be an object with dtype, shape and data_offsets`, path);
    if (typeof entry.dtype !== "string") throw new SafetensorsError("INVALID_HEADER", `entry '${name}' has no dtype string`, path);
    const dtype = ST_TO_DTYPE[entry.dtype];
    if (!dtype)
      throw new SafetensorsError(
        "UNKNOWN_DTYPE",
        KNOWN_UNSUPPORTED.has(entry.dtype)
          ? `tensor '${name}' has dtype ${entry.dtype}, which @pisces/tensor-cuda does not support`
          : `tensor '${name}' has unknown dtype '${entry.dtype}'`,
        path,
      );
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError("INVALID_SHAPE", `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`, path);
    const offs = entry.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError("INVALID_OFFSETS", `tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`, path);
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new SafetensorsError("INVALID_OFFSETS", `tensor '${name}' ends (${end}) before it begins (${begin})`, path);
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const nbytes = numel * DTYPE_SIZE[dtype];
    if (!Number.isSafeInteger(nbytes) || nbytes !== end - begin)
      throw new SafetensorsError(
        "SIZE_MISMATCH",
        `tensor '${name}': shape [${(shape as number[]).join(", ")}] of ${entry.dtype} needs ${nbytes} bytes but data_offsets span ${end - begin}`,
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
  if (expected < dataSize)
    throw new SafetensorsError("INVALID_OFFSETS", `the file holds ${dataSize - expected} bytes after the last tensor`, path);
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
        index = JSON.parse(readFileSync(path, "utf8"));
      } catch (e) {
        throw new SafetensorsError("INVALID_INDEX", `cannot read the shard index: ${(e as Error).message}`, path);
      }
      if (!index || typeof index.weight_map !== "object" || index.weight_map === null)
        throw new SafetensorsError("INVALID_INDEX", "the shard index has no weight_map object", path);
      this.weightMap = new Map();
      const dir = dirname(path);
      for (const [name, file] of Object.entries(index.weight_map)) {
        if (typeof file !== "string" || file.includes("/") || file.includes("\\"))
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

/** Opens a safetensors checkpoint (file, shard index or folder) for lazy, validated reading. */
export function loadSafetensors(path: string): SafetensorsReader {
  if (existsSync(path) && !path.endsWith(".json") && !path.endsWith(".safetensors")) {
    try {
      if (fstatIsDir(path)) {
        const index = join(path, "model.safetensors.index.json");
        if (existsSync(index)) return new SafetensorsReader(index);
        const single = join(path, "model.safetensors");
        if (existsSync(single)) return new SafetensorsReader(single);
        throw new SafetensorsError("IO", "folder holds neither model.safetensors nor model.safetensors.index.json", path);
      }
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
    }
  }
  return new SafetensorsReader(path);
}

function fstatIsDir(path: string): boolean {
  const fd = openSync(path, "r");
  try {
    return fstatSync(fd).isDirectory();
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes tensors to `path` in the safetensors format, atomically: the bytes go to a temporary
 * file in the same folder, which is fsynced and renamed over `path` only when complete.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== "string") throw new TypeError(`saveSafetensors(): metadata '${k}' must be a string`);
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

  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(tmp, "w");
  let ok = false;
  try {
    writeSync(fd, lenBuf);
    writeSync(fd, headerBuf);
    for (const { tensor, nbytes } of plan) {
      if (nbytes === 0) continue;
      const bytes = new Uint8Array(native.toBuffer(tensor._h));
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    }
    fsyncSync(fd);
    ok = true;
  } finally {
    closeSync(fd);
    if (!ok) rmSync(tmp, { force: true });
  }
  renameSync(tmp, path);
}
