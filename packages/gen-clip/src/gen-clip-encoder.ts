// The gen-CLIP encoder of Pisces' generation path: a CLIP vision tower whose patch tokens (class
// token dropped) are laid back on their 2-D grid and average-pooled with a k x k kernel and stride
// k, giving (G / k)^2 vectors per image (a 32x32 grid with k = 4 gives 64). Pisces' ablation
// compares 729 / 81 / 9 tokens: a 27x27 grid with k = 1, 3, 9.
import * as T from "@pisces/tensor-cuda";
import { ClipVisionModel, type ModelOptions } from "./model.js";

export interface GenClipOptions {
  /** Pooling kernel and stride (default 4). */
  kernel?: number;
  /** Hidden state to pool: an index into hiddenStates (-1: last layer, the default; -2: penultimate). */
  featureLayer?: number;
}

/** (B, G * G, D) patch tokens -> (B, D, G, G). */
export function tokensToGrid(tokens: T.Tensor): T.Tensor {
  const [B, N, D] = tokens.shape as [number, number, number];
  const G = Math.round(Math.sqrt(N));
  if (G * G !== N) throw new RangeError(`tokensToGrid: ${N} tokens do not form a square grid`);
  return tokens.transpose(1, 2).reshape([B, D, G, G]);
}

/** (B, D, g, g) -> (B, g * g, D), row by row. */
export function gridToTokens(grid: T.Tensor): T.Tensor {
  const [B, D] = grid.shape as [number, number];
  return grid.reshape([B, D, -1]).transpose(1, 2);
}

/** Average-pools a square token grid: (B, G * G, D) -> (B, (G / k)^2, D). */
export function poolTokens(tokens: T.Tensor, kernel: number): T.Tensor {
  if (!Number.isInteger(kernel) || kernel < 1) throw new RangeError(`kernel must be a positive integer, got ${kernel}`);
  return T.scope(() => {
    const grid = tokensToGrid(tokens);
    const G = grid.size(2);
    if (G % kernel !== 0) throw new RangeError(`a ${G}x${G} grid cannot be pooled with kernel ${kernel} (${G} is not a multiple of ${kernel})`);
    return gridToTokens(T.avgPool2d(grid, kernel, { stride: kernel }));
  });
}

export class GenClipEncoder {
  readonly kernel: number;
  readonly featureLayer: number;
  constructor(
    readonly clip: ClipVisionModel,
    options: GenClipOptions = {},
  ) {
    this.kernel = options.kernel ?? 4;
    this.featureLayer = options.featureLayer ?? -1;
    const grid = clip.config.imageSize / clip.config.patchSize;
    if (grid % this.kernel !== 0) throw new RangeError(`the ${grid}x${grid} patch grid is not a multiple of kernel ${this.kernel}`);
  }

  static fromPretrained(dir: string, options: ModelOptions & GenClipOptions = {}): GenClipEncoder {
    return new GenClipEncoder(ClipVisionModel.fromPretrained(dir, options), options);
  }

  /** Vectors per image: (grid / kernel)^2. */
  get numTokens(): number {
    const grid = this.clip.config.imageSize / this.clip.config.patchSize;
    return (grid / this.kernel) ** 2;
  }

  /** pixelValues (B, 3, H, W) -> pooled gen-CLIP vectors (B, numTokens, D). */
  encode(pixelValues: T.Tensor): T.Tensor {
    return T.scope(() => {
      const states = this.clip.forward({ pixelValues, outputHiddenStates: true }).hiddenStates!;
      const i = this.featureLayer < 0 ? states.length + this.featureLayer : this.featureLayer;
      const h = states[i];
      if (!h) throw new RangeError(`featureLayer ${this.featureLayer} is out of range for ${states.length} hidden states`);
      return poolTokens(h.slice(1, 1), this.kernel); // class token dropped
    });
  }
}
