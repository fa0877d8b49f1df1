// Generation: greedy tokens equal to transformers' generate(); cached decoding equals a full
// forward; a left-padded batch equals each row alone; sampling is reproducible for a seed.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaForCausalLM, StaticCache } from "../src/index.js";
import { MODELS, maxAbsDiff, referenceFixtures } from "./helpers.js";

let dir: string;
beforeAll(() => {
  dir = referenceFixtures();
});
const load = (name: string) => LlamaForCausalLM.fromPretrained(join(dir, name, "model"));
const reference = (name: string) =>
  JSON.parse(readFileSync(join(dir, name, "generate.json"), "utf8")) as { prompt: number[]; output: number[]; output_with_eos: number[] };

describe.each(MODELS)("generation with '%s'", (name) => {
  it("greedy: the same 32 tokens as transformers, and the same EOS stop", () => {
    const model = load(name);
    const ref = reference(name);
    const out = model.generate({ inputIds: [ref.prompt], maxNewTokens: 32, eosTokenId: null });
    expect(out.tolist()).toEqual([ref.output]);
    const withEos = model.generate({ inputIds: [ref.prompt], maxNewTokens: 32 });
    expect((withEos.tolist() as number[][])[0]).toEqual(ref.output_with_eos);
    model.dispose();
  });
});

describe("KV cache and batching", () => {
  it("cached decoding gives the logits of a full forward", () => {
    T.noGrad(() =>
      T.scope(() => {
        const model = load("gqa");
        const ids = T.tensor([[5, 9, 11, 20, 33, 7, 64, 3, 99, 12]]);
        const full = model.forward({ inputIds: ids }).logits; // (1, 10, V)
        const cache = new StaticCache(model.config, 1, 16);
        const prefill = model.forward({ inputIds: ids.slice(1, 0, 6), cache }).logits;
        expect(maxAbsDiff(prefill, full.slice(1, 0, 6))).toBeLessThanOrEqual(1e-5);
        for (let t = 6; t < 10; t++) {
          const step = model.forward({ inputIds: ids.slice(1, t, t + 1), cache }).logits;
          expect(maxAbsDiff(step, full.slice(1, t, t + 1)), `position ${t}`).toBeLessThanOrEqual(1e-5);
        }
        expect(cache.length).toBe(10);
        cache.dispose();
        model.dispose();
      }),
    );
  });

  it("a left-padded batch generates what each row generates alone", () => {
    const model = load("llama3_rope");
    const rows = [
      [7, 8, 9, 10, 11, 12],
      [40, 41, 42],
      [100, 3, 17, 5],
    ];
    const width = Math.max(...rows.map((r) => r.length));
    const padded = rows.map((r) => [...new Array(width - r.length).fill(0), ...r]);
    const mask = rows.map((r) => [...new Array(width - r.length).fill(0), ...r.map(() => 1)]);
    const batch = model.generate({ inputIds: padded, attentionMask: mask, maxNewTokens: 12, eosTokenId: null }).tolist() as number[][];
    rows.forEach((row, i) => {
      const alone = (model.generate({ inputIds: [row], maxNewTokens: 12, eosTokenId: null }).tolist() as number[][])[0]!;
      expect(batch[i]!.slice(width)).toEqual(alone.slice(row.length));
    });
    model.dispose();
  });

  it("finished rows are padded while the others go on", () => {
    const model = load("gqa");
    const ref = reference("gqa");
    const stopAt = ref.output[ref.prompt.length + 3]!; // the 4th generated token
    const out = (model.generate({ inputIds: [ref.prompt], maxNewTokens: 10, eosTokenId: stopAt, padTokenId: 0 }).tolist() as number[][])[0]!;
    const firstStop = ref.output.indexOf(stopAt, ref.prompt.length);
    expect(out).toEqual(ref.output.slice(0, firstStop + 1));
    model.dispose();
  });

  it("sampling is reproducible for a seed and honours topK = 1 (greedy)", () => {
    const model = load("tied");
    const prompt = [[4, 8, 15, 16, 23, 42]];
    const opts = { inputIds: prompt, maxNewTokens: 16, doSample: true, temperature: 0.9, topP: 0.9, topK: 20, eosTokenId: null };
    const a = model.generate({ ...opts, seed: 7 }).tolist();
    expect(model.generate({ ...opts, seed: 7 }).tolist()).toEqual(a);
    expect(model.generate({ ...opts, seed: 8 }).tolist()).not.toEqual(a);
    const greedy = model.generate({ inputIds: prompt, maxNewTokens: 16, eosTokenId: null }).tolist();
    expect(model.generate({ inputIds: prompt, maxNewTokens: 16, doSample: true, topK: 1, seed: 3, eosTokenId: null }).tolist()).toEqual(greedy);
    model.dispose();
  });

  it("generates from inputsEmbeds as from the ids they embed", () => {
    const model = load("gqa");
    const ref = reference("gqa");
    const embeds = T.noGrad(() => model.getInputEmbeddings().forward(T.tensor([ref.prompt])));
    const out = model.generate({ inputsEmbeds: embeds, maxNewTokens: 8, eosTokenId: null }).tolist() as number[][];
    expect(out[0]).toEqual(ref.output.slice(ref.prompt.length, ref.prompt.length + 8));
    model.dispose();
  });

  it("keeps memory flat across generations", () => {
    const model = load("gqa");
    model.generate({ inputIds: [[1, 2, 3]], maxNewTokens: 4 }).dispose();
    const before = T.memoryStats().liveTensors;
    for (let i = 0; i < 5; i++) model.generate({ inputIds: [[1, 2, 3]], maxNewTokens: 8, eosTokenId: null }).dispose();
    expect(T.memoryStats().liveTensors).toBe(before);
    model.dispose();
  });
});
