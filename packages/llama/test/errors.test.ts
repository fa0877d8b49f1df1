// Bad input gives clear errors: too long sequences, out-of-range ids, missing or truncated weights,
// a config that contradicts the weights; unknown config keys are reported.
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { LlamaConfigError, LlamaForCausalLM, resolveLlamaConfig } from "../src/index.js";
import { referenceFixtures } from "./helpers.js";

function copyModel(name: string): string {
  const dst = mkdtempSync(join(tmpdir(), "pisces-llama-"));
  cpSync(join(referenceFixtures(), name, "model"), dst, { recursive: true });
  return dst;
}
const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
  const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  edit(c);
  writeFileSync(join(dir, "config.json"), JSON.stringify(c));
};

describe("errors", () => {
  it("rejects sequences longer than the model's positions and out-of-range token ids", () => {
    const model = LlamaForCausalLM.fromPretrained(join(referenceFixtures(), "gqa", "model"));
    expect(() => model.forward({ inputIds: T.zeros([1, 129], { dtype: "int64" }) })).toThrow(/sequence of 129 tokens exceeds the model's 128 positions/);
    expect(() => model.forward({ inputIds: T.tensor([[1, 500]]) })).toThrow(/token id 500 is out of range for a vocabulary of 128/);
    expect(() => model.forward({ inputIds: T.tensor([[-1, 5]]) })).toThrow(/token id -1 is out of range/);
    expect(() => model.generate({ inputIds: [[1, 2]], maxNewTokens: 200 })).toThrow(/exceeds the model's 128 positions/);
    expect(() => model.generate({ inputIds: [[1, 2]], maxNewTokens: 0 })).toThrow(/maxNewTokens must be a positive integer/);
    expect(() => model.generate({ inputIds: [[1, 2], [3]], maxNewTokens: 2 })).toThrow(/equally long rows/);
    expect(() => model.generate({ inputIds: [[1]], maxNewTokens: 2, doSample: true, temperature: 0 })).toThrow(/temperature must be > 0/);
    model.dispose();
  });

  it("names a missing weight file", () => {
    const dir = copyModel("gqa");
    rmSync(join(dir, "model.safetensors"));
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/no weights: expected model.safetensors.index.json or model.safetensors/);
    rmSync(join(dir, "config.json"));
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/no config.json/);
  });

  it("names a truncated weight file and a missing shard", () => {
    const dir = copyModel("gqa");
    const file = join(dir, "model.safetensors");
    truncateSync(file, statSync(file).size - 100);
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/truncated/);
    const sharded = copyModel("head_dim");
    rmSync(join(sharded, "model-00003-of-00014.safetensors"));
    expect(() => LlamaForCausalLM.fromPretrained(sharded)).toThrow(/shard model-00003-of-00014.safetensors named by the index is missing/);
  });

  it("names every weight that contradicts the config", () => {
    const dir = copyModel("gqa");
    editConfig(dir, (c) => {
      c.intermediate_size = 96;
    });
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/model.layers.0.mlp.gate_proj.weight expects \[96, 64\] but got \[128, 64\]/);
    editConfig(dir, (c) => {
      c.intermediate_size = 128;
      c.num_hidden_layers = 3;
    });
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/missing keys: model.layers.2/);
    editConfig(dir, (c) => {
      c.num_hidden_layers = 1;
    });
    expect(() => LlamaForCausalLM.fromPretrained(dir)).toThrow(/unexpected keys: model.layers.1/);
  });

  it("validates the config and reports unknown keys", () => {
    expect(() =>
      resolveLlamaConfig({ hidden_size: 64, num_attention_heads: 3, vocab_size: 10, intermediate_size: 8, num_hidden_layers: 1, num_key_value_heads: 2 }),
    ).toThrow(LlamaConfigError);
    expect(() =>
      resolveLlamaConfig({
        hidden_size: 64,
        num_attention_heads: 4,
        vocab_size: 10,
        intermediate_size: 8,
        num_hidden_layers: 1,
        rope_scaling: { rope_type: "yarn" },
      }),
    ).toThrow(/rope type 'yarn' is not supported/);
    const dir = copyModel("gqa");
    editConfig(dir, (c) => {
      c.my_custom_flag = true;
    });
    expect(LlamaForCausalLM.fromPretrained(dir).unknownConfigKeys).toEqual(["my_custom_flag"]);
  });
});
