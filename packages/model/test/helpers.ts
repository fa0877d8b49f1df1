// Test helpers: the PyTorch reference of Pisces (tools/reference/pisces_reference.py), made once per checkout.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { generateOnce } from "../../../tools/test-support/generate-once.js";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..", "..");
export const fixtures = join(here, "fixtures", "generated");
export const CONFIGS = ["tied_k2", "untied_k4"] as const;
export const referenceScript = join(repoRoot, "tools", "reference", "pisces_reference.py");
export const python = process.env.PYTHON ?? "python3";

/** Runs the reference once (needs python3 with tools/reference/requirements.txt); returns the folder of one config. */
export function referenceDir(config: (typeof CONFIGS)[number]): string {
  generateOnce(join(fixtures, "complete"), fixtures, () => {
    execFileSync(python, [referenceScript, fixtures], { stdio: "pipe" });
  });
  return join(fixtures, config);
}

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
