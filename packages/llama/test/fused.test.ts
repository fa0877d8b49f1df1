// The fused decode step (T.fusedDecoderLayer, native/kernels/decoder_layer.h) against its
// reference, the same layer operator by operator (useFusedKernel = false): float32 and packed
// weights, grouped-query attention, a batch, a cache long enough for the threaded attention; and
// what it refuses. (generate.test.ts and gguf.test.ts run the fused path against transformers and
// llama.cpp as well: greedy decoding takes it by default.)
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { LlamaForCausalLM, quantize, resolveLlamaConfig, StaticCache } from "../src/index.js";
import { maxAbsDiff, TINY_QUANTIZABLE } from "./helpers.js";

const config = { ...TINY_QUANTIZABLE, max_position_embeddings: 512 };
const fresh = (seed: number) => {
  T.manualSeed(seed);
  return new LlamaForCausalLM(resolveLlamaConfig(config).config).eval();
};
const setFused = (model: LlamaForCausalLM, on: boolean) => {
  for (const layer of model.model.layers) layer.useFusedKernel = on;
};

/** Logits (B, steps, V) of decoding `steps` given tokens after a prompt, fused or not. */
function decodeLogits(model: LlamaForCausalLM, prompt: number[][], steps: number[][], fused: boolean): T.Tensor {
  setFused(model, fused);
  return T.noGrad(() =>
    T.scope(() => {
      const cache = new StaticCache(model.config, prompt.length, 400);
      try {
        model.forward({ inputIds: T.tensor(prompt, { dtype: "int64" }), cache });
        const out: T.Tensor[] = [];
        for (let s = 0; s < steps[0]!.length; s++) {
          const ids = T.tensor(
            steps.map((row) => [row[s]!]),
            { dtype: "int64" },
          );
          out.push(model.forward({ inputIds: ids, cache }).logits);
        }
        return T.cat(out, 1);
      } finally {
        cache.dispose();
      }
    }),
  );
}

/** The fused and the per-operator decode give the same logits, within `tolerance` of their scale. */
function expectSameLogits(model: LlamaForCausalLM, prompt: number[][], steps: number[][], tolerance: number): void {
  const fused = decodeLogits(model, prompt, steps, true);
  const reference = decodeLogits(model, prompt, steps, false);
  try {
    const scale = T.scope(() => reference.abs().max().item());
    expect(scale).toBeGreaterThan(0.01);
    expect(maxAbsDiff(fused, reference) / scale).toBeLessThanOrEqual(tolerance);
  } finally {
    fused.dispose();
    reference.dispose();
  }
}

const models: LlamaForCausalLM[] = [];
afterAll(() => {
  for (const m of models) m.dispose();
});

describe("fused decode step: equals the per-operator layer", () => {
  const gen = new T.Generator({ seed: 3 });
  const ids = (b: number, n: number) => T.scope(() => T.randint(0, 96, [b, n], { generator: gen }).tolist() as number[][]);

  it.each([
    ["float32", null, 2e-5],
    ["int8 (Q8_0)", "int8", 2e-5],
    ["int4 (Q4_1)", "int4", 2e-5],
  ] as const)("%s weights, batch 2, grouped-query attention, 8 steps", (_, bits, tolerance) => {
    const model = bits ? quantize(fresh(1), bits) : fresh(1);
    models.push(model);
    expectSameLogits(model, ids(2, 5), ids(2, 8), tolerance);
  });

  it("after a long prompt (the attention runs on several threads): the same logits", () => {
    const model = fresh(2);
    models.push(model);
    expectSameLogits(model, ids(1, 300), ids(1, 4), 2e-5);
  });

  it("greedy generation gives the same tokens either way", () => {
    const model = quantize(fresh(4), "int4");
    models.push(model);
    const prompt = ids(1, 6);
    setFused(model, true);
    const a = model.generate({ inputIds: prompt, maxNewTokens: 24, eosTokenId: null });
    setFused(model, false);
    const b = model.generate({ inputIds: prompt, maxNewTokens: 24, eosTokenId: null });
    expect(a.tolist()).toEqual(b.tolist());
    a.dispose();
    b.dispose();
  });
});

describe("fusedDecoderLayer: what it refuses", () => {
  const model = fresh(5);
  models.push(model);
  const layer = model.model.layers.at(0)!;
  const w = {
    inputNorm: layer.input_layernorm.weight,
    postNorm: layer.post_attention_layernorm.weight,
    projections: [
      layer.self_attn.q_proj,
      layer.self_attn.k_proj,
      layer.self_attn.v_proj,
      layer.self_attn.o_proj,
      layer.mlp.gate_proj,
      layer.mlp.up_proj,
      layer.mlp.down_proj,
    ],
    eps: 1e-6,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    scale: 0.25,
  };
  const run = (o: { x?: number[]; heads?: number; position?: number; cache?: number[]; grad?: boolean } = {}) =>
    T.scope(() => {
      const x = T.randn(o.x ?? [1, 1, 64]);
      const cs = T.ones([1, 1, 16]);
      const keys = T.zeros(o.cache ?? [1, 2, 8, 16]);
      const values = T.zeros(o.cache ?? [1, 2, 8, 16]);
      const call = () => T.fusedDecoderLayer(x, { ...w, heads: o.heads ?? 4 }, cs, cs, keys, values, o.position ?? 0);
      return o.grad ? call() : T.noGrad(call);
    });

  it("runs on good input and writes the cache", () => {
    expect(run().shape).toEqual([1, 1, 64]);
  });
  it.each([
    ["two new tokens", { x: [1, 2, 64] }, /one new token per row/],
    ["heads not a multiple of the kv heads", { heads: 3 }, /heads must be a multiple of kvHeads/],
    ["a position past the cache", { position: 8 }, /position must lie inside the cache/],
    ["a cache of the wrong shape", { cache: [1, 3, 8, 16] }, /caches must be contiguous \(batch, kvHeads, maxLength, headDim\)/],
    ["gradients on", { grad: true }, /for inference: call it under noGrad/],
  ])("%s: a named error", (_, o, message) => {
    expect(() => run(o)).toThrow(message);
  });
  it("reports whether the modules fit (a bias does not)", () => {
    expect(T.fusedDecoderLayerApplies(w)).toBe(true);
    const biased = new T.nn.Linear(64, 64);
    expect(T.fusedDecoderLayerApplies({ ...w, projections: [biased, ...w.projections.slice(1)] })).toBe(false);
    biased.dispose();
  });
});
