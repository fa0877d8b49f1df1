// Test helpers: the PyTorch reference of Pisces (tools/reference/pisces_reference.py), made once per checkout.
import * as T from "@pisces/tensor-cuda";
export {
  PISCES_CONFIGS as CONFIGS,
  piscesReference as referenceDir,
  piscesReferenceScript as referenceScript,
} from "../../../tools/test-support/pisces-fixtures.js";

export const python = process.env.PYTHON ?? "python3";

export function maxAbsDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => a.to("float64").sub(b.to("float64")).abs().max().item());
}

/** max |a - b| / max |b|: the difference relative to the tensor's scale (for gradients). */
export function maxRelDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => {
    const x = a.to("float64");
    const y = b.to("float64");
    return x.sub(y).abs().max().item() / Math.max(y.abs().max().item(), 1e-30);
  });
}
