// Shared by the packages' tests: generate Python reference fixtures once per checkout, even when
// vitest runs several test files in parallel processes.
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";

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
