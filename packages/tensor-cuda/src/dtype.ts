// Data types: names as in PyTorch, codes as c10::ScalarType.

export type DType = "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};

const NAMES = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

/** Bytes per element. */
export const DTYPE_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
  bfloat16: 2,
};

export function dtypeCode(dtype: DType): number {
  const code = CODES[dtype];
  if (code === undefined) throw new TypeError(`unknown dtype '${String(dtype)}'; expected one of ${Object.keys(CODES).join(", ")}`);
  return code;
}

export function dtypeName(code: number): DType {
  const name = NAMES.get(code);
  if (name === undefined) throw new TypeError(`libtorch returned a tensor of unsupported scalar type ${code}`);
  return name;
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" || dtype === "bfloat16";
}

/** The typed array that `Tensor.toArray()` returns for each dtype. */
export type TypedArrayFor<D extends DType> = D extends "float64"
  ? Float64Array
  : D extends "int64"
    ? BigInt64Array
    : D extends "int32"
      ? Int32Array
      : D extends "int16"
        ? Int16Array
        : D extends "int8"
          ? Int8Array
          : D extends "uint8" | "bool"
            ? Uint8Array
            : Float32Array;

export type AnyTypedArray = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | BigInt64Array | Uint16Array;

/** dtype of a typed array given to `tensor()`. */
export function dtypeOfTypedArray(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray) return "uint8";
  if (data instanceof BigInt64Array) return "int64";
  throw new TypeError(
    `tensor(): unsupported typed array ${data.constructor.name}; use Float32Array, Float64Array, Int32Array, Int16Array, Int8Array, Uint8Array or BigInt64Array (Uint16Array with {dtype: "float16" | "bfloat16"} for raw half bits)`,
  );
}
