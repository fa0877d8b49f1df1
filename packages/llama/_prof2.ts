import * as T from "@pisces/tensor-cuda";
T.setNumThreads(2);
const q = T.keep(T.randn([1, 9, 1, 64])), k = T.keep(T.randn([1, 3, 40, 64])), v = T.keep(T.randn([1, 3, 40, 64]));
const cos = T.keep(T.randn([1, 1, 64])), sin = T.keep(T.randn([1, 1, 64]));
const kc = T.keep(T.zeros([1, 3, 100, 64]));
const x = T.keep(T.randn([1, 1, 576]));
const tests: [string, () => unknown][] = [
  ["sdpa gqa", () => T.scaledDotProductAttention(q, k, v, { attnMask: null, isCausal: false, scale: 0.125, enableGqa: true })],
  ["rope", () => { const c = cos.unsqueeze(1); const s = sin.unsqueeze(1); return [q.mul(c).addcmul_(q.roll(32, -1), s), k.mul(c)]; }],
  ["cache", () => { kc.narrow(2, 5, 1).copy_(k.narrow(2, 0, 1)); return kc.narrow(2, 0, 6); }],
  ["viewT", () => x.view([1, 1, 9, 64]).transpose(1, 2)],
];
for (const [name, f] of tests) for (let r = 0; r < 3; r++) {
  const n = 3000; const t0 = performance.now();
  for (let i = 0; i < n; i += 100) T.noGrad(() => T.scope(() => { for (let j = 0; j < 100; j++) f(); }));
  console.log(name, (((performance.now() - t0) / n) * 1000).toFixed(1), "us");
}
