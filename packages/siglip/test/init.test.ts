// A SigLIP built from its config alone (the trainer's start from scratch): every parameter is
// initialised (none left as uninitialised memory), so the first forward is finite.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { resolveSiglipTextConfig, resolveSiglipVisionConfig, SiglipModel } from "../src/index.js";

describe("SigLIP from a config", () => {
  it("has finite, bounded parameters and a finite forward", () => {
    T.manualSeed(0);
    const D = 32;
    const text = resolveSiglipTextConfig(
      { hidden_size: D, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 50, max_position_embeddings: 8 },
      "text",
    );
    const vision = resolveSiglipVisionConfig(
      { hidden_size: D, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, image_size: 16, patch_size: 8 },
      "vision",
    );
    const model = new SiglipModel(text, vision);
    try {
      T.noGrad(() =>
        T.scope(() => {
          for (const [k, p] of model.stateDict()) expect(p.abs().max().item(), k).toBeLessThan(10); // NaN fails too
          // the packed q/k/v of the pooling head: torch's xavier_uniform bound sqrt(6 / (D + 3D))
          const w = model.vision_model.head!.attention.in_proj_weight;
          expect(w.abs().max().item()).toBeLessThanOrEqual(Math.sqrt(6 / (4 * D)));
          expect(w.std().item()).toBeGreaterThan((0.5 * Math.sqrt(6 / (4 * D))) / Math.sqrt(3));
          const out = model.forward({ inputIds: T.randint(0, 50, [2, 8], { dtype: "int64" }), pixelValues: T.randn([2, 3, 16, 16]) });
          expect(Number.isFinite(out.logitsPerText.abs().max().item())).toBe(true);
        }),
      );
    } finally {
      model.dispose();
    }
  });
});
