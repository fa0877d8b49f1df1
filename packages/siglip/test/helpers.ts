// The Python reference fixtures (tools/reference/vision_reference.py), made once per checkout.
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";

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

/**
 * Runs `generate` once even when several test files (vitest runs them in parallel processes) ask
 * at the same time: the first takes a lock file, the others wait for `marker` to appear.
 */
export function generateOnce(marker: string, lockDir: string, generate: () => void): void {
  if (existsSync(marker)) return;
  mkdirSync(lockDir, { recursive: true });
  const lock = join(lockDir, ".generating.lock");
  let fd: number | undefined;
  try {
    fd = openSync(lock, "wx");
  } catch {
    const deadline = Date.now() + 600_000;
    while (!existsSync(marker)) {
      if (!existsSync(lock)) {
        generateOnce(marker, lockDir, generate); // the other process failed: try ourselves
        return;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${marker} (stale ${lock}? delete it)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
    return;
  }
  try {
    if (!existsSync(marker)) generate();
  } finally {
    closeSync(fd);
    rmSync(lock, { force: true });
  }
}
