// Loads the libtorch addon built by scripts/build-native.mjs, and registers ATen operators by name.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { OutOfMemoryError, TorchError } from "./errors.js";

/** A tensor handle: slot index + generation, owned by one JS Tensor. */
export type Handle = number;

export interface NativeAddon {
  registerOp(name: string, overload: string): number;
  call(op: number, ...args: unknown[]): any;
  callInplace(op: number, ...args: unknown[]): void;
  binary(kind: number, a: Handle, b: Handle | number | boolean): Handle;
  linear(x: Handle, w: Handle, b: Handle | null, mode?: number): Handle;
  quantizedLinear(x: Handle, packed: Handle, type: number, b: Handle | null, mode?: number): Handle;
  fusedDecoderLayer(
    x: Handle,
    norms: Handle[],
    projections: Handle[],
    types: number[],
    cos: Handle,
    sin: Handle,
    keys: Handle,
    values: Handle,
    position: number,
    eps: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
  ): Handle;
  dequantizeGgml(packed: Handle, type: number, inFeatures: number, mode?: number): Handle;
  quantizeGgml(weight: Handle, type: number): Handle;
  packTogether(tensors: readonly Handle[], hugePages: boolean): Handle[];
  rmsNorm(x: Handle, w: Handle | null, eps: number | null, mode?: number): Handle;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: number, device?: string): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  readFile(path: string, offset: number, nbytes: number, shape: readonly number[], dtype: number): Handle;
  meta(h: Handle): [number[], number, string, boolean];
  same(a: Handle, b: Handle): boolean;
  share(h: Handle): Handle;
  requiresGrad(h: Handle): boolean;
  isLeaf(h: Handle): boolean;
  setRequiresGrad(h: Handle, value: boolean): void;
  backward(h: Handle, grad: Handle | null, retainGraph: boolean | null, createGraph: boolean): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  dispose(h: Handle): boolean;
  stats(): [number, number];
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  manualSeed(seed: number | bigint): void;
  newGenerator(seed: number | bigint, device?: string): object;
  generatorSeed(g: object, seed: number | bigint): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  cudaInfo(): [boolean, number];
  cudaSynchronize(index?: number): void;
  cudaMemory(index?: number): [number, number];
  setErrorClasses(torchError: unknown, oomError: unknown): void;
  version(): string;
  setAutocast(device: string, enabled: boolean, dtype: number, entering: boolean): [boolean, number];
  // c10d (native/distributed.h)
  distInfo(): [boolean, boolean];
  tcpStore(host: string, port: number, worldSize: number, isServer: boolean, timeoutMs: number, waitWorkers: boolean): object;
  storeSet(store: object, key: string, value: string): void;
  storeGet(store: object, key: string): string;
  storeAdd(store: object, key: string, amount: number): number;
  storeCheck(store: object, keys: readonly string[]): boolean;
  processGroupGloo(store: object, rank: number, size: number, timeoutMs: number, groupName: string, iface: string | null): object;
  allReduce(group: object, tensors: readonly Handle[], op: string): void;
  broadcast(group: object, tensors: readonly Handle[], root: number): void;
  allGather(group: object, outputs: readonly Handle[], input: Handle): void;
  reduceScatter(group: object, output: Handle, inputs: readonly Handle[], op: string): void;
  barrier(group: object): void;
  destroyGroup(groupOrReducer: object): void;
  reducer(group: object, params: readonly Handle[], bucketCapBytes: number, firstBucketCapBytes: number, findUnusedParameters: boolean): object;
  reducerPrepare(reducer: object, outputs: readonly Handle[]): void;
}

const REBUILD = "npx pisces-tensor-build (in your project; it runs this package's scripts/build-native.mjs --force)";

function load(): NativeAddon {
  const url = new URL("../build/Release/pisces_tensor.node", import.meta.url);
  const path = fileURLToPath(url);
  const infoPath = fileURLToPath(new URL("../build/Release/build-info.json", import.meta.url));
  if (!existsSync(path))
    throw new Error(
      `@pisces/tensor-cuda: the libtorch addon is not built (${path} is missing). It is built by this package's install script, which did not run:\n` +
        "  - pnpm 10+ blocks install scripts by default (ERR_PNPM_IGNORED_BUILDS): run `pnpm approve-builds` and allow @pisces/tensor-cuda,\n" +
        '    or add it to "pnpm": {"onlyBuiltDependencies": ["@pisces/tensor-cuda"]} in package.json, then `pnpm rebuild @pisces/tensor-cuda`;\n' +
        "  - npm 11 warns and may skip them: allow them (npm install --allow-scripts=@pisces/tensor-cuda) or run the build yourself;\n" +
        "  - if the build itself failed, its message said why (usually: no PyTorch/libtorch, no cmake, no C++20 compiler).\n" +
        `  Build now: ${REBUILD}`,
    );
  const info = existsSync(infoPath) ? (JSON.parse(readFileSync(infoPath, "utf8")) as { torchVersion?: string; libDir?: string; cuda?: string | null }) : null;
  if (info?.libDir && !existsSync(info.libDir))
    throw new Error(
      `@pisces/tensor-cuda: the addon was built against libtorch in ${info.libDir}, which no longer exists (torch uninstalled or moved). Rebuild: ${REBUILD}`,
    );
  // libgomp (libtorch's OpenMP) reads its settings when it is loaded, with the addon just below.
  // Its idle threads spin by default; on a machine shared with other work they take the cores
  // from the threads that have work (decoding ran 3-7x slower under load, and slower even alone,
  // as they competed with the kernels' own pool). Passive waiting, unless the user chose otherwise.
  // The variable is set only while the addon (and with it libgomp) loads, so child processes keep
  // their own defaults.
  // A short spin (GOMP_SPINCOUNT 10,000, a few microseconds) before sleeping keeps back-to-back
  // parallel regions cheap (a UNet step runs hundreds of them: fully passive waiting made it 1.5x
  // slower) while idle threads still leave the cores to others almost at once.
  const userPolicy = process.env.OMP_WAIT_POLICY;
  const userSpin = process.env.GOMP_SPINCOUNT;
  if (userPolicy === undefined) process.env.OMP_WAIT_POLICY = "PASSIVE";
  if (userPolicy === undefined && userSpin === undefined) process.env.GOMP_SPINCOUNT = "10000";
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(path) as NativeAddon;
  } catch (e) {
    throw new Error(
      `@pisces/tensor-cuda: the addon does not load against the libtorch now installed${info?.torchVersion ? ` (it was built for torch ${info.torchVersion})` : ""}: ${(e as Error).message.split("\n")[0]}. Rebuild: ${REBUILD}`,
    );
  } finally {
    if (userPolicy === undefined) delete process.env.OMP_WAIT_POLICY;
    if (userPolicy === undefined && userSpin === undefined) delete process.env.GOMP_SPINCOUNT;
  }
  const runtime = addon.version();
  if (info?.torchVersion && info.torchVersion !== "unknown" && !info.torchVersion.startsWith(runtime))
    throw new Error(
      `@pisces/tensor-cuda: the addon was built for torch ${info.torchVersion} but libtorch ${runtime} is loaded (torch was upgraded). Rebuild: ${REBUILD}`,
    );
  addon.setErrorClasses(TorchError, OutOfMemoryError);
  return addon;
}

export const native: NativeAddon = load();

/** Registers an ATen operator (`aten::name.overload`) and returns its id for `native.call`. */
export function op(qualified: string): number {
  const dot = qualified.indexOf(".");
  const name = dot < 0 ? qualified : qualified.slice(0, dot);
  const overload = dot < 0 ? "" : qualified.slice(dot + 1);
  return native.registerOp(name.includes("::") ? name : `aten::${name}`, overload);
}
