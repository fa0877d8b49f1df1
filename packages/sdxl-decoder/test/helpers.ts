// The diffusers reference fixtures (tools/reference/*_reference.py), generated once per checkout
// even though vitest runs the test files in parallel processes.
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const fixtures = join(here, "fixtures", "generated");
const scripts = ["scheduler_reference.py", "unet_reference.py", "vae_reference.py", "decoder_reference.py"];

export function referenceFixtures(): string {
  generateOnce(join(fixtures, "complete"), fixtures, () => {
    for (const script of scripts)
      execFileSync(process.env.PYTHON ?? "python3", [join(here, "..", "..", "..", "tools", "reference", script), fixtures], { stdio: "pipe" });
    closeSync(openSync(join(fixtures, "complete"), "w"));
  });
  return fixtures;
}

/**
 * Runs `generate` once even when several test files ask at the same time: the first takes a lock
 * file, the others wait for `marker` to appear.
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
