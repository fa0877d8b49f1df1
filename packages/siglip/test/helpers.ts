// Test helpers: the shared vision reference fixtures and a float64 comparison.
import * as T from "@pisces/tensor-cuda";
export { visionReferenceFixtures as referenceFixtures } from "../../../tools/test-support/vision-fixtures.js";

export function maxAbsDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => a.to("float64").sub(b.to("float64")).abs().max().item());
}
