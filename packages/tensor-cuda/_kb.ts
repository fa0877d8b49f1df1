import * as T from "./src/index.js";
const th = Number(process.argv[2] ?? 2);
T.setNumThreads(th);
for (const fmt of ["Q4_1", "Q4_0", "Q8_0"] as const)
for (const [N, K] of [[49152, 576], [1536, 576], [576, 1536], [576, 576], [192, 576]]) {
  const w = T.keep(T.randn([N, K]));
  const q = T.keep(T.quantizeGgml(w, fmt));
  const x = T.keep(T.randn([1, K]));
  let best = 1e9;
  const reps = Math.max(3, Math.round(2e7 / (N * K)));
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    T.scope(() => { for (let i = 0; i < reps; i++) T.quantizedLinear(x, q, fmt); });
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  console.log(fmt, N, K, `${(best * 1000).toFixed(1)} us`, `${(q.numel() / best / 1e6).toFixed(2)} GB/s`);
  w.dispose(); q.dispose(); x.dispose();
}
