// Test helpers: the tiny random Pisces of the PyTorch reference (tools/reference/pisces_reference.py).
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { piscesReference } from "../../../tools/test-support/pisces-fixtures.js";

export { piscesReference };

/** The tied_k2 reference folder: 32x32 images, 16 generation vectors, 16 understanding tokens. */
export function tinyPisces(): { model: PiscesForConditionalGeneration; dir: string; images: string[] } {
  const dir = piscesReference("tied_k2");
  return { model: PiscesForConditionalGeneration.fromPretrained(join(dir, "model")), dir, images: [0, 1, 2, 3].map((i) => join(dir, `image${i}.png`)) };
}
