"""Timing shared by the Python sides of the benchmarks."""

import time


def best_time(fn, repeats):
    """Best of `repeats` runs, in seconds: the run least disturbed by other load on a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
