// Numbers that cross the Node-API boundary, named once: mirrors native/interface.h (checked by
// test/native-interface.test.ts).

/** native.binary(kind, a, b): the unboxed fast path for add/sub/mul/div. */
export const BinaryKind = {
  addTensor: 0,
  subTensor: 1,
  mulTensor: 2,
  divTensor: 3,
  addScalar: 4,
  subScalar: 5,
  mulScalar: 6,
  divScalar: 7,
} as const;

/** native.linear / native.rmsNorm mode: which implementation runs. */
export const KernelMode = {
  /** The hand-written CPU kernel where it applies, else libtorch's. */
  auto: 0,
  /** Always libtorch's operator (the reference). */
  aten: 1,
  /** Always the hand-written kernel (an error where it does not apply). */
  custom: 2,
} as const;
