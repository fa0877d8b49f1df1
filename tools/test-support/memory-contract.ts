// The memory contract's test, shared by every package: a public entry point called outside any
// scope leaves exactly its outputs live, and 1,000 calls keep live tensors and RSS flat.
// The tensor library is passed in (tools/ has no dependencies of its own).

interface TensorLike {
  _h: number;
  dispose(): void;
}
interface TensorLib {
  memoryStats(): { liveTensors: number };
  Tensor: abstract new (...args: never[]) => TensorLike;
}

/** Distinct tensors reachable from a value through arrays, plain objects and class instances' own fields. */
export function tensorsIn(T: TensorLib, value: unknown, into = new Set<TensorLike>(), seen = new Set<unknown>()): Set<TensorLike> {
  if (value === null || typeof value !== "object" || seen.has(value)) return into;
  seen.add(value);
  if (value instanceof T.Tensor) into.add(value as TensorLike);
  else for (const v of Array.isArray(value) ? value : Object.values(value)) tensorsIn(T, v, into, seen);
  return into;
}

/** Lets pending FinalizationRegistry callbacks run, so counts only move by what the code under test does. */
export async function settle(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
}

export interface ContractResult {
  /** Live tensors added by one call, and tensors in its output. */
  added: number;
  outputs: number;
  /** After disposing the outputs, live tensors compared to before the call (0 when nothing leaked). */
  leftAfterDispose: number;
  /** Over `calls` further calls (outputs disposed each time): change in live tensors, RSS growth in bytes. */
  liveDrift: number;
  rssGrowth: number;
}

/**
 * Runs the contract check for `call` (sync or async). One call runs first, unmeasured: process-wide
 * caches made once (llama's RoPE sign vector per dtype and device) are not leaks.
 */
/**
 * Gives the event loop a turn when more than a second has passed since the last: a loop of
 * synchronous calls that awaits only their (non-promise) results never reaches it, and vitest's
 * worker then misses its 60 s RPC deadline on a slow machine ("Timeout calling onTaskUpdate").
 */
let lastTurn = performance.now();
async function turn(): Promise<void> {
  if (performance.now() - lastTurn < 1000) return;
  await new Promise((r) => setImmediate(r));
  lastTurn = performance.now();
}

export async function checkMemoryContract(T: TensorLib, call: () => unknown, calls = 1000): Promise<ContractResult> {
  for (const t of tensorsIn(T, await call())) t.dispose();
  await settle();
  const before = T.memoryStats().liveTensors;
  const out = await call();
  const added = T.memoryStats().liveTensors - before;
  const outs = tensorsIn(T, out);
  for (const t of outs) t.dispose();
  const leftAfterDispose = T.memoryStats().liveTensors - before;
  // warm up (allocator pools, JIT), then measure
  for (let i = 0; i < 20; i++) {
    for (const t of tensorsIn(T, await call())) t.dispose();
    await turn();
  }
  await settle();
  const live0 = T.memoryStats().liveTensors;
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < calls; i++) {
    for (const t of tensorsIn(T, await call())) t.dispose();
    await turn();
  }
  await settle();
  return { added, outputs: outs.size, leftAfterDispose, liveDrift: T.memoryStats().liveTensors - live0, rssGrowth: process.memoryUsage().rss - rss0 };
}

/** The contract's assertions, for vitest's `expect`: outputs only, nothing left, flat over the calls. */
export async function expectMemoryContract(
  T: TensorLib,
  expect: (v: unknown) => { toBe(x: unknown): void; toBeLessThan(x: number): void },
  call: () => unknown,
  calls = 1000,
): Promise<void> {
  const r = await checkMemoryContract(T, call, calls);
  expect(r.added).toBe(r.outputs);
  expect(r.leftAfterDispose).toBe(0);
  expect(r.liveDrift).toBe(0);
  expect(r.rssGrowth).toBeLessThan(64 * 2 ** 20);
}
