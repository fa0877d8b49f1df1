// Timing shared by the packages' benchmarks.

/** Best of `repeats` runs, in seconds: the run least disturbed by other load on a shared machine. */
export function bestTime(fn: () => void, repeats: number): number {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** `bestTime` for an async function. */
export async function bestTimeAsync(fn: () => Promise<unknown>, repeats: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}
