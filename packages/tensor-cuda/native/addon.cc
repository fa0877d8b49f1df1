// Node-API binding of libtorch (ATen + autograd) for @pisces/tensor-cuda.
//
// One generic entry point, `call(opId, ...args)`, runs any ATen operator through the c10
// dispatcher (so autograd, dtype promotion and CPU/CUDA kernels all come from libtorch); the
// JS side converts arguments to the operator's schema order. A handful of entry points do what
// is not an operator: creation from JS memory, reading back, autograd, RNG, file reads, stats.
// Plain C Node-API (no node-addon-api) keeps the per-call path short; the module is
// context-aware, so it loads in worker_threads: all per-environment state lives in instance data.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <node_api.h>
#include <torch/version.h>
// c10d (used by distributed.h)
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef PISCES_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <chrono>

#include <immintrin.h>

#include "interface.h"
#include "kernels/decoder_layer.h"
#include "kernels/few_row_linear.h"
#include "kernels/quantized_linear.h"
#include "kernels/rms_norm.h"
#include "kernels/work_pool.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <limits>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <string>
#include <unistd.h>
#include <unordered_set>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Tensor handles. A JS Tensor holds a number: slot index + generation * 2^22, into a per-thread
// slot table (one JS environment per thread). dispose() frees the slot at once and bumps its
// generation, so a stale handle (a late FinalizationRegistry callback, a copy kept by mistake)
// can never reach the tensor that reuses the slot. Numbers instead of napi externals keep V8 out
// of the per-op path: no weak handle per tensor.

constexpr double kSlotSpan = 4194304.0;  // 2^22 slots

struct Slot {
  at::Tensor t;
  uint32_t gen = 0;
};

struct SlotTable {
  std::vector<Slot> slots;
  std::vector<uint32_t> freeList;
  int64_t live = 0;
};
thread_local SlotTable table;

double newHandle(at::Tensor&& t) {
  uint32_t index;
  if (!table.freeList.empty()) {
    index = table.freeList.back();
    table.freeList.pop_back();
  } else {
    if (table.slots.size() >= static_cast<size_t>(kSlotSpan))
      throw std::runtime_error("more than 4,194,304 live tensors: dispose() tensors or use scope()");
    index = static_cast<uint32_t>(table.slots.size());
    table.slots.emplace_back();
  }
  Slot& s = table.slots[index];
  s.t = std::move(t);
  table.live++;
  return static_cast<double>(index) + static_cast<double>(s.gen) * kSlotSpan;
}

// Returns the slot of a live handle, or nullptr for a stale or malformed one.
Slot* slotOf(double handle) {
  if (!(handle >= 0)) return nullptr;
  double genD = std::floor(handle / kSlotSpan);
  double indexD = handle - genD * kSlotSpan;
  auto index = static_cast<size_t>(indexD);
  if (index >= table.slots.size()) return nullptr;
  Slot& s = table.slots[index];
  if (static_cast<double>(s.gen) != genD || !s.t.defined()) return nullptr;
  return &s;
}

bool freeHandle(double handle) {
  Slot* s = slotOf(handle);
  if (!s) return false;
  s->t = at::Tensor();
  s->gen = (s->gen + 1) & 0x7fffffffu;
  table.freeList.push_back(static_cast<uint32_t>(s - table.slots.data()));
  table.live--;
  return true;
}

void finalizeGenerator(napi_env, void* data, void*) { delete static_cast<at::Generator*>(data); }

// ---------------------------------------------------------------------------------------------
// Per-environment state: the operator table and the JS error classes.

enum Kind : uint8_t {
  K_TENSOR, K_OPT_TENSOR, K_TENSOR_LIST, K_OPT_TENSOR_LIST,
  K_INT, K_OPT_INT, K_INT_LIST, K_OPT_INT_LIST,
  K_FLOAT, K_OPT_FLOAT, K_FLOAT_LIST,
  K_BOOL, K_OPT_BOOL, K_BOOL_LIST,
  K_SCALAR, K_OPT_SCALAR, K_STRING, K_OPT_STRING,
  K_DEVICE, K_OPT_DEVICE, K_GENERATOR, K_UNSUPPORTED,
};

struct ArgInfo {
  Kind kind;
  bool hasDefault;
  bool optional;
  c10::IValue defaultValue;
  int32_t n;  // fixed list length (int[2]) or -1
  std::string name;
};

struct OpInfo {
  c10::OperatorHandle handle;
  std::string name;
  std::vector<ArgInfo> args;
  size_t nReturns;
};

struct Env {
  std::vector<OpInfo> ops;
  napi_ref torchError = nullptr;
  napi_ref oomError = nullptr;
};

Env* getEnv(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<Env*>(data);
}

// Thrown from conversion helpers; turned into a JS TypeError-like TorchError at the boundary.
struct JsArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void throwAs(napi_env env, napi_ref ctorRef, const std::string& message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_value msg, ctor, err;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  if (ctorRef != nullptr && napi_get_reference_value(env, ctorRef, &ctor) == napi_ok && ctor != nullptr) {
    if (napi_new_instance(env, ctor, 1, &msg, &err) == napi_ok) {
      napi_throw(env, err);
      return;
    }
  }
  napi_throw_error(env, nullptr, message.c_str());
}

// Runs `body`, turning every C++ exception into a JS exception. Nothing escapes to abort().
template <typename F>
napi_value guarded(napi_env env, F&& body) {
  Env* e = getEnv(env);
  try {
    return body();
  } catch (const c10::OutOfMemoryError& ex) {
    throwAs(env, e->oomError, ex.what_without_backtrace());
  } catch (const c10::Error& ex) {
    // The CPU allocator reports exhaustion as a plain enforce failure; classify it as OOM too.
    std::string msg = ex.what_without_backtrace();
    bool oom = msg.find("can't allocate memory") != std::string::npos || msg.find("out of memory") != std::string::npos;
    throwAs(env, oom ? e->oomError : e->torchError, msg);
  } catch (const std::exception& ex) {
    throwAs(env, e->torchError, ex.what());
  } catch (...) {
    throwAs(env, e->torchError, "unknown C++ exception in libtorch");
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// JS <-> C++ value helpers.

napi_valuetype typeOf(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t;
}

bool isNullish(napi_env env, napi_value v) {
  auto t = typeOf(env, v);
  return t == napi_undefined || t == napi_null;
}

const at::Tensor& tensorOf(napi_env env, napi_value v) {
  double h;
  if (napi_get_value_double(env, v, &h) != napi_ok) throw JsArgError("expected a Tensor");
  Slot* s = slotOf(h);
  if (!s) throw JsArgError("this Tensor was disposed; it cannot be used any more");
  return s->t;
}

napi_value wrapTensor(napi_env env, at::Tensor t) {
  napi_value out;
  if (!t.defined()) {
    napi_get_null(env, &out);
    return out;
  }
  napi_create_double(env, newHandle(std::move(t)), &out);
  return out;
}

double toDouble(napi_env env, napi_value v) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) throw JsArgError("expected a number");
  return d;
}

int64_t toInt(napi_env env, napi_value v) {
  auto t = typeOf(env, v);
  if (t == napi_bigint) {
    int64_t r;
    bool lossless;
    napi_get_value_bigint_int64(env, v, &r, &lossless);
    return r;
  }
  if (t == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    return b ? 1 : 0;
  }
  double d = toDouble(env, v);
  if (d != static_cast<double>(static_cast<int64_t>(d))) throw JsArgError("expected an integer");
  return static_cast<int64_t>(d);
}

bool toBool(napi_env env, napi_value v) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) throw JsArgError("expected a boolean");
  return b;
}

std::string toString(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) throw JsArgError("expected a string");
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

uint32_t arrayLength(napi_env env, napi_value v) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  if (!isArray) throw JsArgError("expected an array");
  uint32_t n;
  napi_get_array_length(env, v, &n);
  return n;
}

napi_value element(napi_env env, napi_value arr, uint32_t i) {
  napi_value v;
  napi_get_element(env, arr, i, &v);
  return v;
}

std::vector<int64_t> toIntVector(napi_env env, napi_value v) {
  uint32_t n = arrayLength(env, v);
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) out[i] = toInt(env, element(env, v, i));
  return out;
}

c10::Scalar toScalar(napi_env env, napi_value v) {
  auto t = typeOf(env, v);
  if (t == napi_boolean) return c10::Scalar(toBool(env, v));
  if (t == napi_bigint) return c10::Scalar(toInt(env, v));
  double d = toDouble(env, v);
  // JS has one number type: an integral value becomes an int Scalar (so int tensors stay int).
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15)
    return c10::Scalar(static_cast<int64_t>(d));
  return c10::Scalar(d);
}

c10::Device toDevice(napi_env env, napi_value v) { return c10::Device(toString(env, v)); }

c10::IValue convertArg(napi_env env, napi_value v, const ArgInfo& a) {
  switch (a.kind) {
    case K_TENSOR: return c10::IValue(tensorOf(env, v));
    case K_OPT_TENSOR: return c10::IValue(tensorOf(env, v));
    case K_TENSOR_LIST: {
      uint32_t n = arrayLength(env, v);
      c10::List<at::Tensor> list;
      list.reserve(n);
      for (uint32_t i = 0; i < n; i++) list.push_back(tensorOf(env, element(env, v, i)));
      return c10::IValue(std::move(list));
    }
    case K_OPT_TENSOR_LIST: {
      uint32_t n = arrayLength(env, v);
      c10::List<std::optional<at::Tensor>> list;
      list.reserve(n);
      for (uint32_t i = 0; i < n; i++) {
        napi_value e = element(env, v, i);
        if (isNullish(env, e)) list.push_back(std::nullopt);
        else list.push_back(tensorOf(env, e));
      }
      return c10::IValue(std::move(list));
    }
    case K_INT:
    case K_OPT_INT: return c10::IValue(toInt(env, v));
    case K_INT_LIST:
    case K_OPT_INT_LIST: {
      bool isArray = false;
      napi_is_array(env, v, &isArray);
      if (!isArray) {  // a single int where int[N] is expected: repeat it, as PyTorch does
        int64_t x = toInt(env, v);
        return c10::IValue(c10::List<int64_t>(std::vector<int64_t>(a.n > 0 ? a.n : 1, x)));
      }
      return c10::IValue(c10::List<int64_t>(toIntVector(env, v)));
    }
    case K_FLOAT:
    case K_OPT_FLOAT: return c10::IValue(toDouble(env, v));
    case K_FLOAT_LIST: {
      uint32_t n = arrayLength(env, v);
      c10::List<double> list;
      for (uint32_t i = 0; i < n; i++) list.push_back(toDouble(env, element(env, v, i)));
      return c10::IValue(std::move(list));
    }
    case K_BOOL:
    case K_OPT_BOOL: return c10::IValue(toBool(env, v));
    case K_BOOL_LIST: {
      uint32_t n = arrayLength(env, v);
      c10::List<bool> list;
      for (uint32_t i = 0; i < n; i++) list.push_back(toBool(env, element(env, v, i)));
      return c10::IValue(std::move(list));
    }
    case K_SCALAR:
    case K_OPT_SCALAR: return c10::IValue(toScalar(env, v));
    case K_STRING:
    case K_OPT_STRING: return c10::IValue(toString(env, v));
    case K_DEVICE:
    case K_OPT_DEVICE: return c10::IValue(toDevice(env, v));
    case K_GENERATOR: {
      void* p = nullptr;
      if (typeOf(env, v) != napi_external || napi_get_value_external(env, v, &p) != napi_ok)
        throw JsArgError("expected a Generator");
      return c10::IValue(*static_cast<at::Generator*>(p));
    }
    default: throw JsArgError("argument type not supported by the binding");
  }
}

napi_value fromIValue(napi_env env, const c10::IValue& v) {
  napi_value out;
  if (v.isTensor()) return wrapTensor(env, v.toTensor());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    napi_create_array_with_length(env, list.size(), &out);
    for (size_t i = 0; i < list.size(); i++) napi_set_element(env, out, i, wrapTensor(env, list.get(i)));
    return out;
  }
  if (v.isDouble()) { napi_create_double(env, v.toDouble(), &out); return out; }
  if (v.isInt()) { napi_create_double(env, static_cast<double>(v.toInt()), &out); return out; }
  if (v.isBool()) { napi_get_boolean(env, v.toBool(), &out); return out; }
  if (v.isNone()) { napi_get_null(env, &out); return out; }
  if (v.isIntList()) {
    auto list = v.toIntVector();
    napi_create_array_with_length(env, list.size(), &out);
    for (size_t i = 0; i < list.size(); i++) {
      napi_value e;
      napi_create_double(env, static_cast<double>(list[i]), &e);
      napi_set_element(env, out, i, e);
    }
    return out;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    napi_create_array_with_length(env, elems.size(), &out);
    for (size_t i = 0; i < elems.size(); i++) napi_set_element(env, out, i, fromIValue(env, elems[i]));
    return out;
  }
  if (v.isScalar()) {  // complex etc.
    napi_create_double(env, v.toScalar().toDouble(), &out);
    return out;
  }
  throw std::runtime_error("return type not supported by the binding: " + v.tagKind());
}

Kind kindOf(const c10::TypePtr& type) {
  using c10::TypeKind;
  switch (type->kind()) {
    case TypeKind::TensorType: return K_TENSOR;
    case TypeKind::IntType: case TypeKind::SymIntType: return K_INT;
    case TypeKind::FloatType: case TypeKind::SymFloatType: return K_FLOAT;
    case TypeKind::BoolType: case TypeKind::SymBoolType: return K_BOOL;
    case TypeKind::NumberType: return K_SCALAR;
    case TypeKind::StringType: return K_STRING;
    case TypeKind::DeviceObjType: return K_DEVICE;
    case TypeKind::GeneratorType: return K_GENERATOR;
    case TypeKind::ListType: {
      auto elem = type->containedType(0);
      switch (elem->kind()) {
        case TypeKind::TensorType: return K_TENSOR_LIST;
        case TypeKind::OptionalType: return K_OPT_TENSOR_LIST;
        case TypeKind::IntType: case TypeKind::SymIntType: return K_INT_LIST;
        case TypeKind::FloatType: return K_FLOAT_LIST;
        case TypeKind::BoolType: return K_BOOL_LIST;
        default: return K_UNSUPPORTED;
      }
    }
    case TypeKind::OptionalType: {
      Kind inner = kindOf(type->containedType(0));
      switch (inner) {
        case K_TENSOR: return K_OPT_TENSOR;
        case K_INT: return K_OPT_INT;
        case K_INT_LIST: return K_OPT_INT_LIST;
        case K_FLOAT: return K_OPT_FLOAT;
        case K_BOOL: return K_OPT_BOOL;
        case K_SCALAR: return K_OPT_SCALAR;
        case K_STRING: return K_OPT_STRING;
        case K_DEVICE: return K_OPT_DEVICE;
        case K_GENERATOR: return K_GENERATOR;
        default: return inner;  // lists: optional-ness is kept in ArgInfo::optional
      }
    }
    default: return K_UNSUPPORTED;
  }
}

bool isOptional(Kind k) {
  switch (k) {
    case K_OPT_TENSOR: case K_OPT_INT: case K_OPT_INT_LIST: case K_OPT_FLOAT: case K_OPT_BOOL:
    case K_OPT_SCALAR: case K_OPT_STRING: case K_OPT_DEVICE: case K_GENERATOR: return true;
    default: return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points.

constexpr size_t kMaxArgs = 24;

struct Args {
  napi_value argv[kMaxArgs];
  size_t argc = kMaxArgs;
  napi_value self;
};

Args getArgs(napi_env env, napi_callback_info info) {
  Args a;
  napi_get_cb_info(env, info, &a.argc, a.argv, &a.self, nullptr);
  if (a.argc > kMaxArgs) a.argc = kMaxArgs;
  return a;
}

napi_value arg(napi_env env, const Args& a, size_t i) {
  if (i < a.argc) return a.argv[i];
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// registerOp(name, overload) -> op id, or throws if the operator does not exist.
napi_value RegisterOp(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    Args a = getArgs(env, info);
    std::string name = toString(env, arg(env, a, 0));
    std::string overload = toString(env, arg(env, a, 1));
    auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
    if (!handle) throw std::runtime_error("no ATen operator " + name + "." + overload + " in this libtorch");
    Env* e = getEnv(env);
    OpInfo op{*handle, name + (overload.empty() ? "" : "." + overload), {}, handle->schema().returns().size()};
    for (const auto& sa : handle->schema().arguments()) {
      ArgInfo ai;
      ai.kind = kindOf(sa.type());
      ai.hasDefault = sa.default_value().has_value();
      ai.optional = sa.type()->kind() == c10::TypeKind::OptionalType;
      if (ai.hasDefault) ai.defaultValue = *sa.default_value();
      ai.n = sa.N() ? *sa.N() : -1;
      ai.name = sa.name();
      op.args.push_back(std::move(ai));
    }
    e->ops.push_back(std::move(op));
    napi_value out;
    napi_create_uint32(env, static_cast<uint32_t>(e->ops.size() - 1), &out);
    return out;
  });
}

// Converts call(opId, ...args) arguments to the operator's boxed stack, in schema order;
// undefined/null takes the schema default (or None for an optional argument).
const OpInfo& buildStack(napi_env env, const Args& a, Env* e, torch::jit::Stack& stack) {
  uint32_t id;
  if (a.argc < 1 || napi_get_value_uint32(env, a.argv[0], &id) != napi_ok || id >= e->ops.size())
    throw JsArgError("bad operator id");
  const OpInfo& op = e->ops[id];
  stack.reserve(op.args.size());
  for (size_t i = 0; i < op.args.size(); i++) {
    const ArgInfo& ai = op.args[i];
    size_t j = i + 1;
    if (j >= a.argc || isNullish(env, a.argv[j])) {
      if (ai.hasDefault) stack.push_back(ai.defaultValue);
      else if (ai.optional || isOptional(ai.kind)) stack.emplace_back();
      else throw JsArgError(op.name + ": missing argument '" + ai.name + "'");
      continue;
    }
    try {
      stack.push_back(convertArg(env, a.argv[j], ai));
    } catch (const JsArgError& err) {
      throw JsArgError(op.name + ": argument '" + ai.name + "': " + err.what());
    }
  }
  return op;
}

// call(opId, ...args) -> the operator's result (an array when it has several).
napi_value Call(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  Env* e = getEnv(env);
  return guarded(env, [&]() -> napi_value {
    torch::jit::Stack stack;
    const OpInfo& op = buildStack(env, a, e, stack);
    op.handle.callBoxed(&stack);
    if (stack.empty()) {
      napi_value u;
      napi_get_undefined(env, &u);
      return u;
    }
    if (stack.size() == 1) return fromIValue(env, stack[0]);
    napi_value out;
    napi_create_array_with_length(env, stack.size(), &out);
    for (size_t i = 0; i < stack.size(); i++) napi_set_element(env, out, i, fromIValue(env, stack[i]));
    return out;
  });
}

// Same as call() but drops the result: for in-place operators, whose result aliases `self`.
napi_value CallInplace(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  Env* e = getEnv(env);
  return guarded(env, [&]() -> napi_value {
    torch::jit::Stack stack;
    buildStack(env, a, e, stack).handle.callBoxed(&stack);
    napi_value u;
    napi_get_undefined(env, &u);
    return u;
  });
}

// Fast path for the hottest binary operators (skips the boxed stack).
// kind: a BinaryKind (interface.h): add/sub/mul/div with a tensor operand, then with a scalar.
napi_value Binary(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return guarded(env, [&]() -> napi_value {
    uint32_t kind = 0;
    napi_get_value_uint32(env, argv[0], &kind);
    const at::Tensor& x = tensorOf(env, argv[1]);
    if (kind < pisces::kAddScalar) {
      const at::Tensor& y = tensorOf(env, argv[2]);
      switch (kind) {
        case pisces::kAddTensor: return wrapTensor(env, at::add(x, y));
        case pisces::kSubTensor: return wrapTensor(env, at::sub(x, y));
        case pisces::kMulTensor: return wrapTensor(env, at::mul(x, y));
        default: return wrapTensor(env, at::div(x, y));
      }
    }
    c10::Scalar s = toScalar(env, argv[2]);
    switch (kind) {
      case pisces::kAddScalar: return wrapTensor(env, at::add(x, s));
      case pisces::kSubScalar: return wrapTensor(env, at::sub(x, s));
      case pisces::kMulScalar: return wrapTensor(env, at::mul(x, s));
      default: return wrapTensor(env, at::div(x, s));
    }
  });
}

// linear(x, w, b?, mode): mode is a KernelMode (interface.h): auto (the few-row kernel when it applies), aten, or custom.
napi_value Linear(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& x = tensorOf(env, a.argv[0]);
    const at::Tensor& w = tensorOf(env, a.argv[1]);
    std::optional<at::Tensor> b;
    if (a.argc > 2 && !isNullish(env, a.argv[2])) b = tensorOf(env, a.argv[2]);
    int64_t mode = a.argc > 3 && !isNullish(env, a.argv[3]) ? toInt(env, a.argv[3]) : 0;
    if (mode == pisces::kKernelCustom) {
      if (!fewRowApplies(x, w, b))
        throw JsArgError("the few-row linear kernel needs float32 CPU tensors (on an AVX2 CPU), a contiguous non-empty 2-d weight, matching widths and a float32 bias of the output width");
      return wrapTensor(env, fewRowLinear(x, w, b));
    }
    // under autocast the operator must go through the dispatcher, which casts its inputs
    if (mode == pisces::kKernelAuto && !at::autocast::is_autocast_enabled(x.device().type()) && useFewRow(x, w, b))
      return wrapTensor(env, fewRowLinear(x, w, b));
    return wrapTensor(env, at::linear(x, w, b));
  });
}

// Runs f; a std::invalid_argument from a kernel's argument checks becomes an argument error naming `op`.
template <class F>
auto withOpName(const char* op, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::invalid_argument& e) {
    throw JsArgError(std::string(op) + ": " + e.what());
  }
}

// quantizedLinear(x, packed, type, b?, mode): x (..., K) times a weight kept in GGML blocks
// (kernels/quantized_linear.h). auto: the fused kernel for 1-16 float32 CPU rows without autograd,
// else dequantize and at::linear; aten: the ATen-operator dequantization and at::linear (the
// reference); custom: the fused kernel (an error where it does not apply).
napi_value QuantizedLinear(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& x = tensorOf(env, a.argv[0]);
    const at::Tensor& q = tensorOf(env, a.argv[1]);
    const int64_t type = toInt(env, a.argv[2]);
    std::optional<at::Tensor> b;
    if (a.argc > 3 && !isNullish(env, a.argv[3])) b = tensorOf(env, a.argv[3]);
    const int64_t mode = a.argc > 4 && !isNullish(env, a.argv[4]) ? toInt(env, a.argv[4]) : 0;
    if (x.dim() < 1 || x.numel() == 0) throw JsArgError("quantizedLinear: the input must be a non-empty tensor (..., in_features)");
    if (!at::isFloatingType(x.scalar_type())) throw JsArgError("quantizedLinear: the input must be a floating-point tensor");
    const int64_t K = x.size(-1);
    withOpName("quantizedLinear", [&] { return pisces::quant::checkPacked(q, type, K); });
    if (q.dim() != 2) throw JsArgError("quantizedLinear: the packed weight must be 2-d (out_features, row bytes)");
    if (b && (b->dim() != 1 || b->size(0) != q.size(0))) throw JsArgError("quantizedLinear: the bias must be 1-d of out_features " + std::to_string(q.size(0)));
    if (x.device() != q.device()) throw JsArgError("quantizedLinear: the input and the packed weight are on different devices");
    const bool grad = c10::GradMode::is_enabled() && x.requires_grad();
    const bool autocast = at::autocast::is_autocast_enabled(x.device().type());
    const int64_t rows = x.numel() / K;
    const bool applies = pisces::quant::kernelApplies(x, q, b);
    if (mode == pisces::kKernelCustom && !applies)
      throw JsArgError("the quantized few-row kernel needs a float32 CPU input (on an AVX2 + F16C CPU), a 2-d packed weight and a float32 CPU bias");
    if (mode == pisces::kKernelCustom || (mode == pisces::kKernelAuto && applies && !grad && !autocast && rows <= 16))
      return wrapTensor(env, pisces::quant::fewRow(x, q, type, b));
    const at::ScalarType dtype = autocast ? at::autocast::get_autocast_dtype(x.device().type()) : x.scalar_type();
    at::Tensor w = mode == pisces::kKernelAten || !q.device().is_cpu() ? pisces::quant::dequantizeAten(q, type, K, dtype) : pisces::quant::dequantize(q, type, K).to(dtype);
    return wrapTensor(env, at::linear(x, w, b));
  });
}

// fusedDecoderLayer(x, [inputNorm, postNorm], [q, k, v, o, gate, up, down], [their types], cos, sin,
// keys, values, position, eps, heads, kvHeads, headDim, scale): one Llama decoder layer for one new
// token per row (kernels/decoder_layer.h); a type of -1 marks a float32 weight. Inference only.
napi_value FusedDecoderLayer(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    if (a.argc < 14) throw JsArgError("fusedDecoderLayer: expected 14 arguments");
    pisces::fused::DecoderLayer layer;
    const at::Tensor& x = tensorOf(env, a.argv[0]);
    if (arrayLength(env, a.argv[1]) != 2 || arrayLength(env, a.argv[2]) != 7 || arrayLength(env, a.argv[3]) != 7)
      throw JsArgError("fusedDecoderLayer: expected 2 norm weights, 7 projections and 7 types");
    layer.inputNorm = tensorOf(env, element(env, a.argv[1], 0));
    layer.postNorm = tensorOf(env, element(env, a.argv[1], 1));
    pisces::fused::Projection* ps[7] = {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down};
    for (uint32_t i = 0; i < 7; i++) *ps[i] = {tensorOf(env, element(env, a.argv[2], i)), toInt(env, element(env, a.argv[3], i))};
    const at::Tensor& cos = tensorOf(env, a.argv[4]);
    const at::Tensor& sin = tensorOf(env, a.argv[5]);
    at::Tensor keys = tensorOf(env, a.argv[6]);
    at::Tensor values = tensorOf(env, a.argv[7]);
    const int64_t position = toInt(env, a.argv[8]);
    layer.eps = toDouble(env, a.argv[9]);
    layer.heads = toInt(env, a.argv[10]);
    layer.kvHeads = toInt(env, a.argv[11]);
    layer.headDim = toInt(env, a.argv[12]);
    layer.scale = toDouble(env, a.argv[13]);
    if (c10::GradMode::is_enabled()) {
      bool grad = x.requires_grad() || layer.inputNorm.requires_grad() || layer.postNorm.requires_grad();
      for (auto* p : ps) grad = grad || p->w.requires_grad();
      if (grad) throw JsArgError("fusedDecoderLayer is for inference: call it under noGrad()");
    }
    const std::string why = pisces::fused::whyNot(x, layer, cos, sin, keys, values, position);
    if (!why.empty()) throw JsArgError("fusedDecoderLayer: " + why);
    return wrapTensor(env, pisces::fused::decoderLayer(x, layer, cos, sin, keys, values, position));
  });
}

// packTogether([t...], hugePages) -> [t...]: copies of contiguous CPU tensors laid end to end
// (each 64-byte aligned) in one region that the copies own together (freed with the last). With
// hugePages the region is 2 MiB aligned and advised for transparent huge pages (madvise
// MADV_HUGEPAGE; nothing where the kernel has them off). For weights a decode step streams once
// each: with 4 KiB pages every new page is a TLB miss and a point where the hardware prefetcher
// stops; SmolLM2-135M's 30 layers are ~66 MB of packed rows, 16k pages.
napi_value PackTogether(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const uint32_t n = arrayLength(env, a.argv[0]);
    const bool huge = a.argc > 1 && !isNullish(env, a.argv[1]) && toBool(env, a.argv[1]);
    std::vector<at::Tensor> ts;
    std::vector<size_t> offsets;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
      const at::Tensor& t = tensorOf(env, element(env, a.argv[0], i));
      if (!t.device().is_cpu()) throw JsArgError("packTogether: tensor " + std::to_string(i) + " is on " + t.device().str() + ": only CPU tensors can share a region");
      ts.push_back(t.contiguous());
      offsets.push_back(total);
      total += (t.nbytes() + 63) / 64 * 64;
    }
    constexpr size_t kHuge = 2u << 20;
    const size_t align = huge ? kHuge : 64;
    const size_t bytes = std::max<size_t>(align, (total + align - 1) / align * align);
    void* region = nullptr;
    if (posix_memalign(&region, align, bytes) != 0) throw std::runtime_error("packTogether: cannot allocate " + std::to_string(bytes) + " bytes");
#ifdef MADV_HUGEPAGE
    if (huge) madvise(region, bytes, MADV_HUGEPAGE);
#endif
    std::shared_ptr<void> owner(region, [](void* p) { std::free(p); });
    napi_value out;
    napi_create_array_with_length(env, n, &out);
    for (uint32_t i = 0; i < n; i++) {
      char* dst = static_cast<char*>(region) + offsets[i];
      if (ts[i].nbytes()) std::memcpy(dst, ts[i].const_data_ptr(), ts[i].nbytes());
      at::Tensor view = at::from_blob(
          dst, ts[i].sizes(), [owner](void*) mutable { owner.reset(); }, ts[i].options());
      napi_set_element(env, out, i, wrapTensor(env, view));
    }
    return out;
  });
}

// dequantizeGgml(packed, type, K, mode): (..., row bytes) uint8 -> (..., K) float32; mode aten
// uses the ATen-operator dequantization, otherwise the scalar loop (on the CPU).
napi_value DequantizeGgml(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& q = tensorOf(env, a.argv[0]);
    const int64_t type = toInt(env, a.argv[1]);
    const int64_t K = toInt(env, a.argv[2]);
    const int64_t mode = a.argc > 3 && !isNullish(env, a.argv[3]) ? toInt(env, a.argv[3]) : 0;
    const bool aten = mode == pisces::kKernelAten || !q.device().is_cpu();
    return wrapTensor(env, withOpName("dequantizeGgml", [&] { return aten ? pisces::quant::dequantizeAten(q, type, K) : pisces::quant::dequantize(q, type, K); }));
  });
}

// quantizeGgml(weight, type): float (N, K) -> uint8 (N, row bytes) in Q8_0, Q4_0 or Q4_1 blocks.
napi_value QuantizeGgml(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& w = tensorOf(env, a.argv[0]);
    const int64_t type = toInt(env, a.argv[1]);
    return wrapTensor(env, withOpName("quantizeGgml", [&] { return pisces::quant::quantize(w, type); }));
  });
}

napi_value RmsNorm(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& x = tensorOf(env, a.argv[0]);
    std::optional<at::Tensor> w;
    if (a.argc > 1 && !isNullish(env, a.argv[1])) w = tensorOf(env, a.argv[1]);
    std::optional<double> eps;  // none: libtorch's default, the dtype's epsilon
    if (a.argc > 2 && !isNullish(env, a.argv[2])) eps = toDouble(env, a.argv[2]);
    const int64_t mode = a.argc > 3 && !isNullish(env, a.argv[3]) ? toInt(env, a.argv[3]) : 0;
    if (mode == pisces::kKernelCustom && !fusedRmsNormApplies(x, w))
      throw JsArgError("the fused rmsNorm needs a float32 CPU input and a float32 CPU weight of its last dimension");
    const bool grad = c10::GradMode::is_enabled() && (x.requires_grad() || (w && w->requires_grad()));
    const bool autocast = at::autocast::is_autocast_enabled(x.device().type());
    if (mode == pisces::kKernelCustom || (mode == pisces::kKernelAuto && !grad && !autocast && fusedRmsNormApplies(x, w))) return wrapTensor(env, fusedRmsNorm(x, w, eps.value_or(std::numeric_limits<float>::epsilon())));
    return wrapTensor(env, at::rms_norm(x, {x.size(-1)}, w, eps));
  });
}

at::ScalarType scalarTypeOf(napi_env env, napi_value v) {
  int64_t code = toInt(env, v);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) throw JsArgError("bad dtype code");
  return static_cast<at::ScalarType>(code);
}

// fromBuffer(typedArrayOrArrayBuffer, shape, dtypeCode, device?) -> tensor (a copy).
napi_value FromBuffer(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    void* data = nullptr;
    size_t byteLength = 0;
    bool isTyped = false, isAB = false, isBuf = false;
    napi_is_typedarray(env, a.argv[0], &isTyped);
    napi_is_arraybuffer(env, a.argv[0], &isAB);
    napi_is_buffer(env, a.argv[0], &isBuf);
    if (isTyped) {
      napi_typedarray_type tt;
      size_t length, offset;
      napi_value ab;
      napi_get_typedarray_info(env, a.argv[0], &tt, &length, &data, &ab, &offset);
      size_t elem = 1;
      switch (tt) {
        case napi_int16_array: case napi_uint16_array: elem = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
        default: elem = 1;
      }
      byteLength = length * elem;
    } else if (isBuf) {
      napi_get_buffer_info(env, a.argv[0], &data, &byteLength);
    } else if (isAB) {
      napi_get_arraybuffer_info(env, a.argv[0], &data, &byteLength);
    } else {
      throw JsArgError("expected a TypedArray, Buffer or ArrayBuffer");
    }
    auto shape = toIntVector(env, a.argv[1]);
    auto dtype = scalarTypeOf(env, a.argv[2]);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t need = t.nbytes();
    if (need != byteLength)
      throw JsArgError("data holds " + std::to_string(byteLength) + " bytes but shape " +
                       c10::str(t.sizes()) + " of " + c10::toString(dtype) + " needs " + std::to_string(need));
    if (need) std::memcpy(t.data_ptr(), data, need);
    if (a.argc > 3 && !isNullish(env, a.argv[3])) {
      c10::Device dev = toDevice(env, a.argv[3]);
      if (dev != t.device()) t = t.to(dev);
    }
    return wrapTensor(env, std::move(t));
  });
}

// toBuffer(t) -> ArrayBuffer with the contiguous CPU bytes of t.
napi_value ToBuffer(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::Tensor t = tensorOf(env, a.argv[0]);
    {
      at::NoGradGuard ng;
      if (!t.device().is_cpu()) t = t.to(at::kCPU);
      t = t.contiguous();
    }
    void* data;
    napi_value ab;
    napi_create_arraybuffer(env, t.nbytes(), &data, &ab);
    if (t.nbytes()) std::memcpy(data, t.const_data_ptr(), t.nbytes());
    return ab;
  });
}

// readFile(path, offset, nbytes, shape, dtypeCode) -> tensor read straight into its storage.
napi_value ReadFile(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    std::string path = toString(env, a.argv[0]);
    int64_t offset = toInt(env, a.argv[1]);
    int64_t nbytes = toInt(env, a.argv[2]);
    auto shape = toIntVector(env, a.argv[3]);
    auto dtype = scalarTypeOf(env, a.argv[4]);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (static_cast<int64_t>(t.nbytes()) != nbytes)
      throw JsArgError("byte span " + std::to_string(nbytes) + " does not match shape " + c10::str(t.sizes()));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    auto* p = static_cast<char*>(t.data_ptr());
    int64_t done = 0;
    while (done < nbytes) {
      ssize_t r = ::pread(fd, p + done, nbytes - done, offset + done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error("short read from " + path + " at byte " + std::to_string(offset + done) +
                                 (r < 0 ? std::string(": ") + std::strerror(err) : std::string(": file truncated")));
      }
      done += r;
    }
    ::close(fd);
    return wrapTensor(env, std::move(t));
  });
}

// meta(t) -> [shape, dtypeCode, deviceString, requiresGrad]
napi_value Meta(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& t = tensorOf(env, a.argv[0]);
    napi_value out, shape, dt, dev, rg;
    auto sizes = t.sizes();
    napi_create_array_with_length(env, sizes.size(), &shape);
    for (size_t i = 0; i < sizes.size(); i++) {
      napi_value e;
      napi_create_double(env, static_cast<double>(sizes[i]), &e);
      napi_set_element(env, shape, i, e);
    }
    napi_create_int32(env, static_cast<int32_t>(t.scalar_type()), &dt);
    std::string d = t.device().str();
    napi_create_string_utf8(env, d.c_str(), d.size(), &dev);
    napi_get_boolean(env, t.requires_grad(), &rg);
    napi_create_array_with_length(env, 4, &out);
    napi_set_element(env, out, 0, shape);
    napi_set_element(env, out, 1, dt);
    napi_set_element(env, out, 2, dev);
    napi_set_element(env, out, 3, rg);
    return out;
  });
}

// same(a, b) -> whether two handles hold the same TensorImpl (e.g. `to()` that changed nothing).
napi_value Same(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    napi_value out;
    napi_get_boolean(env, tensorOf(env, a.argv[0]).unsafeGetTensorImpl() == tensorOf(env, a.argv[1]).unsafeGetTensorImpl(), &out);
    return out;
  });
}

// share(h) -> a second handle on the same TensorImpl (same storage, same autograd identity: a
// gradient accumulated into one is read through the other). For holders that outlive a scope.
napi_value Share(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value { return wrapTensor(env, tensorOf(env, a.argv[0])); });
}

napi_value RequiresGrad(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    napi_value out;
    napi_get_boolean(env, tensorOf(env, a.argv[0]).requires_grad(), &out);
    return out;
  });
}

napi_value IsLeaf(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    napi_value out;
    napi_get_boolean(env, tensorOf(env, a.argv[0]).is_leaf(), &out);
    return out;
  });
}

napi_value SetRequiresGrad(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::Tensor t = tensorOf(env, a.argv[0]);
    t.set_requires_grad(toBool(env, a.argv[1]));
    return nullptr;
  });
}

// backward(t, grad?, retainGraph, createGraph)
napi_value Backward(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    const at::Tensor& t = tensorOf(env, a.argv[0]);
    at::Tensor g;
    if (a.argc > 1 && !isNullish(env, a.argv[1])) g = tensorOf(env, a.argv[1]);
    std::optional<bool> retain;
    if (a.argc > 2 && !isNullish(env, a.argv[2])) retain = toBool(env, a.argv[2]);
    bool create = a.argc > 3 && !isNullish(env, a.argv[3]) && toBool(env, a.argv[3]);
    t.backward(g, retain, create);
    return nullptr;
  });
}

napi_value Grad(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value { return wrapTensor(env, tensorOf(env, a.argv[0]).grad()); });
}

// setGrad(t, g | null)
napi_value SetGrad(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::Tensor t = tensorOf(env, a.argv[0]);
    if (isNullish(env, a.argv[1])) t.mutable_grad() = at::Tensor();
    else t.mutable_grad() = tensorOf(env, a.argv[1]);
    return nullptr;
  });
}

// dispose(handle) -> true if it freed a tensor, false if the handle was already stale.
napi_value Dispose(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  double h = 0;
  napi_get_value_double(env, a.argv[0], &h);
  napi_value out;
  napi_get_boolean(env, freeHandle(h), &out);
  return out;
}

// stats() -> [liveTensors, liveBytes (unique storages)]
napi_value Stats(napi_env env, napi_callback_info info) {
  return guarded(env, [&]() -> napi_value {
    std::unordered_set<const void*> seen;
    double bytes = 0;
    for (const Slot& s : table.slots) {
      if (!s.t.defined() || !s.t.has_storage()) continue;
      const void* key = s.t.storage().unsafeGetStorageImpl();
      if (seen.insert(key).second) bytes += static_cast<double>(s.t.storage().nbytes());
    }
    napi_value out, n, b;
    napi_create_double(env, static_cast<double>(table.live), &n);
    napi_create_double(env, bytes, &b);
    napi_create_array_with_length(env, 2, &out);
    napi_set_element(env, out, 0, n);
    napi_set_element(env, out, 1, b);
    return out;
  });
}

napi_value SetGradEnabled(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    bool prev = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(toBool(env, a.argv[0]));
    napi_value out;
    napi_get_boolean(env, prev, &out);
    return out;
  });
}

napi_value IsGradEnabled(napi_env env, napi_callback_info) {
  napi_value out;
  napi_get_boolean(env, c10::GradMode::is_enabled(), &out);
  return out;
}

napi_value ManualSeed(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    uint64_t seed = static_cast<uint64_t>(toInt(env, a.argv[0]));
    at::manual_seed(seed);
    return nullptr;
  });
}

// newGenerator(seed, device) -> Generator handle
napi_value NewGenerator(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    uint64_t seed = static_cast<uint64_t>(toInt(env, a.argv[0]));
    c10::Device dev = a.argc > 1 && !isNullish(env, a.argv[1]) ? toDevice(env, a.argv[1]) : c10::Device(at::kCPU);
    at::Generator g;
    if (dev.is_cpu()) {
      g = at::make_generator<at::CPUGeneratorImpl>(seed);
    } else {
      g = at::globalContext().getAcceleratorHooksInterface(dev.type()).getNewGenerator(dev.index());
      g.set_current_seed(seed);
    }
    napi_value out;
    napi_create_external(env, new at::Generator(g), finalizeGenerator, nullptr, &out);
    return out;
  });
}

napi_value GeneratorSeed(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    void* p = nullptr;
    napi_get_value_external(env, a.argv[0], &p);
    auto* g = static_cast<at::Generator*>(p);
    std::lock_guard<std::mutex> lock(g->mutex());
    g->set_current_seed(static_cast<uint64_t>(toInt(env, a.argv[1])));
    return nullptr;
  });
}

napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::set_num_threads(static_cast<int>(toInt(env, a.argv[0])));
    return nullptr;
  });
}

napi_value GetNumThreads(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_int32(env, at::get_num_threads(), &out);
  return out;
}

napi_value CudaInfo(napi_env env, napi_callback_info) {
  return guarded(env, [&]() -> napi_value {
    bool available = at::hasCUDA();
    int64_t count = available ? at::accelerator::deviceCount() : 0;
    napi_value out, a, c;
    napi_get_boolean(env, available, &a);
    napi_create_double(env, static_cast<double>(count), &c);
    napi_create_array_with_length(env, 2, &out);
    napi_set_element(env, out, 0, a);
    napi_set_element(env, out, 1, c);
    return out;
  });
}

napi_value CudaSynchronize(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    if (at::hasCUDA()) {
      int64_t index = a.argc > 0 && !isNullish(env, a.argv[0]) ? toInt(env, a.argv[0]) : -1;
      if (index < 0) {
        for (c10::DeviceIndex i = 0; i < at::accelerator::deviceCount(); i++) at::accelerator::synchronizeDevice(i);
      } else {
        at::accelerator::synchronizeDevice(static_cast<c10::DeviceIndex>(index));
      }
    }
    return nullptr;
  });
}

// cudaMemory(index) -> [allocatedBytes, reservedBytes]
napi_value CudaMemory(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    double allocated = 0, reserved = 0;
    if (at::hasCUDA()) {
      auto index = static_cast<c10::DeviceIndex>(a.argc > 0 && !isNullish(env, a.argv[0]) ? toInt(env, a.argv[0]) : 0);
      auto stats = at::accelerator::getDeviceStats(index);
      allocated = static_cast<double>(stats.allocated_bytes[0].current);
      reserved = static_cast<double>(stats.reserved_bytes[0].current);
    }
    napi_value out, x, y;
    napi_create_double(env, allocated, &x);
    napi_create_double(env, reserved, &y);
    napi_create_array_with_length(env, 2, &out);
    napi_set_element(env, out, 0, x);
    napi_set_element(env, out, 1, y);
    return out;
  });
}

// setErrorClasses(TorchError, OutOfMemoryError)
napi_value SetErrorClasses(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  Env* e = getEnv(env);
  if (e->torchError) napi_delete_reference(env, e->torchError);
  if (e->oomError) napi_delete_reference(env, e->oomError);
  napi_create_reference(env, a.argv[0], 1, &e->torchError);
  napi_create_reference(env, a.argv[1], 1, &e->oomError);
  return nullptr;
}

// setAutocast(device "cpu" | "cuda", enabled, dtype code, entering) -> [was enabled, previous dtype code].
// Entering and leaving are paired by the JS side (autocast()); leaving the outermost region
// clears libtorch's cache of casted weights, as torch.autocast's __exit__ does.
napi_value SetAutocast(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    std::string dev = toString(env, a.argv[0]);
    if (dev != "cpu" && dev != "cuda") throw JsArgError("autocast device must be 'cpu' or 'cuda'");
    const auto type = dev == "cpu" ? at::DeviceType::CPU : at::DeviceType::CUDA;
    const bool enabled = toBool(env, a.argv[1]);
    const bool was = at::autocast::is_autocast_enabled(type);
    const auto previous = at::autocast::get_autocast_dtype(type);
    at::autocast::set_autocast_dtype(type, scalarTypeOf(env, a.argv[2]));
    at::autocast::set_autocast_enabled(type, enabled);
    if (toBool(env, a.argv[3])) at::autocast::increment_nesting();
    else if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    napi_value out, w, d;
    napi_create_array_with_length(env, 2, &out);
    napi_get_boolean(env, was, &w);
    napi_create_int32(env, static_cast<int32_t>(previous), &d);
    napi_set_element(env, out, 0, w);
    napi_set_element(env, out, 1, d);
    return out;
  });
}

napi_value Version(napi_env env, napi_callback_info) {
  napi_value out;
  std::string v = TORCH_VERSION;
  napi_create_string_utf8(env, v.c_str(), v.size(), &out);
  return out;
}

#include "distributed.h"

void finalizeEnv(napi_env env, void* data, void*) {
  auto* e = static_cast<Env*>(data);
  delete e;
}

}  // namespace

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_set_instance_data(env, new Env(), finalizeEnv, nullptr);
  struct Fn { const char* name; napi_callback cb; };
  const Fn fns[] = {
      {"registerOp", RegisterOp}, {"call", Call}, {"callInplace", CallInplace}, {"binary", Binary},
      {"linear", Linear}, {"quantizedLinear", QuantizedLinear}, {"fusedDecoderLayer", FusedDecoderLayer}, {"dequantizeGgml", DequantizeGgml}, {"packTogether", PackTogether}, {"quantizeGgml", QuantizeGgml}, {"rmsNorm", RmsNorm}, {"fromBuffer", FromBuffer}, {"toBuffer", ToBuffer}, {"readFile", ReadFile}, {"meta", Meta},
      {"same", Same}, {"share", Share}, {"requiresGrad", RequiresGrad}, {"isLeaf", IsLeaf}, {"setRequiresGrad", SetRequiresGrad},
      {"backward", Backward}, {"grad", Grad}, {"setGrad", SetGrad}, {"dispose", Dispose},
      {"stats", Stats}, {"setGradEnabled", SetGradEnabled},
      {"isGradEnabled", IsGradEnabled}, {"manualSeed", ManualSeed}, {"newGenerator", NewGenerator},
      {"generatorSeed", GeneratorSeed}, {"setNumThreads", SetNumThreads}, {"getNumThreads", GetNumThreads},
      {"cudaInfo", CudaInfo}, {"cudaSynchronize", CudaSynchronize}, {"cudaMemory", CudaMemory},
      {"setErrorClasses", SetErrorClasses}, {"version", Version},
      {"distInfo", DistInfo}, {"tcpStore", TcpStore}, {"storeSet", StoreSet}, {"storeGet", StoreGet},
      {"storeAdd", StoreAdd}, {"storeCheck", StoreCheck}, {"processGroupGloo", ProcessGroupGloo},
      {"allReduce", AllReduce}, {"broadcast", Broadcast}, {"allGather", AllGather},
      {"reduceScatter", ReduceScatter}, {"barrier", Barrier}, {"destroyGroup", DestroyGroup},
      {"reducer", ReducerNew}, {"reducerPrepare", ReducerPrepare}, {"setAutocast", SetAutocast},
  };
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}
