// The README's code is examples/readme.ts word for word (so it type-checks), and it runs: on the
// CPU, over a tiny random Llama saved with the reference tokenizer and chat template.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { chat } from "../examples/readme.js";
import { LlamaForCausalLM, resolveLlamaConfig } from "../src/index.js";
import { referenceFixtures, smollm2Gguf } from "./helpers.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pisces-llama-readme-"));
    cpSync(join(referenceFixtures(), "tokenizer"), dir, { recursive: true });
    const tok = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    const vocab = Math.max(...Object.values(tok.model.vocab as Record<string, number>), ...tok.added_tokens.map((t: { id: number }) => t.id)) + 1;
    const json = {
      model_type: "llama",
      vocab_size: vocab,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 256,
      tie_word_embeddings: true,
    };
    writeFileSync(join(dir, "config.json"), JSON.stringify(json));
    const model = new LlamaForCausalLM(resolveLlamaConfig(json).config);
    T.saveSafetensors(join(dir, "model.safetensors"), new Map([...model.stateDict()].filter(([k]) => k !== "lm_head.weight")));
    model.dispose();
    const answer = await chat(dir, "Name three fish.", "cpu");
    expect(typeof answer).toBe("string");
  });
});

describe("README GGUF example (examples/gguf-chat.mjs)", () => {
  it("is in the README word for word, and chats with SmolLM2", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const file = fileURLToPath(new URL("../examples/gguf-chat.mjs", import.meta.url));
    expect(/```js\n([\s\S]*?)```/.exec(readme)?.[1]).toBe(readFileSync(file, "utf8"));
    const gguf = smollm2Gguf();
    const out = execFileSync(process.execPath, ["--import", "tsx", "--conditions=@pisces/source", file, gguf], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("..", import.meta.url)),
    });
    expect(out.trim().length).toBeGreaterThan(10); // sixty sampled tokens of text
  }, 300_000);
});
