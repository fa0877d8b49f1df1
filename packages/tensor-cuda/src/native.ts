// Loads the libtorch addon built by scripts/build-native.mjs, and registers ATen operators by name.
import { existsSync } from "node:fs";
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
  rmsNorm(x: Handle, w: Handle | null, eps: number | null, mode?: number): Handle;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: number, device?: string): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  readFile(path: string, offset: number, nbytes: number, shape: readonly number[], dtype: number): Handle;
  meta(h: Handle): [number[], number, string, boolean];
  same(a: Handle, b: Handle): boolean;
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
}

function load(): NativeAddon {
  const url = new URL("../build/Release/pisces_tensor.node", import.meta.url);
  const path = fileURLToPath(url);
  if (!existsSync(path))
    throw new Error(
      `@pisces/tensor-cuda: the libtorch addon is not built (${path} is missing). ` +
        "Install PyTorch (pip install torch==2.13.0) or set LIBTORCH, then run `node scripts/build-native.mjs` in the package folder.",
    );
  const require = createRequire(import.meta.url);
  const addon = require(path) as NativeAddon;
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
