// The memory contract (tensor-cuda README, "Writing a model"): each public entry point called
// outside any scope leaves exactly its outputs live, and 1,000 calls keep live tensors and RSS flat.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import { LlamaForCausalLM, resolveLlamaConfig } from "../src/index.js";

const { config } = resolveLlamaConfig({
  vocab_size: 32,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
});
const model = new LlamaForCausalLM(config).eval();
const ids = T.keep(T.tensor([[1, 2, 3, 4, 5]]));
const labels = T.keep(T.tensor([[1, 2, 3, 4, 5]]));

describe("memory contract", () => {
  const entryPoints: [string, () => unknown][] = [
    ["forward", () => T.noGrad(() => model.forward({ inputIds: ids }))],
    ["forward with labels and hidden states (autograd on)", () => model.forward({ inputIds: ids, labels, outputHiddenStates: true })],
    ["generate", () => model.generate({ inputIds: [[1, 2, 3]], maxNewTokens: 3 })],
    ["decodeSteps", () => [...model.decodeSteps({ inputIds: [[1, 2, 3]], maxNewTokens: 3 })]],
    [
      "generateStream",
      async () => {
        for await (const _ of model.generateStream({ inputIds: [[1, 2]], maxNewTokens: 2, doSample: true, seed: 1 }));
      },
    ],
  ];
  for (const [name, call] of entryPoints)
    it(name, async () => {
      await expectMemoryContract(T, expect, call, name === "generateStream" ? 200 : 1000);
    });

  it("autograd still works through a scoped forward (saved tensors live in the graph)", () => {
    const { loss } = model.forward({ inputIds: ids, labels });
    loss!.backward();
    const g = model.model.layers.at(0).self_attn.q_proj.weight.grad!;
    expect(T.scope(() => g.abs().sum().item())).toBeGreaterThan(0);
    g.dispose();
    loss!.dispose();
    model.zeroGrad();
  });
});
