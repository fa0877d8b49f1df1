// A static key/value cache: one preallocated (B, nkv, maxLength, hs) buffer per layer for keys
// and values, written in place, so decoding never grows or concatenates tensors.
import * as T from "@pisces/tensor-cuda";
import type { LlamaConfig } from "./config.js";

export class StaticCache {
  private readonly keys: T.Tensor[] = [];
  private readonly values: T.Tensor[] = [];
  /** Positions filled so far (the same for every row; left padding keeps rows aligned). */
  length = 0;

  constructor(
    config: LlamaConfig,
    readonly batchSize: number,
    readonly maxLength: number,
    options: { dtype?: T.DType; device?: T.Device } = {},
  ) {
    if (!Number.isInteger(maxLength) || maxLength <= 0) throw new RangeError(`StaticCache: maxLength must be a positive integer, got ${maxLength}`);
    if (maxLength > config.maxPositionEmbeddings)
      throw new RangeError(`StaticCache: maxLength ${maxLength} exceeds the model's ${config.maxPositionEmbeddings} positions`);
    const shape = [batchSize, config.numKeyValueHeads, maxLength, config.headDim];
    for (let i = 0; i < config.numHiddenLayers; i++) {
      this.keys.push(T.keep(T.zeros(shape, options)));
      this.values.push(T.keep(T.zeros(shape, options)));
    }
  }

  /** Writes k, v (B, nkv, T, hs) at `position` and returns views of positions [0, position + T). */
  update(layer: number, k: T.Tensor, v: T.Tensor, position: number): [T.Tensor, T.Tensor] {
    const keys = this.keys[layer];
    const values = this.values[layer];
    if (!keys || !values) throw new RangeError(`StaticCache: no layer ${layer}`);
    const n = k.size(2);
    T.noGrad(() => {
      keys.narrow(2, position, n).copy_(k);
      values.narrow(2, position, n).copy_(v);
    });
    return [keys.narrow(2, 0, position + n), values.narrow(2, 0, position + n)];
  }

  /** The whole (B, nkv, maxLength, hs) key and value buffers of a layer (a fused step writes into them). */
  buffers(layer: number): [T.Tensor, T.Tensor] {
    const keys = this.keys[layer];
    const values = this.values[layer];
    if (!keys || !values) throw new RangeError(`StaticCache: no layer ${layer}`);
    return [keys, values];
  }

  /** Called by the model once all layers have written `n` new positions. */
  advance(n: number): void {
    this.length += n;
  }

  /** Forgets the contents (the memory stays allocated for reuse). */
  reset(): void {
    this.length = 0;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys.length = 0;
    this.values.length = 0;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
