// The Tensor class: a handle to a libtorch tensor, with PyTorch's methods in camelCase.
// Every method maps to one ATen operator, so semantics (broadcasting, dtype promotion,
// autograd) are libtorch's own. Operators are registered once, by schema name, at load.
import { constants as bufferConstants } from "node:buffer";
import { inspect } from "node:util";
import { type AnyTypedArray, DTYPE_SIZE, type DType, dtypeCode, dtypeName, dtypeOfTypedArray, isFloatingPoint } from "./dtype.js";
import { native, op, type Handle } from "./native.js";
import { BinaryKind } from "./native-interface.js";
import { track } from "./memory.js";

export type Device = "cpu" | "cuda" | `cuda:${number}` | (string & {});

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

/** A random number generator with its own state (`torch.Generator`). */
export class Generator {
  /** @internal */ readonly _g: object;
  readonly device: Device;
  constructor(options: { seed?: number | bigint; device?: Device } = {}) {
    this.device = options.device ?? "cpu";
    this._g = native.newGenerator(checkSeed(options.seed ?? 67280421310721), this.device);
  }
  manualSeed(seed: number | bigint): this {
    native.generatorSeed(this._g, checkSeed(seed));
    return this;
  }
}

/** A seed is an integer in [0, 2^64): a safe-integer number or a bigint (what does not fit is refused, not truncated). */
export function checkSeed(seed: unknown, where = "Generator"): number | bigint {
  if (typeof seed === "number" && Number.isSafeInteger(seed) && seed >= 0) return seed;
  if (typeof seed === "bigint" && seed >= 0n && seed < 2n ** 64n) return seed;
  throw new RangeError(`${where}: the seed must be an integer from 0 to 2^64-1 (a safe-integer number or a bigint), got ${String(seed)}`);
}

/** Scalar operand: a plain number (integral numbers count as ints, as Python ints do). */
export type Scalar = number | boolean;

const O = {
  add: op("add.Tensor"),
  addS: op("add.Scalar"),
  sub: op("sub.Tensor"),
  subS: op("sub.Scalar"),
  divMode: op("div.Tensor_mode"),
  divModeS: op("div.Scalar_mode"),
  powTT: op("pow.Tensor_Tensor"),
  powTS: op("pow.Tensor_Scalar"),
  powST: op("pow.Scalar"),
  neg: op("neg"),
  abs: op("abs"),
  exp: op("exp"),
  log: op("log"),
  sqrt: op("sqrt"),
  rsqrt: op("rsqrt"),
  tanh: op("tanh"),
  sigmoid: op("sigmoid"),
  sin: op("sin"),
  cos: op("cos"),
  relu: op("relu"),
  erf: op("erf"),
  floor: op("floor"),
  ceil: op("ceil"),
  round: op("round"),
  sign: op("sign"),
  reciprocal: op("reciprocal"),
  square: op("square"),
  clamp: op("clamp"),
  clampT: op("clamp.Tensor"),
  maximum: op("maximum"),
  minimum: op("minimum"),
  eqT: op("eq.Tensor"),
  eqS: op("eq.Scalar"),
  neT: op("ne.Tensor"),
  neS: op("ne.Scalar"),
  ltT: op("lt.Tensor"),
  ltS: op("lt.Scalar"),
  leT: op("le.Tensor"),
  leS: op("le.Scalar"),
  gtT: op("gt.Tensor"),
  gtS: op("gt.Scalar"),
  geT: op("ge.Tensor"),
  geS: op("ge.Scalar"),
  logicalNot: op("logical_not"),
  logicalAnd: op("logical_and"),
  logicalOr: op("logical_or"),
  isnan: op("isnan"),
  any: op("any"),
  anyDim: op("any.dim"),
  all: op("all"),
  allDim: op("all.dim"),
  sum: op("sum"),
  sumDim: op("sum.dim_IntList"),
  mean: op("mean"),
  meanDim: op("mean.dim"),
  prod: op("prod"),
  max: op("max"),
  maxDim: op("max.dim"),
  min: op("min"),
  minDim: op("min.dim"),
  amax: op("amax"),
  amin: op("amin"),
  argmax: op("argmax"),
  argmin: op("argmin"),
  var: op("var.correction"),
  std: op("std.correction"),
  norm: op("linalg_vector_norm"),
  matmul: op("matmul"),
  mm: op("mm"),
  bmm: op("bmm"),
  reshape: op("reshape"),
  view: op("view"),
  viewDtype: op("view.dtype"),
  permute: op("permute"),
  transpose: op("transpose.int"),
  expand: op("expand"),
  expandAs: op("expand_as"),
  repeat: op("repeat"),
  squeeze: op("squeeze"),
  squeezeDim: op("squeeze.dim"),
  unsqueeze: op("unsqueeze"),
  flatten: op("flatten.using_ints"),
  split: op("split.Tensor"),
  splitSizes: op("split_with_sizes"),
  chunk: op("chunk"),
  narrow: op("narrow"),
  slice: op("slice.Tensor"),
  select: op("select.int"),
  index: op("index.Tensor"),
  indexPut: op("index_put"),
  indexSelect: op("index_select"),
  gather: op("gather"),
  scatterSrc: op("scatter.src"),
  scatterValue: op("scatter.value"),
  whereT: op("where.self"),
  whereTS: op("where.ScalarOther"),
  whereST: op("where.ScalarSelf"),
  whereSS: op("where.Scalar"),
  maskedFillS: op("masked_fill.Scalar"),
  maskedFillT: op("masked_fill.Tensor"),
  triu: op("triu"),
  tril: op("tril"),
  topk: op("topk"),
  sort: op("sort.stable"),
  cumsum: op("cumsum"),
  cumprod: op("cumprod"),
  multinomial: op("multinomial"),
  softmax: op("softmax.int"),
  logSoftmax: op("log_softmax.int"),
  contiguous: op("contiguous"),
  clone: op("clone"),
  detach: op("detach"),
  to: op("to.dtype_layout"),
  item: op("item"),
  flip: op("flip"),
  roll: op("roll"),
  allclose: op("allclose"),
  equal: op("equal"),
  // in place
  copy_: op("copy_"),
  zero_: op("zero_"),
  fill_: op("fill_.Scalar"),
  add_: op("add_.Tensor"),
  addS_: op("add_.Scalar"),
  sub_: op("sub_.Tensor"),
  mul_: op("mul_.Tensor"),
  mulS_: op("mul_.Scalar"),
  div_: op("div_.Tensor"),
  divS_: op("div_.Scalar"),
  addcmul_: op("addcmul_"),
  addcdiv_: op("addcdiv_"),
  lerp_: op("lerp_.Scalar"),
  sqrt_: op("sqrt_"),
  clamp_: op("clamp_"),
  uniform_: op("uniform_"),
  normal_: op("normal_"),
  maskedFill_: op("masked_fill_.Scalar"),
};

/** Shapes are arrays of non-negative integers. */
export type Shape = readonly number[];

function checkShape(shape: unknown, what: string): asserts shape is Shape {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d)))
    throw new TypeError(`${what}: expected the shape as an array of integers, e.g. [2, 3]; got ${inspect(shape)}`);
}

/** @internal checkpoint.ts's hook: the recorded segments' backward, run after each `backward()`. */
export const afterBackward: { run: ((retainGraph: boolean) => void) | null } = { run: null };

/**
 * A multi-dimensional array in libtorch memory (CPU or CUDA). Free it with `dispose()`,
 * `using`, or `scope()`; the GC frees forgotten tensors eventually, but not promptly.
 */
export class Tensor {
  /** @internal the native handle; -1 once disposed */
  _h: Handle;
  /** @internal set by keep(): no scope disposes it */
  _kept = false;
  private _meta: [number[], number, string, boolean] | undefined;

  /** @internal use the creation functions (tensor, zeros, randn...) instead */
  constructor(handle: Handle) {
    this._h = handle;
    track(this); // owned by the current scope, else by the FinalizationRegistry safety net
  }

  // ----- identity and metadata --------------------------------------------------------------

  private meta(): [number[], number, string, boolean] {
    if (this._meta === undefined) this._meta = native.meta(this._h);
    return this._meta;
  }

  /** The size of each dimension. */
  get shape(): number[] {
    return this.meta()[0].slice();
  }
  get dtype(): DType {
    return dtypeName(this.meta()[1]);
  }
  get device(): Device {
    return this.meta()[2];
  }
  get ndim(): number {
    return this.meta()[0].length;
  }
  /** `size()` gives the shape, `size(d)` one dimension (negative counts from the end). */
  size(): number[];
  size(dim: number): number;
  size(dim?: number): number[] | number {
    const s = this.meta()[0];
    if (dim === undefined) return s.slice();
    const d = dim < 0 ? dim + s.length : dim;
    const v = s[d];
    if (v === undefined) throw new RangeError(`size(${dim}): dimension out of range for a ${s.length}-d tensor`);
    return v;
  }
  dim(): number {
    return this.ndim;
  }
  numel(): number {
    return this.meta()[0].reduce((a, b) => a * b, 1);
  }
  get isDisposed(): boolean {
    return this._h < 0;
  }
  isFloatingPoint(): boolean {
    return isFloatingPoint(this.dtype);
  }

  // ----- memory -------------------------------------------------------------------------------

  /** Frees the tensor's memory now. Safe to call twice. */
  dispose(): void {
    if (this._h >= 0) {
      native.dispose(this._h);
      this._h = -1;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ----- autograd -----------------------------------------------------------------------------

  get requiresGrad(): boolean {
    return native.requiresGrad(this._h);
  }
  set requiresGrad(value: boolean) {
    native.setRequiresGrad(this._h, value);
  }
  requiresGrad_(value = true): this {
    native.setRequiresGrad(this._h, value);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this._h);
  }
  /** The accumulated gradient (a new handle on each read: dispose it or read it in a scope), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this._h);
    return g === null ? null : new Tensor(g);
  }
  set grad(value: Tensor | null) {
    native.setGrad(this._h, value === null ? null : value._h);
  }
  /**
   * Accumulates gradients into the leaves this tensor depends on (`torch.Tensor.backward`), then
   * runs the backward of the checkpointed segments recorded since the last one (`checkpoint()`).
   */
  backward(gradient?: Tensor, options: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(this._h, gradient ? gradient._h : null, options.retainGraph ?? null, options.createGraph ?? false);
    afterBackward.run?.(options.retainGraph ?? false);
  }
  detach(): Tensor {
    return new Tensor(native.call(O.detach, this._h));
  }

  // ----- conversion ---------------------------------------------------------------------------

  /**
   * Moves or casts: `to("cuda")`, `to("bfloat16")`, `to({dtype, device})`. Returns `this`
   * unchanged (same object) when nothing changes, as PyTorch does.
   */
  to(target: DType | Device | { dtype?: DType; device?: Device; copy?: boolean }): Tensor {
    let dtype: DType | undefined;
    let device: Device | undefined;
    let copy = false;
    if (typeof target === "string") {
      if (isDTypeName(target)) dtype = target;
      else if (isDeviceName(target)) device = target;
      else throw new TypeError(`to(): '${target}' is neither a dtype (${Object.keys(DTYPE_SIZE).join(", ")}) nor a device (cpu, cuda, cuda:N, meta)`);
    } else {
      dtype = target.dtype;
      device = target.device;
      copy = target.copy ?? false;
    }
    const h = native.call(O.to, this._h, dtype === undefined ? null : dtypeCode(dtype), null, device ?? null, null, false, copy);
    if (native.same(h, this._h)) {
      native.dispose(h);
      return this;
    }
    return new Tensor(h);
  }
  cpu(): Tensor {
    return this.to("cpu");
  }
  cuda(index?: number): Tensor {
    return this.to(index === undefined ? "cuda" : `cuda:${index}`);
  }
  float(): Tensor {
    return this.to("float32");
  }
  double(): Tensor {
    return this.to("float64");
  }
  half(): Tensor {
    return this.to("float16");
  }
  bfloat16(): Tensor {
    return this.to("bfloat16");
  }
  long(): Tensor {
    return this.to("int64");
  }
  int(): Tensor {
    return this.to("int32");
  }
  bool(): Tensor {
    return this.to("bool");
  }
  contiguous(): Tensor {
    return new Tensor(native.call(O.contiguous, this._h));
  }
  clone(): Tensor {
    return new Tensor(native.call(O.clone, this._h));
  }

  /**
   * The elements, flattened, in a typed array copied to JS memory: Float32Array for
   * float32/float16/bfloat16, Float64Array, BigInt64Array for int64, Int32Array, Int16Array,
   * Int8Array, Uint8Array for uint8 and bool.
   */
  toArray(): AnyTypedArray {
    const dtype = this.dtype;
    const bytes = this.numel() * (dtype === "float16" || dtype === "bfloat16" ? 4 : DTYPE_SIZE[dtype]);
    if (bytes > MAX_JS_BUFFER_BYTES)
      throw new RangeError(
        `toArray(): the tensor's ${bytes} bytes exceed the ${MAX_JS_BUFFER_BYTES} bytes one JS typed array can hold; read it in parts (t.slice(0, start, end).toArray())`,
      );
    if (dtype === "float16" || dtype === "bfloat16") {
      const f = native.call(O.to, this._h, dtypeCode("float32"), null, null, null, false, false) as Handle;
      try {
        return new Float32Array(native.toBuffer(f));
      } finally {
        native.dispose(f);
      }
    }
    const buf = native.toBuffer(this._h);
    switch (dtype) {
      case "float32":
        return new Float32Array(buf);
      case "float64":
        return new Float64Array(buf);
      case "int64":
        return new BigInt64Array(buf);
      case "int32":
        return new Int32Array(buf);
      case "int16":
        return new Int16Array(buf);
      case "int8":
        return new Int8Array(buf);
      default:
        return new Uint8Array(buf);
    }
  }

  /** Nested JS arrays of numbers (booleans for bool tensors), like `tensor.tolist()`. */
  tolist(): unknown {
    const flat = this.toArray();
    const isBool = this.dtype === "bool";
    const values: (number | boolean)[] = Array.from(flat as ArrayLike<number | bigint>, (v) => (isBool ? v !== 0 : Number(v)));
    const shape = this.meta()[0];
    if (shape.length === 0) return values[0];
    let pos = 0;
    const build = (d: number): unknown[] => {
      const out: unknown[] = [];
      for (let i = 0; i < shape[d]!; i++) out.push(d === shape.length - 1 ? values[pos++] : build(d + 1));
      return out;
    };
    return build(0);
  }

  /** The value of a one-element tensor as a JS number (1 or 0 for a bool tensor). */
  item(): number {
    if (this.numel() !== 1) throw new RangeError(`item(): the tensor has ${this.numel()} elements (shape [${this.shape}]); item() needs exactly one`);
    const v = native.call(O.item, this._h) as number | boolean;
    return typeof v === "boolean" ? Number(v) : v;
  }

  toString(): string {
    if (this._h < 0) return "Tensor(disposed)";
    const shape = this.meta()[0];
    const head = `tensor(shape=[${shape.join(", ")}], dtype=${this.dtype}, device=${this.device}`;
    if (this.numel() > 64) return `${head})`;
    return `${head}, data=${JSON.stringify(this.tolist())})`;
  }
  [inspect.custom](): string {
    return this.toString();
  }

  // ----- elementwise arithmetic (broadcasting, PyTorch dtype promotion) -----------------------

  add(other: Tensor | Scalar, options?: { alpha?: number }): Tensor {
    if (options?.alpha !== undefined && options.alpha !== 1)
      return new Tensor(
        other instanceof Tensor ? native.call(O.add, this._h, other._h, options.alpha) : native.call(O.addS, this._h, scalar(other), options.alpha),
      );
    return new Tensor(
      other instanceof Tensor ? native.binary(BinaryKind.addTensor, this._h, other._h) : native.binary(BinaryKind.addScalar, this._h, scalar(other)),
    );
  }
  sub(other: Tensor | Scalar, options?: { alpha?: number }): Tensor {
    if (options?.alpha !== undefined && options.alpha !== 1)
      return new Tensor(
        other instanceof Tensor ? native.call(O.sub, this._h, other._h, options.alpha) : native.call(O.subS, this._h, scalar(other), options.alpha),
      );
    return new Tensor(
      other instanceof Tensor ? native.binary(BinaryKind.subTensor, this._h, other._h) : native.binary(BinaryKind.subScalar, this._h, scalar(other)),
    );
  }
  mul(other: Tensor | Scalar): Tensor {
    return new Tensor(
      other instanceof Tensor ? native.binary(BinaryKind.mulTensor, this._h, other._h) : native.binary(BinaryKind.mulScalar, this._h, scalar(other)),
    );
  }
  /** True division; `{roundingMode: "floor" | "trunc"}` for integer-style division. */
  div(other: Tensor | Scalar, options?: { roundingMode?: "floor" | "trunc" }): Tensor {
    if (options?.roundingMode)
      return new Tensor(
        other instanceof Tensor
          ? native.call(O.divMode, this._h, other._h, options.roundingMode)
          : native.call(O.divModeS, this._h, scalar(other), options.roundingMode),
      );
    return new Tensor(
      other instanceof Tensor ? native.binary(BinaryKind.divTensor, this._h, other._h) : native.binary(BinaryKind.divScalar, this._h, scalar(other)),
    );
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return new Tensor(exponent instanceof Tensor ? native.call(O.powTT, this._h, exponent._h) : native.call(O.powTS, this._h, scalar(exponent)));
  }
  neg(): Tensor {
    return new Tensor(native.call(O.neg, this._h));
  }
  abs(): Tensor {
    return new Tensor(native.call(O.abs, this._h));
  }
  exp(): Tensor {
    return new Tensor(native.call(O.exp, this._h));
  }
  log(): Tensor {
    return new Tensor(native.call(O.log, this._h));
  }
  sqrt(): Tensor {
    return new Tensor(native.call(O.sqrt, this._h));
  }
  rsqrt(): Tensor {
    return new Tensor(native.call(O.rsqrt, this._h));
  }
  tanh(): Tensor {
    return new Tensor(native.call(O.tanh, this._h));
  }
  sigmoid(): Tensor {
    return new Tensor(native.call(O.sigmoid, this._h));
  }
  sin(): Tensor {
    return new Tensor(native.call(O.sin, this._h));
  }
  cos(): Tensor {
    return new Tensor(native.call(O.cos, this._h));
  }
  relu(): Tensor {
    return new Tensor(native.call(O.relu, this._h));
  }
  erf(): Tensor {
    return new Tensor(native.call(O.erf, this._h));
  }
  floor(): Tensor {
    return new Tensor(native.call(O.floor, this._h));
  }
  ceil(): Tensor {
    return new Tensor(native.call(O.ceil, this._h));
  }
  round(): Tensor {
    return new Tensor(native.call(O.round, this._h));
  }
  sign(): Tensor {
    return new Tensor(native.call(O.sign, this._h));
  }
  reciprocal(): Tensor {
    return new Tensor(native.call(O.reciprocal, this._h));
  }
  square(): Tensor {
    return new Tensor(native.call(O.square, this._h));
  }
  /** Limits values to [min, max]; either bound may be omitted (null/undefined). */
  clamp(min?: Tensor | number | null, max?: Tensor | number | null): Tensor {
    if (min instanceof Tensor || max instanceof Tensor)
      return new Tensor(native.call(O.clampT, this._h, min instanceof Tensor ? min._h : null, max instanceof Tensor ? max._h : null));
    if (min == null && max == null) throw new TypeError("clamp(): give at least one of min and max");
    return new Tensor(native.call(O.clamp, this._h, min ?? null, max ?? null));
  }
  maximum(other: Tensor): Tensor {
    return new Tensor(native.call(O.maximum, this._h, other._h));
  }
  minimum(other: Tensor): Tensor {
    return new Tensor(native.call(O.minimum, this._h, other._h));
  }

  // ----- comparison and logic -----------------------------------------------------------------

  eq(other: Tensor | Scalar): Tensor {
    return this.compare(O.eqT, O.eqS, other);
  }
  ne(other: Tensor | Scalar): Tensor {
    return this.compare(O.neT, O.neS, other);
  }
  lt(other: Tensor | Scalar): Tensor {
    return this.compare(O.ltT, O.ltS, other);
  }
  le(other: Tensor | Scalar): Tensor {
    return this.compare(O.leT, O.leS, other);
  }
  gt(other: Tensor | Scalar): Tensor {
    return this.compare(O.gtT, O.gtS, other);
  }
  ge(other: Tensor | Scalar): Tensor {
    return this.compare(O.geT, O.geS, other);
  }
  private compare(tensorOp: number, scalarOp: number, other: Tensor | Scalar): Tensor {
    return new Tensor(other instanceof Tensor ? native.call(tensorOp, this._h, other._h) : native.call(scalarOp, this._h, scalar(other)));
  }
  logicalNot(): Tensor {
    return new Tensor(native.call(O.logicalNot, this._h));
  }
  logicalAnd(other: Tensor): Tensor {
    return new Tensor(native.call(O.logicalAnd, this._h, other._h));
  }
  logicalOr(other: Tensor): Tensor {
    return new Tensor(native.call(O.logicalOr, this._h, other._h));
  }
  /** True (a 0-d bool tensor) if any element is non-zero; along `dim` when given. */
  any(dim?: number, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(dim === undefined ? native.call(O.any, this._h) : native.call(O.anyDim, this._h, dim, options.keepdim ?? false));
  }
  /** True (a 0-d bool tensor) if every element is non-zero; along `dim` when given. */
  all(dim?: number, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(dim === undefined ? native.call(O.all, this._h) : native.call(O.allDim, this._h, dim, options.keepdim ?? false));
  }
  isnan(): Tensor {
    return new Tensor(native.call(O.isnan, this._h));
  }
  /** True when shapes match and all elements are within `atol + rtol * |other|`. */
  allclose(other: Tensor, options: { rtol?: number; atol?: number; equalNan?: boolean } = {}): boolean {
    return native.call(O.allclose, this._h, other._h, options.rtol ?? 1e-5, options.atol ?? 1e-8, options.equalNan ?? false) as boolean;
  }
  /** True when shapes and all elements are equal. */
  equal(other: Tensor): boolean {
    return native.call(O.equal, this._h, other._h) as boolean;
  }

  // ----- reductions ---------------------------------------------------------------------------

  sum(dim?: number | number[] | null, options: { keepdim?: boolean; dtype?: DType } = {}): Tensor {
    const dt = options.dtype === undefined ? null : dtypeCode(options.dtype);
    if (dim == null) return new Tensor(native.call(O.sum, this._h, dt));
    return new Tensor(native.call(O.sumDim, this._h, dim, options.keepdim ?? false, dt));
  }
  mean(dim?: number | number[] | null, options: { keepdim?: boolean; dtype?: DType } = {}): Tensor {
    const dt = options.dtype === undefined ? null : dtypeCode(options.dtype);
    if (dim == null) return new Tensor(native.call(O.mean, this._h, dt));
    return new Tensor(native.call(O.meanDim, this._h, dim, options.keepdim ?? false, dt));
  }
  prod(options: { dtype?: DType } = {}): Tensor {
    return new Tensor(native.call(O.prod, this._h, options.dtype === undefined ? null : dtypeCode(options.dtype)));
  }
  /** Maximum of all elements; with `dim`, `{values, indices}` along it. */
  max(): Tensor;
  max(dim: number, options?: { keepdim?: boolean }): { values: Tensor; indices: Tensor };
  max(dim?: number, options: { keepdim?: boolean } = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(native.call(O.max, this._h));
    const [v, i] = native.call(O.maxDim, this._h, dim, options.keepdim ?? false) as [Handle, Handle];
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  min(): Tensor;
  min(dim: number, options?: { keepdim?: boolean }): { values: Tensor; indices: Tensor };
  min(dim?: number, options: { keepdim?: boolean } = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(native.call(O.min, this._h));
    const [v, i] = native.call(O.minDim, this._h, dim, options.keepdim ?? false) as [Handle, Handle];
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  amax(dim: number | number[] = [], options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.amax, this._h, dim, options.keepdim ?? false));
  }
  amin(dim: number | number[] = [], options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.amin, this._h, dim, options.keepdim ?? false));
  }
  argmax(dim?: number | null, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.argmax, this._h, dim ?? null, options.keepdim ?? false));
  }
  argmin(dim?: number | null, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.argmin, this._h, dim ?? null, options.keepdim ?? false));
  }
  /** Variance with Bessel's correction by default (`correction: 1`), as in PyTorch. */
  var(dim?: number | number[] | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.var, this._h, dim ?? null, options.correction ?? 1, options.keepdim ?? false));
  }
  std(dim?: number | number[] | null, options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.std, this._h, dim ?? null, options.correction ?? 1, options.keepdim ?? false));
  }
  /** Vector p-norm over `dim` (all elements by default). */
  norm(p = 2, dim?: number | number[] | null, options: { keepdim?: boolean } = {}): Tensor {
    return new Tensor(native.call(O.norm, this._h, p, dim ?? null, options.keepdim ?? false));
  }

  // ----- linear algebra -----------------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return new Tensor(native.call(O.matmul, this._h, other._h));
  }
  mm(other: Tensor): Tensor {
    return new Tensor(native.call(O.mm, this._h, other._h));
  }
  bmm(other: Tensor): Tensor {
    return new Tensor(native.call(O.bmm, this._h, other._h));
  }
  /** Transpose of the last two dimensions. */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }

  // ----- shape and indexing -------------------------------------------------------------------

  reshape(shape: Shape): Tensor {
    checkShape(shape, "reshape");
    return new Tensor(native.call(O.reshape, this._h, shape));
  }
  /** A view with a new shape (no copy; the tensor must be contiguous enough), or a dtype view. */
  view(shape: Shape | DType): Tensor {
    if (typeof shape === "string") return new Tensor(native.call(O.viewDtype, this._h, dtypeCode(shape)));
    checkShape(shape, "view");
    return new Tensor(native.call(O.view, this._h, shape));
  }
  permute(dims: readonly number[]): Tensor {
    checkShape(dims, "permute");
    return new Tensor(native.call(O.permute, this._h, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.call(O.transpose, this._h, dim0, dim1));
  }
  /** Broadcasts to `shape` without copying; -1 keeps a dimension. */
  expand(shape: Shape): Tensor {
    checkShape(shape, "expand");
    return new Tensor(native.call(O.expand, this._h, shape, false));
  }
  expandAs(other: Tensor): Tensor {
    return new Tensor(native.call(O.expandAs, this._h, other._h));
  }
  repeat(repeats: readonly number[]): Tensor {
    checkShape(repeats, "repeat");
    return new Tensor(native.call(O.repeat, this._h, repeats));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(dim === undefined ? native.call(O.squeeze, this._h) : native.call(O.squeezeDim, this._h, dim));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.call(O.unsqueeze, this._h, dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.call(O.flatten, this._h, startDim, endDim));
  }
  /** Splits into pieces of `splitSize` (the last may be smaller) or of the given sizes. */
  split(splitSize: number | readonly number[], dim = 0): Tensor[] {
    const hs = (Array.isArray(splitSize) ? native.call(O.splitSizes, this._h, splitSize, dim) : native.call(O.split, this._h, splitSize, dim)) as Handle[];
    return hs.map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return (native.call(O.chunk, this._h, chunks, dim) as Handle[]).map((h) => new Tensor(h));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.call(O.narrow, this._h, dim, start, length));
  }
  /** `x[..., start:end:step, ...]` along `dim` (a view). Negative bounds count from the end. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor {
    return new Tensor(native.call(O.slice, this._h, dim, start ?? null, end ?? null, step));
  }
  /** `x[..., index, ...]` along `dim`: removes that dimension (a view). */
  select(dim: number, index: number): Tensor {
    return new Tensor(native.call(O.select, this._h, dim, index));
  }
  /** Advanced indexing, `x[i0, i1, ...]` with index tensors (null for `:`). */
  index(indices: readonly (Tensor | null)[]): Tensor {
    return new Tensor(
      native.call(
        O.index,
        this._h,
        indices.map((t) => (t === null ? null : t._h)),
      ),
    );
  }
  /** Out-of-place `x[indices] = values` (accumulate adds instead). */
  indexPut(indices: readonly (Tensor | null)[], values: Tensor, options: { accumulate?: boolean } = {}): Tensor {
    return new Tensor(
      native.call(
        O.indexPut,
        this._h,
        indices.map((t) => (t === null ? null : t._h)),
        values._h,
        options.accumulate ?? false,
      ),
    );
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.call(O.indexSelect, this._h, dim, index._h));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.call(O.gather, this._h, dim, index._h, false));
  }
  /** Out-of-place scatter: `out[index[i][j]][j] = src[i][j]` (for dim 0), src a tensor or a value. */
  scatter(dim: number, index: Tensor, src: Tensor | Scalar): Tensor {
    return new Tensor(
      src instanceof Tensor ? native.call(O.scatterSrc, this._h, dim, index._h, src._h) : native.call(O.scatterValue, this._h, dim, index._h, scalar(src)),
    );
  }
  maskedFill(mask: Tensor, value: Tensor | Scalar): Tensor {
    return new Tensor(
      value instanceof Tensor ? native.call(O.maskedFillT, this._h, mask._h, value._h) : native.call(O.maskedFillS, this._h, mask._h, scalar(value)),
    );
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(native.call(O.triu, this._h, diagonal));
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(native.call(O.tril, this._h, diagonal));
  }
  flip(dims: readonly number[]): Tensor {
    return new Tensor(native.call(O.flip, this._h, dims));
  }
  roll(shifts: number | readonly number[], dims: number | readonly number[] = []): Tensor {
    return new Tensor(native.call(O.roll, this._h, shifts, dims));
  }
  topk(k: number, options: { dim?: number; largest?: boolean; sorted?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [v, i] = native.call(O.topk, this._h, k, options.dim ?? -1, options.largest ?? true, options.sorted ?? true) as [Handle, Handle];
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  sort(options: { dim?: number; descending?: boolean; stable?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [v, i] = native.call(O.sort, this._h, options.stable ?? false, options.dim ?? -1, options.descending ?? false) as [Handle, Handle];
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  cumsum(dim: number, options: { dtype?: DType } = {}): Tensor {
    return new Tensor(native.call(O.cumsum, this._h, dim, options.dtype === undefined ? null : dtypeCode(options.dtype)));
  }
  cumprod(dim: number, options: { dtype?: DType } = {}): Tensor {
    return new Tensor(native.call(O.cumprod, this._h, dim, options.dtype === undefined ? null : dtypeCode(options.dtype)));
  }
  /** Samples indices from the rows of a non-negative weight matrix. */
  multinomial(numSamples: number, options: { replacement?: boolean; generator?: Generator } = {}): Tensor {
    return new Tensor(native.call(O.multinomial, this._h, numSamples, options.replacement ?? false, options.generator?._g ?? null));
  }
  softmax(dim: number, options: { dtype?: DType } = {}): Tensor {
    return new Tensor(native.call(O.softmax, this._h, dim, options.dtype === undefined ? null : dtypeCode(options.dtype)));
  }
  logSoftmax(dim: number, options: { dtype?: DType } = {}): Tensor {
    return new Tensor(native.call(O.logSoftmax, this._h, dim, options.dtype === undefined ? null : dtypeCode(options.dtype)));
  }

  // ----- in-place (return this) ---------------------------------------------------------------

  copy_(src: Tensor): this {
    native.callInplace(O.copy_, this._h, src._h, false);
    return this;
  }
  zero_(): this {
    native.callInplace(O.zero_, this._h);
    return this;
  }
  fill_(value: Scalar): this {
    native.callInplace(O.fill_, this._h, scalar(value));
    return this;
  }
  add_(other: Tensor | Scalar, options: { alpha?: number } = {}): this {
    if (other instanceof Tensor) native.callInplace(O.add_, this._h, other._h, options.alpha ?? 1);
    else native.callInplace(O.addS_, this._h, scalar(other), options.alpha ?? 1);
    return this;
  }
  sub_(other: Tensor, options: { alpha?: number } = {}): this {
    native.callInplace(O.sub_, this._h, other._h, options.alpha ?? 1);
    return this;
  }
  mul_(other: Tensor | Scalar): this {
    if (other instanceof Tensor) native.callInplace(O.mul_, this._h, other._h);
    else native.callInplace(O.mulS_, this._h, scalar(other));
    return this;
  }
  div_(other: Tensor | Scalar): this {
    if (other instanceof Tensor) native.callInplace(O.div_, this._h, other._h);
    else native.callInplace(O.divS_, this._h, scalar(other));
    return this;
  }
  /** this += value * t1 * t2 */
  addcmul_(t1: Tensor, t2: Tensor, options: { value?: number } = {}): this {
    native.callInplace(O.addcmul_, this._h, t1._h, t2._h, options.value ?? 1);
    return this;
  }
  /** this += value * t1 / t2 */
  addcdiv_(t1: Tensor, t2: Tensor, options: { value?: number } = {}): this {
    native.callInplace(O.addcdiv_, this._h, t1._h, t2._h, options.value ?? 1);
    return this;
  }
  /** this += weight * (end - this) */
  lerp_(end: Tensor, weight: number): this {
    native.callInplace(O.lerp_, this._h, end._h, weight);
    return this;
  }
  sqrt_(): this {
    native.callInplace(O.sqrt_, this._h);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    native.callInplace(O.clamp_, this._h, min ?? null, max ?? null);
    return this;
  }
  maskedFill_(mask: Tensor, value: Scalar): this {
    native.callInplace(O.maskedFill_, this._h, mask._h, scalar(value));
    return this;
  }
  uniform_(from = 0, to = 1, options: { generator?: Generator } = {}): this {
    native.callInplace(O.uniform_, this._h, from, to, options.generator?._g ?? null);
    return this;
  }
  normal_(mean = 0, std = 1, options: { generator?: Generator } = {}): this {
    native.callInplace(O.normal_, this._h, mean, std, options.generator?._g ?? null);
    return this;
  }
}

const DTYPE_NAMES = new Set<string>(["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]);
/** The largest ArrayBuffer this Node.js can allocate. */
const MAX_JS_BUFFER_BYTES = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32);

/** `cpu`, `cuda`, `cuda:N`, `meta` (what libtorch's device parser accepts and we use). */
export function isDeviceName(s: string): s is Device {
  return /^(cpu|meta|cuda(:\d{1,3})?)$/.test(s);
}

export function isDTypeName(s: string): s is DType {
  return DTYPE_NAMES.has(s);
}

function scalar(v: Scalar): number | boolean {
  if (typeof v !== "number" && typeof v !== "boolean") throw new TypeError(`expected a Tensor or a number, got ${v === null ? "null" : typeof v}`);
  return v;
}

/** `base ** exponent` elementwise, where either side may be a number (`torch.pow`). */
export function pow(base: Tensor | number, exponent: Tensor | number): Tensor {
  if (base instanceof Tensor) return base.pow(exponent);
  if (exponent instanceof Tensor) return new Tensor(native.call(O.powST, scalar(base), exponent._h));
  throw new TypeError("pow(): at least one of base and exponent must be a Tensor");
}

/** @internal a fresh handle on `t`'s data, detached from autograd, owned by the caller. */
export function detachedHandle(t: Tensor): Handle {
  return native.call(O.detach, t._h) as Handle;
}

/** Wraps a handle returned by `native.call` (for other modules of this package). */
export function wrap(h: Handle): Tensor {
  return new Tensor(h);
}

export { dtypeOfTypedArray };
