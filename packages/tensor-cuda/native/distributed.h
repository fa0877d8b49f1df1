// c10d for @pisces/tensor-cuda: libtorch's TCPStore rendezvous, its Gloo process group and DDP's
// Reducer (bucketed gradient all-reduce fired from autograd hooks as gradients become ready).
// Included by addon.cc inside its anonymous namespace, after the handle and argument helpers.
//
// The objects cross to JS as externals (a few per process, so a finalizer each is cheap). Every
// collective blocks the calling thread until its Work completes: on CPU the Gloo threads do the
// transfer, and a dead peer surfaces as an exception (a JS TorchError), never a hang past the
// group's timeout.
//
// Gloo needs gloo/ headers that the torch wheel does not ship (it exports the symbols). CMake
// defines PISCES_WITH_GLOO (and USE_C10D_GLOO, which ProcessGroupGloo.hpp wants) only where it
// found them; without them the store and the reducer still build, and creating a Gloo group is an
// error that names the package to install.
// Its libtorch includes are at the top of addon.cc (they cannot sit in an anonymous namespace).
#pragma once

// One kind tag per external, so a store passed where a group is wanted is a clear error.
enum DistKind : uint32_t { kDistStore = 0x53544f52, kDistGroup = 0x47525550, kDistReducer = 0x52454455 };

struct DistHolder {
  DistKind kind;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::shared_ptr<c10d::Reducer> reducer;
};

void finalizeDist(napi_env, void* data, void*) { delete static_cast<DistHolder*>(data); }

napi_value wrapDist(napi_env env, DistHolder* h) {
  napi_value out;
  napi_create_external(env, h, finalizeDist, nullptr, &out);
  return out;
}

DistHolder* distOf(napi_env env, napi_value v, DistKind kind, const char* what) {
  void* data = nullptr;
  if (typeOf(env, v) != napi_external || napi_get_value_external(env, v, &data) != napi_ok || !data)
    throw JsArgError(std::string("expected a native ") + what);
  auto* h = static_cast<DistHolder*>(data);
  if (h->kind != kind) throw JsArgError(std::string("expected a native ") + what);
  if (kind == kDistGroup && !h->group) throw JsArgError("this process group was destroyed");
  if (kind == kDistReducer && !h->reducer) throw JsArgError("this reducer was destroyed");
  return h;
}

std::vector<at::Tensor> tensorList(napi_env env, napi_value v) {
  uint32_t n = arrayLength(env, v);
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; i++) out.push_back(tensorOf(env, element(env, v, i)));
  return out;
}

c10d::ReduceOp reduceOpOf(const std::string& name) {
  if (name == "sum") return c10d::ReduceOp(c10d::ReduceOp::SUM);
  if (name == "avg") return c10d::ReduceOp(c10d::ReduceOp::AVG);
  if (name == "product") return c10d::ReduceOp(c10d::ReduceOp::PRODUCT);
  if (name == "min") return c10d::ReduceOp(c10d::ReduceOp::MIN);
  if (name == "max") return c10d::ReduceOp(c10d::ReduceOp::MAX);
  throw JsArgError("unknown reduce op '" + name + "': use sum, avg, product, min or max");
}

napi_value jsBool(napi_env env, bool b) {
  napi_value out;
  napi_get_boolean(env, b, &out);
  return out;
}

// distInfo() -> [gloo available, nccl available]
napi_value DistInfo(napi_env env, napi_callback_info) {
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
#ifdef PISCES_WITH_GLOO
  napi_set_element(env, out, 0, jsBool(env, true));
#else
  napi_set_element(env, out, 0, jsBool(env, false));
#endif
  napi_set_element(env, out, 1, jsBool(env, false));
  return out;
}

// tcpStore(host, port, worldSize, isServer, timeoutMs, waitWorkers) -> store
napi_value TcpStore(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    c10d::TCPStoreOptions o;
    std::string host = toString(env, a.argv[0]);
    o.port = static_cast<std::uint16_t>(toInt(env, a.argv[1]));
    o.numWorkers = static_cast<std::size_t>(toInt(env, a.argv[2]));
    o.isServer = toBool(env, a.argv[3]);
    o.timeout = std::chrono::milliseconds(toInt(env, a.argv[4]));
    o.waitWorkers = toBool(env, a.argv[5]);
    auto* h = new DistHolder{kDistStore, c10::make_intrusive<c10d::TCPStore>(host, o), {}, {}};
    return wrapDist(env, h);
  });
}

// storeSet(store, key, value: string)
napi_value StoreSet(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* h = distOf(env, a.argv[0], kDistStore, "store");
    std::string value = toString(env, a.argv[2]);
    h->store->set(toString(env, a.argv[1]), std::vector<uint8_t>(value.begin(), value.end()));
    return nullptr;
  });
}

// storeGet(store, key) -> string (waits up to the store's timeout for the key)
napi_value StoreGet(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* h = distOf(env, a.argv[0], kDistStore, "store");
    auto bytes = h->store->get(toString(env, a.argv[1]));
    napi_value out;
    napi_create_string_utf8(env, reinterpret_cast<const char*>(bytes.data()), bytes.size(), &out);
    return out;
  });
}

// storeAdd(store, key, amount) -> the new value
napi_value StoreAdd(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* h = distOf(env, a.argv[0], kDistStore, "store");
    napi_value out;
    napi_create_double(env, static_cast<double>(h->store->add(toString(env, a.argv[1]), toInt(env, a.argv[2]))), &out);
    return out;
  });
}

// storeCheck(store, keys) -> whether all are set, without waiting
napi_value StoreCheck(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* h = distOf(env, a.argv[0], kDistStore, "store");
    std::vector<std::string> keys;
    uint32_t n = arrayLength(env, a.argv[1]);
    for (uint32_t i = 0; i < n; i++) keys.push_back(toString(env, element(env, a.argv[1], i)));
    return jsBool(env, h->store->check(keys));
  });
}

// processGroupGloo(store, rank, size, timeoutMs, groupName, interface) -> group. The group's keys
// live under "<groupName>/" in the store, as torch.distributed lays them out.
napi_value ProcessGroupGloo(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* s = distOf(env, a.argv[0], kDistStore, "store");
    int rank = static_cast<int>(toInt(env, a.argv[1]));
    int size = static_cast<int>(toInt(env, a.argv[2]));
    auto timeout = std::chrono::milliseconds(toInt(env, a.argv[3]));
    std::string name = toString(env, a.argv[4]);
    std::string iface = isNullish(env, arg(env, a, 5)) ? "" : toString(env, a.argv[5]);
#ifdef PISCES_WITH_GLOO
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(name + "/", s->store);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(iface.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                             : c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, options);
    auto group = c10::make_intrusive<c10d::ProcessGroup>(prefixed, rank, size);
    group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
    group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
    group->setGroupName(name);
    return wrapDist(env, new DistHolder{kDistGroup, s->store, group, {}});
#else
    (void)s, (void)rank, (void)size, (void)timeout, (void)iface;
    throw std::runtime_error(
        "this build of @pisces/tensor-cuda has no Gloo (the torch wheel ships no gloo/ headers): "
        "install them (apt-get install libgloo-dev) and rebuild with npx pisces-tensor-build");
#endif
  });
}

c10d::ProcessGroup& groupOf(napi_env env, napi_value v) { return *distOf(env, v, kDistGroup, "process group")->group; }

void waitWork(const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait()) throw std::runtime_error("the collective did not complete");
}

// allReduce(group, tensors, op) in place
napi_value AllReduce(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::NoGradGuard noGrad;  // a parameter is written in place, outside the graph
    auto& g = groupOf(env, a.argv[0]);
    auto tensors = tensorList(env, a.argv[1]);
    c10d::AllreduceOptions o;
    o.reduceOp = reduceOpOf(toString(env, a.argv[2]));
    waitWork(g.allreduce(tensors, o));
    return nullptr;
  });
}

// broadcast(group, tensors, root) in place
napi_value Broadcast(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::NoGradGuard noGrad;  // a parameter is written in place, outside the graph
    auto& g = groupOf(env, a.argv[0]);
    auto tensors = tensorList(env, a.argv[1]);
    c10d::BroadcastOptions o;
    o.rootRank = toInt(env, a.argv[2]);
    waitWork(g.broadcast(tensors, o));
    return nullptr;
  });
}

// allGather(group, outputs (one per rank), input)
napi_value AllGather(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::NoGradGuard noGrad;  // a parameter is written in place, outside the graph
    auto& g = groupOf(env, a.argv[0]);
    std::vector<std::vector<at::Tensor>> outputs{tensorList(env, a.argv[1])};
    std::vector<at::Tensor> inputs{tensorOf(env, a.argv[2])};
    waitWork(g.allgather(outputs, inputs));
    return nullptr;
  });
}

// reduceScatter(group, output, inputs (one per rank), op)
napi_value ReduceScatter(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    at::NoGradGuard noGrad;  // a parameter is written in place, outside the graph
    auto& g = groupOf(env, a.argv[0]);
    std::vector<at::Tensor> outputs{tensorOf(env, a.argv[1])};
    std::vector<std::vector<at::Tensor>> inputs{tensorList(env, a.argv[2])};
    c10d::ReduceScatterOptions o;
    o.reduceOp = reduceOpOf(toString(env, a.argv[3]));
    waitWork(g.reduce_scatter(outputs, inputs, o));
    return nullptr;
  });
}

napi_value Barrier(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    waitWork(groupOf(env, a.argv[0]).barrier());
    return nullptr;
  });
}

// destroyGroup(group): drops the group (its Gloo threads and sockets) now, not at GC.
napi_value DestroyGroup(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    void* data = nullptr;
    if (napi_get_value_external(env, a.argv[0], &data) == napi_ok && data) {
      auto* h = static_cast<DistHolder*>(data);
      if (h->kind == kDistGroup || h->kind == kDistReducer) {
        h->reducer.reset();
        h->group.reset();
      }
    }
    return nullptr;
  });
}

// reducer(group, params, bucketCapBytes, firstBucketCapBytes, findUnusedParameters) -> reducer.
// Buckets as DistributedDataParallel makes them: compute_bucket_assignment_by_size over the
// parameters with limits [first, cap], in reverse order (gradients arrive roughly last-first).
napi_value ReducerNew(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* g = distOf(env, a.argv[0], kDistGroup, "process group");
    auto params = tensorList(env, a.argv[1]);
    int64_t cap = toInt(env, a.argv[2]);
    int64_t first = toInt(env, a.argv[3]);
    bool findUnused = toBool(env, a.argv[4]);
    std::vector<bool> sparse(params.size(), false);
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(params, {static_cast<size_t>(first), static_cast<size_t>(cap)}, sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::vector<int64_t> rebuildLimits{first, cap};
    std::unordered_map<size_t, std::string> names;
    auto reducer = std::make_shared<c10d::Reducer>(params, buckets, g->group, sparse, cap, findUnused,
                                                   /*gradient_as_bucket_view=*/false, names, first,
                                                   /*skip_all_reduce_unused_params=*/false,
                                                   /*use_python_reducer=*/false, rebuildLimits);
    return wrapDist(env, new DistHolder{kDistReducer, g->store, g->group, reducer});
  });
}

// reducerPrepare(reducer, outputs): before a backward whose gradients are to be synchronised.
napi_value ReducerPrepare(napi_env env, napi_callback_info info) {
  Args a = getArgs(env, info);
  return guarded(env, [&]() -> napi_value {
    auto* r = distOf(env, a.argv[0], kDistReducer, "reducer");
    r->reducer->prepare_for_forward();
    r->reducer->prepare_for_backward(tensorList(env, a.argv[1]));
    return nullptr;
  });
}
