// fromParts: a new Pisces assembled from an LLM folder (without [IMG] / [/IMG]), SigLIP, gen-CLIP and
// a decoder; it saves as a Pisces folder that loads back, trains and generates.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaForCausalLM, resolveLlamaConfig } from "@pisces/llama";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { PiscesForConditionalGeneration } from "../src/index.js";
import { referenceDir } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-parts-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
// the llama package's reference tokenizer: a 400-token byte-level BPE with Llama 3's special tokens, no [IMG]
const tokenizerDir = fileURLToPath(new URL("../../llama/test/fixtures/generated/tokenizer", import.meta.url));

/** A tiny random Llama folder with that tokenizer (vocabulary 400, tied embeddings). */
function llmFolder(): string {
  const dir = join(work, "llm");
  mkdirSync(dir, { recursive: true });
  const json = {
    model_type: "llama",
    vocab_size: 400,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 4,
  };
  T.manualSeed(0);
  const llm = new LlamaForCausalLM(resolveLlamaConfig(json).config);
  const state = llm.stateDict();
  state.delete("lm_head.weight");
  T.saveSafetensors(join(dir, "model.safetensors"), state);
  writeFileSync(join(dir, "config.json"), JSON.stringify(json));
  for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]) copyFileSync(join(tokenizerDir, f), join(dir, f));
  llm.dispose();
  return dir;
}

describe("PiscesForConditionalGeneration.fromParts", () => {
  it("adds [IMG] / [/IMG], grows the embeddings, and writes a folder that loads, trains and generates", async () => {
    const ref = join(referenceDir("tied_k2"), "model");
    const model = PiscesForConditionalGeneration.fromParts(
      { languageModel: llmFolder(), siglip: join(ref, "siglip"), genClip: join(ref, "gen_clip"), decoder: join(ref, "decoder") },
      { seed: 1, config: { generation_pool_kernel: 2 } },
    );
    expect(model.config.imageStartTokenId).toBe(400);
    expect(model.config.imageEndTokenId).toBe(401);
    expect(model.language_model.model.embed_tokens.weight.shape).toEqual([402, 32]);
    const out = join(work, "pisces");
    model.savePretrained(out);
    model.dispose();
    const loaded = PiscesForConditionalGeneration.fromPretrained(out);
    try {
      const image = join(referenceDir("tied_k2"), "image0.png");
      const batch = await loaded.processor!.call([
        { task: "captioning", image, caption: "a red circle" },
        { task: "generation", image, caption: "a red circle" },
      ]);
      const r = loaded.forward(batch);
      expect(Number.isFinite(r.loss.item())).toBe(true);
      r.loss.backward();
      expect(loaded.understanding_projector.linear_1.weight.grad).not.toBeNull();
      const { conditional } = loaded.generateImageEmbeddings({ captions: ["a red circle"] });
      expect(conditional.shape).toEqual([1, 16, 16]);
    } finally {
      loaded.dispose();
    }
  });
});
