// Creating tensors: from JS data, filled, ranges and random. PyTorch's defaults: float32 for
// floats, int64 for integers, bool for booleans, CPU unless a device is given.
import { availableParallelism } from "node:os";
import { type AnyTypedArray, type DType, dtypeCode, dtypeOfTypedArray } from "./dtype.js";
import { native, op } from "./native.js";
import { checkSeed, type Device, Generator, type RandomOptions, type Shape, Tensor, type TensorOptions } from "./tensor.js";

const O = {
  zeros: op("zeros"),
  ones: op("ones"),
  full: op("full"),
  empty: op("empty.memory_format"),
  arange: op("arange.start_step"),
  linspace: op("linspace"),
  randn: op("randn.generator"),
  rand: op("rand.generator"),
  randint: op("randint.low_generator"),
  zerosLike: op("zeros_like"),
  onesLike: op("ones_like"),
  fullLike: op("full_like"),
  emptyLike: op("empty_like"),
  randnLike: op("randn_like"),
  randLike: op("rand_like"),
  cat: op("cat"),
  stack: op("stack"),
  where: op("where.self"),
  whereTS: op("where.ScalarOther"),
  whereST: op("where.ScalarSelf"),
  whereSS: op("where.Scalar"),
  eye: op("eye"),
};

function checkShape(shape: unknown, fn: string): asserts shape is Shape {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new TypeError(`${fn}(): expected a shape as an array of non-negative integers, e.g. [2, 3]; got ${JSON.stringify(shape)}`);
}

const dt = (dtype?: DType) => (dtype === undefined ? null : dtypeCode(dtype));

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

type NestedNumbers = number | boolean | bigint | readonly NestedNumbers[];

/**
 * A tensor from JS data: nested arrays of numbers/booleans, a typed array (shape defaults to
 * its length), or a single number. Data is copied. Integers infer int64, any fraction float32,
 * booleans bool; `{dtype}` overrides. A Uint16Array with dtype float16/bfloat16 is taken as raw bits.
 */
export function tensor(data: NestedNumbers | AnyTypedArray, options: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const shape = options.shape ?? [(data as AnyTypedArray).length];
    checkShape(shape, "tensor");
    if (data instanceof Uint16Array) {
      if (options.dtype !== "float16" && options.dtype !== "bfloat16")
        throw new TypeError('tensor(): a Uint16Array holds raw half-precision bits; pass {dtype: "float16"} or {dtype: "bfloat16"}');
      return finish(new Tensor(native.fromBuffer(data, shape, dtypeCode(options.dtype), options.device)), options);
    }
    const own = dtypeOfTypedArray(data);
    let t = new Tensor(native.fromBuffer(data, shape, dtypeCode(own), options.device));
    if (options.dtype !== undefined && options.dtype !== own) {
      const cast = t.to(options.dtype);
      t.dispose();
      t = cast;
    }
    return finish(t, options);
  }
  const shape: number[] = [];
  let probe: NestedNumbers = data;
  while (Array.isArray(probe)) {
    shape.push(probe.length);
    if (probe.length === 0) break;
    probe = probe[0] as NestedNumbers;
  }
  const flat: (number | boolean | bigint)[] = [];
  let kind: "bool" | "int" | "float" = "bool";
  const walk = (v: NestedNumbers, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth >= shape.length || v.length !== shape[depth])
        throw new TypeError(`tensor(): ragged nested array: expected length ${shape[depth]} at depth ${depth}, got ${v.length}`);
      for (const x of v) walk(x, depth + 1);
      return;
    }
    if (depth !== shape.length) throw new TypeError(`tensor(): ragged nested array: a number at depth ${depth}, expected ${shape.length}`);
    if (typeof v === "boolean") {
    } else if (typeof v === "bigint") {
      if (v < INT64_MIN || v > INT64_MAX) throw new RangeError(`tensor(): ${v} does not fit in int64 (-2^63 to 2^63-1)`);
      if (kind === "bool") kind = "int";
    } else if (typeof v === "number") {
      if (!Number.isInteger(v)) kind = "float";
      else if (kind === "bool") kind = "int";
    } else throw new TypeError(`tensor(): expected numbers, booleans or bigints, got ${typeof v}`);
    flat.push(v);
  };
  walk(data as NestedNumbers, 0);
  const dtype: DType = options.dtype ?? (flat.length === 0 ? "float32" : kind === "bool" ? "bool" : kind === "int" ? "int64" : "float32");
  let buffer: AnyTypedArray;
  let bufferDtype: DType = dtype;
  switch (dtype) {
    case "float64":
      buffer = Float64Array.from(flat, Number);
      break;
    case "int64":
      buffer = BigInt64Array.from(flat, (v) => (typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)))));
      break;
    case "int32":
      buffer = Int32Array.from(flat, Number);
      break;
    case "int16":
      buffer = Int16Array.from(flat, Number);
      break;
    case "int8":
      buffer = Int8Array.from(flat, Number);
      break;
    case "uint8":
    case "bool":
      buffer = Uint8Array.from(flat, (v) => Number(v));
      break;
    default: // float32, and float16/bfloat16 via a float32 copy
      buffer = Float32Array.from(flat, Number);
      bufferDtype = "float32";
  }
  let t = new Tensor(native.fromBuffer(buffer, shape, dtypeCode(bufferDtype), options.device));
  if (bufferDtype !== dtype) {
    const cast = t.to(dtype);
    t.dispose();
    t = cast;
  }
  return finish(t, options);
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  checkShape(shape, "zeros");
  return finish(new Tensor(native.call(O.zeros, shape, dt(options.dtype), null, options.device ?? null)), options);
}
export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  checkShape(shape, "ones");
  return finish(new Tensor(native.call(O.ones, shape, dt(options.dtype), null, options.device ?? null)), options);
}
export function full(shape: Shape, fillValue: number | boolean, options: TensorOptions = {}): Tensor {
  checkShape(shape, "full");
  return finish(new Tensor(native.call(O.full, shape, fillValue, dt(options.dtype), null, options.device ?? null)), options);
}
/** Uninitialised memory: fill it before reading. */
export function empty(shape: Shape, options: TensorOptions = {}): Tensor {
  checkShape(shape, "empty");
  return finish(new Tensor(native.call(O.empty, shape, dt(options.dtype), null, options.device ?? null)), options);
}
export function eye(n: number, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.eye, n, dt(options.dtype), null, options.device ?? null)), options);
}

/** `arange(end)` or `arange(start, end, step?)`; integer arguments give int64, as in PyTorch. */
export function arange(end: number, options?: TensorOptions): Tensor;
export function arange(start: number, end: number, options?: TensorOptions): Tensor;
export function arange(start: number, end: number, step?: number, options?: TensorOptions): Tensor;
export function arange(a: number, b?: number | TensorOptions, c?: number | TensorOptions, d?: TensorOptions): Tensor {
  let start = 0;
  let end: number;
  let step = 1;
  let options: TensorOptions = {};
  if (typeof b === "number") {
    start = a;
    end = b;
    if (typeof c === "number") {
      step = c;
      options = d ?? {};
    } else options = c ?? {};
  } else {
    end = a;
    options = b ?? {};
  }
  if (step === 0) throw new RangeError("arange(): step must be non-zero");
  return finish(new Tensor(native.call(O.arange, start, end, step, dt(options.dtype), null, options.device ?? null)), options);
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.linspace, start, end, steps, dt(options.dtype), null, options.device ?? null)), options);
}

/** Standard normal samples; `{generator}` for an independent stream. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "randn");
  return finish(new Tensor(native.call(O.randn, shape, options.generator?._g ?? null, dt(options.dtype), null, options.device ?? null)), options);
}
/** Uniform samples in [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "rand");
  return finish(new Tensor(native.call(O.rand, shape, options.generator?._g ?? null, dt(options.dtype), null, options.device ?? null)), options);
}
/** Integers in [low, high), int64 unless a dtype is given. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  checkShape(shape, "randint");
  return finish(new Tensor(native.call(O.randint, low, high, shape, options.generator?._g ?? null, dt(options.dtype), null, options.device ?? null)), options);
}

export function zerosLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.zerosLike, t._h, dt(options.dtype), null, options.device ?? null)), options);
}
export function onesLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.onesLike, t._h, dt(options.dtype), null, options.device ?? null)), options);
}
export function fullLike(t: Tensor, fillValue: number | boolean, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.fullLike, t._h, fillValue, dt(options.dtype), null, options.device ?? null)), options);
}
export function emptyLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.emptyLike, t._h, dt(options.dtype), null, options.device ?? null)), options);
}
export function randnLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.randnLike, t._h, dt(options.dtype), null, options.device ?? null)), options);
}
export function randLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(new Tensor(native.call(O.randLike, t._h, dt(options.dtype), null, options.device ?? null)), options);
}

function handles(tensors: readonly Tensor[], fn: string): number[] {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new TypeError(`${fn}(): expected a non-empty array of tensors`);
  return tensors.map((t) => t._h);
}
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.call(O.cat, handles(tensors, "cat"), dim));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.call(O.stack, handles(tensors, "stack"), dim));
}
/** Elementwise `condition ? x : y`; x and y may be numbers. */
export function where(condition: Tensor, x: Tensor | number, y: Tensor | number): Tensor {
  if (x instanceof Tensor && y instanceof Tensor) return new Tensor(native.call(O.where, condition._h, x._h, y._h));
  if (x instanceof Tensor) return new Tensor(native.call(O.whereTS, condition._h, x._h, y));
  if (y instanceof Tensor) return new Tensor(native.call(O.whereST, condition._h, x, y._h));
  return new Tensor(native.call(O.whereSS, condition._h, x, y));
}

// ----- random state, autograd mode, devices ------------------------------------------------------

/** Seeds the default generators (CPU and CUDA), like `torch.manual_seed`. */
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

export function manualSeed(seed: number | bigint): void {
  native.manualSeed(checkSeed(seed, "manualSeed()"));
}

/**
 * The most intra-op threads `setNumThreads` accepts: four per available CPU (at least 16). More
 * only oversubscribes the cores, and thousands make libgomp fail to create threads and exit.
 */
export const MAX_NUM_THREADS = Math.max(16, 4 * availableParallelism());

export interface AutocastOptions {
  deviceType: "cpu" | "cuda";
  /** Default: bfloat16 on CPU, float16 on CUDA (torch.autocast's defaults). */
  dtype?: "bfloat16" | "float16";
  /** false runs fn with autocast off (a full-precision region inside an autocast one). Default true. */
  enabled?: boolean;
}

const autocastRegions: Required<AutocastOptions>[] = [];

/** @internal the autocast regions open now, outermost first (checkpoint() re-enters them to recompute). */
export function openAutocastRegions(): readonly Required<AutocastOptions>[] {
  return [...autocastRegions];
}

/**
 * torch.autocast: inside `fn`, libtorch's autocast casts the inputs of the operators it lists
 * (matmul, linear, conv, bmm, ...) to `dtype` and keeps precision-sensitive ones (softmax, norms,
 * losses) in float32; parameters stay float32 (the master weights) and their gradients float32.
 * Run the backward outside. `fn` must be synchronous: autocast is thread state, and an await would
 * leak it into whatever runs meanwhile.
 */
export function autocast<R>(options: AutocastOptions, fn: () => R): R {
  const dtype = options.dtype ?? (options.deviceType === "cpu" ? "bfloat16" : "float16");
  if (dtype !== "bfloat16" && dtype !== "float16") throw new TypeError(`autocast dtype must be bfloat16 or float16, got ${String(dtype)}`);
  const [wasEnabled, previousDtype] = native.setAutocast(options.deviceType, options.enabled ?? true, dtypeCode(dtype), true);
  autocastRegions.push({ deviceType: options.deviceType, dtype, enabled: options.enabled ?? true });
  let result: R;
  try {
    result = fn();
  } finally {
    autocastRegions.pop();
    native.setAutocast(options.deviceType, wasEnabled, previousDtype, false);
  }
  if (result instanceof Promise) throw new TypeError("autocast(fn): fn returned a Promise; autocast regions must be synchronous");
  return result;
}

/**
 * Runs `fn` with gradient recording off (`torch.no_grad()`). Grad mode is per thread: if `fn`
 * is async, recording stays off until its promise settles, for all code running meanwhile.
 */
export function noGrad<T>(fn: () => T): T {
  const previous = native.setGradEnabled(false);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    native.setGradEnabled(previous);
    throw error;
  }
  if (result instanceof Promise) {
    return result.finally(() => native.setGradEnabled(previous)) as T;
  }
  native.setGradEnabled(previous);
  return result;
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
export function setGradEnabled(enabled: boolean): void {
  native.setGradEnabled(enabled);
}

export function isCudaAvailable(): boolean {
  return native.cudaInfo()[0];
}
export function cudaDeviceCount(): number {
  return native.cudaInfo()[1];
}
/** Waits for all queued CUDA work (on `device`, or every device); a no-op without CUDA. */
export function synchronize(device?: number): void {
  native.cudaSynchronize(device);
}
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NUM_THREADS)
    throw new RangeError(`setNumThreads(): expected an integer from 1 to ${MAX_NUM_THREADS} (4 per CPU of this machine), got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** The libtorch version this addon was built against, e.g. "2.13.0". */
export function libtorchVersion(): string {
  return native.version();
}

export { Generator, type Device };

/**
 * A CPU tensor read straight from `nbytes = numel x element size` bytes of a file at `offset`
 * (little-endian, as safetensors and GGUF store them): no JavaScript buffer in between.
 */
export function fromFile(path: string, options: { offset: number; shape: Shape; dtype: DType }): Tensor {
  const shape = [...options.shape];
  const numel = shape.reduce((a, b) => a * b, 1);
  const size = { float64: 8, int64: 8, float32: 4, int32: 4, float16: 2, bfloat16: 2, int16: 2, int8: 1, uint8: 1, bool: 1 }[options.dtype as string];
  if (size === undefined) throw new TypeError(`fromFile: dtype ${options.dtype} is not supported`);
  if (!Number.isSafeInteger(options.offset) || options.offset < 0)
    throw new RangeError(`fromFile: offset must be a non-negative integer, got ${options.offset}`);
  return new Tensor(native.readFile(path, options.offset, numel * size, shape, dtypeCode(options.dtype)));
}
