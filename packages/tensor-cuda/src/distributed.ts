// torch.distributed in camelCase: libtorch's c10d (TCPStore rendezvous, the Gloo process group,
// and DistributedDataParallel's C++ Reducer), bound by native/distributed.h. Nothing here moves
// bytes itself: every collective is libtorch's.
import { createServer } from "node:net";
import { native } from "./native.js";
import type { Module } from "./nn/module.js";
import type { Tensor } from "./tensor.js";

/** A distributed setup problem (a missing variable, no Gloo in this build, a bad rank). Collective failures are TorchErrors. */
export class DistributedError extends Error {
  override name = "DistributedError";
}

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg" | "product" | "min" | "max";

/** Gloo's default, as torch.distributed's: 30 minutes. */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;

/** Whether this build can create a process group of `backend` (torch.distributed.is_gloo_available / is_nccl_available). */
export function isAvailable(backend: Backend = "gloo"): boolean {
  const [gloo, nccl] = native.distInfo();
  return backend === "gloo" ? gloo : nccl;
}

function checkInt(value: number, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new DistributedError(`${what} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

export interface TCPStoreOptions {
  /** How many processes meet at this store (the server counts). */
  worldSize: number;
  /** This process runs the server (rank 0 in torchrun's layout). */
  isMaster: boolean;
  /** How long get/wait and the initial connection wait (default 30 minutes). */
  timeoutMs?: number;
  /** The server waits until every worker has connected (default true). */
  waitForWorkers?: boolean;
}

/** c10d's TCPStore: a key-value server on the master that every rank connects to (torch.distributed.TCPStore). */
export class TCPStore {
  /** @internal */
  readonly _native: object;
  readonly timeoutMs: number;

  constructor(
    readonly hostName: string,
    readonly port: number,
    options: TCPStoreOptions,
  ) {
    checkInt(port, "port", 0, 65535);
    checkInt(options.worldSize, "worldSize", 1);
    this.timeoutMs = checkInt(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs", 1);
    this._native = native.tcpStore(hostName, port, options.worldSize, options.isMaster, this.timeoutMs, options.waitForWorkers ?? true);
  }
  set(key: string, value: string): void {
    native.storeSet(this._native, key, value);
  }
  /** The value of `key`, waiting up to the store's timeout for some rank to set it. */
  get(key: string): string {
    return native.storeGet(this._native, key);
  }
  /** Adds `amount` to the integer at `key` (0 when unset) and returns the new value. */
  add(key: string, amount: number): number {
    return native.storeAdd(this._native, key, checkInt(amount, "amount", Number.MIN_SAFE_INTEGER));
  }
  /** Whether every key is set, without waiting. */
  check(keys: readonly string[]): boolean {
    return native.storeCheck(this._native, keys);
  }
}

export interface ProcessGroupOptions {
  /** How long a collective may wait for the other ranks before failing (default 30 minutes). */
  timeoutMs?: number;
  /** Keys of this group live under "<groupName>/" in the store (default "default_pg"). */
  groupName?: string;
  /** The network interface Gloo binds (GLOO_SOCKET_IFNAME's role; default: the one the hostname resolves to, else loopback). */
  interface?: string;
}

const handles = (tensors: Tensor | readonly Tensor[]) => (Array.isArray(tensors) ? tensors : [tensors as Tensor]).map((t) => t._h);

/**
 * A group of processes running collectives together (a c10d ProcessGroup with a Gloo backend).
 * Every call blocks until this rank's part is done; a rank that died makes the others throw a
 * TorchError (a closed connection at once, or the timeout).
 */
export class ProcessGroup {
  /** @internal */
  _native: object | null;

  private constructor(
    native_: object,
    readonly rank: number,
    readonly size: number,
    readonly backend: Backend,
    readonly store: TCPStore,
  ) {
    this._native = native_;
  }

  /** A Gloo group over `store` (CPU tensors). */
  static gloo(store: TCPStore, rank: number, worldSize: number, options: ProcessGroupOptions = {}): ProcessGroup {
    checkInt(worldSize, "worldSize", 1);
    checkInt(rank, "rank", 0, worldSize - 1);
    if (!isAvailable("gloo"))
      throw new DistributedError(
        "this build of @pisces/tensor-cuda has no Gloo: the torch wheel ships no gloo/ headers. Install them (apt-get install libgloo-dev) and rebuild: npx pisces-tensor-build",
      );
    const timeout = checkInt(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs", 1);
    const handle = native.processGroupGloo(store._native, rank, worldSize, timeout, options.groupName ?? "default_pg", options.interface ?? null);
    return new ProcessGroup(handle, rank, worldSize, "gloo", store);
  }

  private get group(): object {
    if (!this._native) throw new DistributedError("this process group was destroyed");
    return this._native;
  }

  /** Reduces `tensors` across ranks in place (each the same shape on every rank). */
  allReduce(tensors: Tensor | readonly Tensor[], options: { op?: ReduceOp } = {}): void {
    native.allReduce(this.group, handles(tensors), options.op ?? "sum");
  }
  /** Copies rank `src`'s tensor into every rank's, in place. */
  broadcast(tensor: Tensor, options: { src?: number } = {}): void {
    native.broadcast(this.group, [tensor._h], checkInt(options.src ?? 0, "src", 0, this.size - 1));
  }
  /** Fills outputs[r] with rank r's `input` (outputs: one tensor per rank, shaped like input). */
  allGather(outputs: readonly Tensor[], input: Tensor): void {
    if (outputs.length !== this.size) throw new DistributedError(`allGather needs one output per rank (${this.size}), got ${outputs.length}`);
    native.allGather(this.group, handles(outputs), input._h);
  }
  /** output = the reduction over ranks of every rank's inputs[this.rank]. */
  reduceScatter(output: Tensor, inputs: readonly Tensor[], options: { op?: ReduceOp } = {}): void {
    if (inputs.length !== this.size) throw new DistributedError(`reduceScatter needs one input per rank (${this.size}), got ${inputs.length}`);
    native.reduceScatter(this.group, output._h, handles(inputs), options.op ?? "sum");
  }
  /** Returns once every rank has called it. */
  barrier(): void {
    native.barrier(this.group);
  }
  /** Closes the group's connections and threads now (torch.distributed.destroy_process_group). */
  destroy(): void {
    if (this._native) native.destroyGroup(this._native);
    this._native = null;
  }
  [Symbol.dispose](): void {
    this.destroy();
  }
}

export interface InitProcessGroupOptions extends ProcessGroupOptions {
  backend?: Backend;
  /** Default: $RANK. */
  rank?: number;
  /** Default: $WORLD_SIZE. */
  worldSize?: number;
  /** Default: $MASTER_ADDR, else 127.0.0.1. */
  masterAddr?: string;
  /** Default: $MASTER_PORT, else 29500. */
  masterPort?: number;
  /** Environment to read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** A TCP port free on `host` now (the OS picks it), for a local store: what a launcher of local ranks needs. */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Where this process sits, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). */
export function launchEnvironment(
  env: NodeJS.ProcessEnv = process.env,
): { rank: number; worldSize: number; localRank: number; masterAddr: string; masterPort: number } | null {
  if (env.WORLD_SIZE === undefined && env.RANK === undefined) return null;
  const int = (name: string, fallback?: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") {
      if (fallback !== undefined) return fallback;
      throw new DistributedError(`${name} is not set: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; set them all or none`);
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new DistributedError(`${name}=${raw} is not a non-negative integer`);
    return n;
  };
  const worldSize = int("WORLD_SIZE");
  const rank = int("RANK");
  if (worldSize < 1 || rank >= worldSize) throw new DistributedError(`RANK=${rank} does not fit WORLD_SIZE=${worldSize}`);
  return { rank, worldSize, localRank: int("LOCAL_RANK", rank), masterAddr: env.MASTER_ADDR || "127.0.0.1", masterPort: int("MASTER_PORT", 29500) };
}

/** torch.distributed.init_process_group(init_method="env://"): the store on rank 0, a group over it. */
export function initProcessGroup(options: InitProcessGroupOptions = {}): ProcessGroup {
  const backend = options.backend ?? "gloo";
  if (backend !== "gloo")
    throw new DistributedError(`backend '${backend}' is not bound yet: only 'gloo' (CPU tensors) is; NCCL needs a CUDA build and is future work`);
  const launch = launchEnvironment(options.env ?? process.env);
  const rank = options.rank ?? launch?.rank;
  const worldSize = options.worldSize ?? launch?.worldSize;
  if (rank === undefined || worldSize === undefined)
    throw new DistributedError("initProcessGroup needs a rank and a world size: pass them, or launch with torchrun (which sets RANK and WORLD_SIZE)");
  checkInt(worldSize, "worldSize", 1);
  checkInt(rank, "rank", 0, worldSize - 1);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const store = new TCPStore(options.masterAddr ?? launch?.masterAddr ?? "127.0.0.1", options.masterPort ?? launch?.masterPort ?? 29500, {
    worldSize,
    isMaster: rank === 0,
    timeoutMs,
  });
  return ProcessGroup.gloo(store, rank, worldSize, { ...options, timeoutMs });
}

export interface DistributedDataParallelOptions {
  /** Gradient bucket size (default 25 MB, DDP's). */
  bucketCapMb?: number;
  /** The first bucket's size (default 1 MB, DDP's), so the last layers' gradients leave early. */
  firstBucketCapMb?: number;
  /** Parameters that some steps do not use get no gradient on any rank rather than a hang (default false, DDP's). */
  findUnusedParameters?: boolean;
}

/**
 * Data-parallel training as torch.nn.parallel.DistributedDataParallel does it, with its own C++
 * Reducer: parameters and buffers broadcast from rank 0 at construction; during each synchronised
 * backward, gradients are copied into buckets and all-reduced (averaged) as the buckets fill,
 * overlapping the rest of the backward. Call `prepareForBackward(outputs)` after the forward and
 * before `backward()` of a step whose gradients should be synchronised (what DDP's forward does);
 * backwards without it accumulate locally, as under DDP's no_sync().
 */
export class DistributedDataParallel {
  private reducer: object | null;

  constructor(
    readonly module: Module,
    readonly group: ProcessGroup,
    options: DistributedDataParallelOptions = {},
  ) {
    const params = module.parameters().filter((p) => p.requiresGrad);
    if (params.length === 0) throw new DistributedError("DistributedDataParallel: the module has no parameter that requires a gradient");
    for (const t of [...module.parameters(), ...Array.from(module.namedBuffers(), ([, b]) => b)]) group.broadcast(t, { src: 0 });
    const mb = (v: number, what: string) => {
      if (!(v > 0)) throw new DistributedError(`${what} must be > 0, got ${v}`);
      return Math.round(v * 1024 * 1024);
    };
    this.reducer = native.reducer(
      group._native ??
        (() => {
          throw new DistributedError("the process group was destroyed");
        })(),
      params.map((p) => p._h),
      mb(options.bucketCapMb ?? 25, "bucketCapMb"),
      mb(options.firstBucketCapMb ?? 1, "firstBucketCapMb"),
      options.findUnusedParameters ?? false,
    );
  }

  /** Arms the gradient hooks for the next backward (pass the forward's outputs when findUnusedParameters). */
  prepareForBackward(outputs: readonly Tensor[] = []): void {
    if (!this.reducer) throw new DistributedError("this DistributedDataParallel was disposed");
    native.reducerPrepare(this.reducer, handles(outputs));
  }

  dispose(): void {
    if (this.reducer) native.destroyGroup(this.reducer);
    this.reducer = null;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
