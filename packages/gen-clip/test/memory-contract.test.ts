// The memory contract (tensor-cuda README, "Writing a model"): each public entry point called
// outside any scope leaves exactly its outputs live, and 1,000 calls keep live tensors and RSS flat.
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import { ClipImageProcessor, ClipVisionModel, GenClipEncoder, resolveClipVisionConfig } from "../src/index.js";

const clip = new ClipVisionModel(
  resolveClipVisionConfig({ hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, image_size: 16, patch_size: 4 }),
).eval();
const encoder = new GenClipEncoder(clip, { kernel: 2, featureLayer: -2 });
const pixels = T.keep(T.randn([2, 3, 16, 16]));
const raw = { data: new Uint8Array(20 * 12 * 3).fill(90), width: 20, height: 12, channels: 3 as const };

describe("memory contract", () => {
  const entryPoints: [string, () => unknown][] = [
    ["ClipVisionModel.forward (hidden states, autograd on)", () => clip.forward({ pixelValues: pixels, outputHiddenStates: true })],
    ["GenClipEncoder.encode", () => T.noGrad(() => encoder.encode(pixels))],
    [
      "ClipImageProcessor.preprocess",
      () => new ClipImageProcessor({ size: { shortest_edge: 16 }, crop_size: { height: 16, width: 16 } }).preprocess([raw, raw]),
    ],
  ];
  for (const [name, call] of entryPoints)
    it(name, async () => {
      await expectMemoryContract(T, expect, call, name.includes("preprocess") ? 300 : 1000);
    });
});
