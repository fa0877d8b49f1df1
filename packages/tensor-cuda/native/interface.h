// Numbers that cross the Node-API boundary, named once. src/native-interface.ts mirrors this file
// and test/native-interface.test.ts checks that the two agree.
#pragma once

namespace pisces {

// Binary(kind, a, b): the unboxed fast path for the hottest arithmetic operators.
enum BinaryKind : int {
  kAddTensor = 0,
  kSubTensor = 1,
  kMulTensor = 2,
  kDivTensor = 3,
  kAddScalar = 4,
  kSubScalar = 5,
  kMulScalar = 6,
  kDivScalar = 7,
};

// Linear(..., mode) and RmsNorm(..., mode): which implementation runs.
enum KernelMode : int {
  kKernelAuto = 0,    // the hand-written CPU kernel where it applies, else libtorch's
  kKernelAten = 1,    // always libtorch's operator (the reference)
  kKernelCustom = 2,  // always the hand-written kernel (an error where it does not apply)
};

}  // namespace pisces
