// Activation checkpointing of the decoder layers: the loss and every gradient equal the plain
// backward's bit for bit (the same operations, run again in the same mode), with and without padding.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { LlamaForCausalLM, resolveLlamaConfig } from "../src/index.js";
import { maxRelDiff, TINY_QUANTIZABLE } from "./helpers.js";

function lossAndGrads(model: LlamaForCausalLM, ids: T.Tensor, mask: T.Tensor | undefined): { loss: number; grads: Map<string, T.Tensor> } {
  model.zeroGrad();
  const loss = T.scope(() => {
    const out = model.forward({ inputIds: ids, attentionMask: mask, labels: ids });
    out.loss!.backward();
    return out.loss!.item();
  });
  return { loss, grads: new Map([...model.namedParameters()].map(([k, p]) => [k, T.keep(p.grad!)] as const)) };
}

describe("gradient checkpointing", () => {
  it("gives the plain backward's loss and gradients", () => {
    T.manualSeed(3);
    const model = new LlamaForCausalLM(resolveLlamaConfig({ ...TINY_QUANTIZABLE, max_position_embeddings: 64 }).config).train();
    const ids = T.randint(0, 96, [2, 12], { generator: new T.Generator({ seed: 1 }) });
    const mask = T.tensor([[0, 0, 0, ...Array(9).fill(1)], Array(12).fill(1)], { dtype: "int64" }); // left padding
    try {
      for (const m of [undefined, mask]) {
        expect(model.isGradientCheckpointing).toBe(false);
        const plain = lossAndGrads(model, ids, m);
        model.gradientCheckpointingEnable();
        const ckpt = lossAndGrads(model, ids, m);
        model.gradientCheckpointingDisable();
        expect(ckpt.loss).toBe(plain.loss);
        expect(ckpt.grads.size).toBe(plain.grads.size);
        for (const [k, g] of plain.grads) {
          expect(maxRelDiff(ckpt.grads.get(k)!, g), k).toBe(0);
          expect(
            T.scope(() => g.abs().max().item()),
            k,
          ).toBeGreaterThan(0);
        }
        for (const g of [...plain.grads.values(), ...ckpt.grads.values()]) g.dispose();
      }
      // inference is unaffected (no segment without gradients): the same logits either way
      const logits = () => T.noGrad(() => T.scope(() => model.forward({ inputIds: ids }).logits.sum().item()));
      const off = logits();
      model.gradientCheckpointingEnable();
      expect(logits()).toBe(off);
    } finally {
      model.dispose();
      ids.dispose();
      mask.dispose();
    }
  });
});
