import * as T from "@pisces/tensor-cuda";
import { loadGGUF } from "./src/index.js";
T.setNumThreads(2);
const { model } = loadGGUF("test/fixtures/generated/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
const times = new Map<string, number>();
const wrap = (obj: any, name: string) => {
  const f = obj.forward.bind(obj);
  obj.forward = (...a: any[]) => { const t0 = performance.now(); const r = f(...a); times.set(name, (times.get(name) ?? 0) + performance.now() - t0); return r; };
};
for (const [path, m] of model.namedModules()) {
  const cls = m.constructor.name;
  if (cls === "QuantizedLinear" || cls === "LlamaRMSNorm" || cls === "LlamaAttention" || cls === "LlamaMLP" || cls === "LlamaDecoderLayer" || cls==="Linear" || cls==="QuantizedEmbedding" || cls==="Embedding") wrap(m, cls + (cls === "QuantizedLinear" ? ":" + path.split(".").pop() : ""));
}
console.log([...new Set([...model.namedModules()].map(([p,m])=>m.constructor.name))]);
const start = T.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]], { dtype: "int64" });
for (let r = 0; r < 3; r++) {
  times.clear();
  let t0 = 0, n = 0;
  for (const step of model.decodeSteps({ inputIds: start, maxNewTokens: 33, eosTokenId: null })) { if (step.step === 0) { t0 = performance.now(); times.clear(); } else n++; }
  const total = (performance.now() - t0) / n;
  console.log("ms/token", total.toFixed(2), [...times].map(([k, v]) => `${k} ${(v / n).toFixed(2)}`).join(", "));
}
