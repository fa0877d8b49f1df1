// The memory contract (tensor-cuda README, "Writing a model"): each public entry point called
// outside any scope leaves exactly its outputs live, and 1,000 calls keep live tensors and RSS flat.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import { resolveSiglipTextConfig, resolveSiglipVisionConfig, SiglipImageProcessor, SiglipModel, SiglipVisionModel } from "../src/index.js";

const vision = resolveSiglipVisionConfig({
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  image_size: 16,
  patch_size: 8,
});
const text = resolveSiglipTextConfig({
  vocab_size: 32,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  max_position_embeddings: 8,
});
const tower = new SiglipVisionModel(vision).eval();
const model = new SiglipModel(text, vision).eval();
const pixels = T.keep(T.randn([2, 3, 16, 16]));
const one = T.keep(pixels.slice(0, 0, 1));
const ids = T.keep(T.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]));
const raw = { data: new Uint8Array(20 * 12 * 3).fill(90), width: 20, height: 12, channels: 3 as const };

describe("memory contract", () => {
  const entryPoints: [string, () => unknown][] = [
    ["SiglipVisionModel.forward (hidden states, autograd on)", () => tower.forward({ pixelValues: pixels, outputHiddenStates: true })],
    ["SiglipVisionModel.imageFeatures", () => T.noGrad(() => tower.imageFeatures(pixels, -2))],
    ["SiglipModel.forward", () => T.noGrad(() => model.forward({ inputIds: ids, pixelValues: one }))],
    ["SiglipModel.getImageFeatures / getTextFeatures", () => T.noGrad(() => [model.getImageFeatures(pixels), model.getTextFeatures(ids)])],
    ["SiglipImageProcessor.preprocess", () => new SiglipImageProcessor({ size: { height: 16, width: 16 } }).preprocess([raw, raw])],
  ];
  for (const [name, call] of entryPoints)
    it(name, async () => {
      await expectMemoryContract(T, expect, call, name.includes("preprocess") ? 300 : 1000);
    });
});
