// The Python reference fixtures (tools/reference/vision_reference.py), made once per checkout.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { generateOnce } from "../../../tools/test-support/generate-once.js";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..", "..");
/** Shared by @pisces/siglip and @pisces/gen-clip tests: one generation per checkout. */
export const fixtures = join(repoRoot, "tools", "reference", "out", "vision");

export function referenceFixtures(): string {
  generateOnce(join(fixtures, "images", "preprocess.safetensors"), fixtures, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "vision_reference.py"), fixtures], { stdio: "pipe" });
  });
  return fixtures;
}

export function maxAbsDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => a.to("float64").sub(b.to("float64")).abs().max().item());
}

export { generateOnce };
