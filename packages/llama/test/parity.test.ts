// Parity with transformers on tiny random Llama checkpoints (tools/reference/llama_reference.py):
// logits, loss and gradients in float32, and bfloat16 logits.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaForCausalLM } from "../src/index.js";
import { MODELS, maxAbsDiff, maxRelDiff, referenceFixtures } from "./helpers.js";

let dir: string;
beforeAll(() => {
  dir = referenceFixtures();
});

describe.each(MODELS)("Llama '%s' matches transformers", (name) => {
  it("float32 logits (<= 1e-4), loss and every parameter gradient (<= 1e-4 relative)", () => {
    T.scope(() => {
      const ref = T.loadSafetensors(join(dir, name, "reference.safetensors"));
      const model = LlamaForCausalLM.fromPretrained(join(dir, name, "model"));
      expect(model.unknownConfigKeys).toEqual([]);
      const out = model.forward({ inputIds: ref.get("input_ids"), labels: ref.get("labels") });
      expect(maxAbsDiff(out.logits, ref.get("logits"))).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(out.loss!.item() - ref.get("loss").item())).toBeLessThanOrEqual(1e-5);
      out.loss!.backward();
      const params = [...model.namedParameters()];
      expect(params.length).toBe(ref.keys().filter((k) => k.startsWith("grad.")).length);
      for (const [key, p] of params) expect(maxRelDiff(p.grad!, ref.get(`grad.${key}`)), key).toBeLessThanOrEqual(1e-4);
      model.dispose();
    });
  });

  it("bfloat16 logits within bf16 tolerance of transformers' bfloat16", () => {
    T.scope(() => {
      const ref = T.loadSafetensors(join(dir, name, "reference.safetensors"));
      const model = LlamaForCausalLM.fromPretrained(join(dir, name, "model"), { dtype: "bfloat16" });
      expect(model.lm_head.weight.dtype).toBe("bfloat16");
      const logits = T.noGrad(() => model.forward({ inputIds: ref.get("input_ids") }).logits);
      const bf = ref.get("logits_bf16");
      const f32 = ref.get("logits");
      const scale = f32.abs().max().item();
      // bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); two layers of bf16 matmuls drift further.
      // Our error against transformers' bf16 must be of the same size as transformers' own bf16 error.
      const ours = maxAbsDiff(logits, bf) / scale;
      const theirs = maxAbsDiff(bf, f32) / scale;
      expect(ours).toBeLessThanOrEqual(Math.max(0.03, 2 * theirs));
      model.dispose();
    });
  });
});
