// Deterministic memory management. A tensor owns native (maybe GPU) memory that V8's garbage
// collector cannot see, so tensors are released explicitly: `t.dispose()`, `using t = ...`, or a
// scope that frees every tensor created inside it except the ones it returns. A
// FinalizationRegistry frees what is forgotten, whenever the GC runs (a safety net, not a plan).
import { AsyncLocalStorage } from "node:async_hooks";
import { native, type Handle } from "./native.js";

/** What a scope needs of a tensor (kept structural to avoid an import cycle with tensor.ts). */
export interface Disposable {
  _h: Handle;
  _kept: boolean;
  dispose(): void;
}

interface Scope {
  tensors: Disposable[];
}

const syncScopes: Scope[] = [];
const asyncScopes = new AsyncLocalStorage<Scope>();
let asyncScopeCount = 0;

/** Frees a tensor's handle when its JS object is collected without dispose(). */
export const finalizer = new FinalizationRegistry<Handle>((h) => {
  native.dispose(h);
});

function currentScope(): Scope | undefined {
  const n = syncScopes.length;
  if (n > 0) return syncScopes[n - 1];
  return asyncScopeCount > 0 ? asyncScopes.getStore() : undefined;
}

/**
 * Called for every new tensor: the innermost open scope takes ownership of it. A tensor outside
 * any scope goes to the FinalizationRegistry instead; a scoped one only if it outlives its scopes
 * (returned to the top level, or kept), which saves the registry's cost on hot scoped loops.
 */
export function track(t: Disposable): void {
  const n = syncScopes.length;
  if (n > 0) {
    syncScopes[n - 1]!.tensors.push(t);
    return;
  }
  const s = asyncScopeCount > 0 ? asyncScopes.getStore() : undefined;
  if (s) s.tensors.push(t);
  else deferRegistration(t);
}

// Registration with the FinalizationRegistry costs about half a microsecond, as much as a small op.
// Unscoped tensors are queued and registered in batches (every 4096 tensors, or at the next
// microtask); those already disposed by then (`x.add(y).dispose()`) are never registered.
let pending: Disposable[] = [];
let flushQueued = false;

function flushPending(): void {
  flushQueued = false;
  const batch = pending;
  pending = [];
  for (const t of batch) if (t._h >= 0) finalizer.register(t, t._h);
}

function deferRegistration(t: Disposable): void {
  pending.push(t);
  if (pending.length >= 4096) flushPending();
  else if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flushPending);
  }
}

/** Marks a tensor as long-lived: no scope will dispose it (dispose it yourself). Returns it. */
export function keep<T extends Disposable>(t: T): T {
  if (!t._kept && currentScope() !== undefined) finalizer.register(t, t._h);
  t._kept = true;
  return t;
}

function collectReturned(value: unknown, into: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if (typeof (value as Disposable)._h === "number" && typeof (value as Disposable).dispose === "function") {
    into.add(value as Disposable);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collectReturned(v, into, seen);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collectReturned(v, into, seen);
    return;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    for (const v of Object.values(value)) collectReturned(v, into, seen);
  }
}

function closeScope(scope: Scope, result: unknown): void {
  const returned = new Set<Disposable>();
  collectReturned(result, returned, new Set());
  const parent = currentScope();
  for (const t of scope.tensors) {
    if (returned.has(t)) {
      if (parent) parent.tensors.push(t);
      else if (!t._kept) finalizer.register(t, t._h);
    } else if (!t._kept) t.dispose();
  }
  scope.tensors.length = 0;
}

/**
 * Runs `fn` and disposes every tensor created inside it, except tensors reachable from its
 * return value (through arrays, plain objects and Maps) and tensors passed to `keep()`.
 * Returned tensors pass to the enclosing scope, if any.
 */
export function scope<T>(fn: () => T): T {
  const s: Scope = { tensors: [] };
  syncScopes.push(s);
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new TypeError("scope(fn): fn returned a Promise; use scopeAsync() for async code");
    return result;
  } finally {
    syncScopes.pop();
    closeScope(s, result);
  }
}

/** Async version of `scope`: tensors created by `fn` and anything it awaits are tracked. */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const s: Scope = { tensors: [] };
  asyncScopeCount++;
  let result: T | undefined;
  try {
    result = await asyncScopes.run(s, fn);
    return result;
  } finally {
    asyncScopeCount--;
    closeScope(s, result);
  }
}

export interface MemoryStats {
  /** Tensors alive in this thread (not yet disposed or collected). */
  liveTensors: number;
  /** Bytes of the distinct storages those tensors hold (CPU and GPU). */
  liveBytes: number;
  /** CUDA caching allocator: bytes allocated and reserved on the current device (0 without CUDA). */
  cudaAllocated: number;
  cudaReserved: number;
}

export function memoryStats(): MemoryStats {
  const [liveTensors, liveBytes] = native.stats();
  const [cudaAllocated, cudaReserved] = native.cudaInfo()[0] ? native.cudaMemory(0) : [0, 0];
  return { liveTensors, liveBytes, cudaAllocated, cudaReserved };
}

/**
 * Inference mode for callers: runs `fn` with gradient recording off and inside a scope, so every
 * tensor it makes is freed except those it returns (`torch.inference_mode()` plus a scope).
 * Sync or async: when `fn` returns a Promise, tensors made after its awaits are tracked too, and
 * recording stays off until it settles (for all code running meanwhile, as `noGrad`).
 */
export function inference<T>(fn: () => Promise<T>): Promise<T>;
export function inference<T>(fn: () => T): T;
export function inference<T>(fn: () => T | Promise<T>): T | Promise<T> {
  const previous = native.setGradEnabled(false);
  const s: Scope = { tensors: [] };
  // the synchronous part goes to `s` through the sync stack; continuations after an await find
  // `s` through the async context that asyncScopes.run gives the promise chain
  syncScopes.push(s);
  asyncScopeCount++;
  let result: T | Promise<T> | undefined;
  let settled = true;
  try {
    result = asyncScopes.run(s, fn);
    if (!(result instanceof Promise)) return result;
    settled = false;
  } finally {
    syncScopes.pop();
    if (settled) {
      asyncScopeCount--;
      closeScope(s, result);
      native.setGradEnabled(previous);
    }
  }
  const finish = (value: unknown) => {
    asyncScopeCount--;
    closeScope(s, value);
    native.setGradEnabled(previous);
  };
  return (result as Promise<T>).then(
    (value) => {
      finish(value);
      return value;
    },
    (error: unknown) => {
      finish(undefined);
      throw error;
    },
  );
}

/**
 * The tensors a long-running loop owns across steps (a generator's state, a denoising loop's
 * latents): held out of every scope, replaced step by step, and all freed by `dispose()` (or
 * `using`), whether the loop finishes, throws or is abandoned.
 */
export class Owned {
  private readonly tensors = new Set<Disposable>();
  /** Takes ownership of `t` (no scope will free it) and returns it. */
  hold<X extends Disposable>(t: X): X {
    if (!this.tensors.has(t)) this.tensors.add(keep(t));
    return t;
  }
  /** Frees `old` (if owned here) and holds `next` in its place. */
  replace<X extends Disposable>(old: Disposable | null | undefined, next: X): X {
    if (old && old !== (next as Disposable) && this.tensors.delete(old)) old.dispose();
    return this.hold(next);
  }
  /** Hands `t` back to the caller: no longer freed by dispose(). */
  release<X extends Disposable>(t: X): X {
    this.tensors.delete(t);
    return t;
  }
  get size(): number {
    return this.tensors.size;
  }
  dispose(): void {
    for (const t of this.tensors) t.dispose();
    this.tensors.clear();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
