// The memory contract (tensor-cuda README, "Writing a model"): each public entry point called
// outside any scope leaves exactly its outputs live, and repeated calls keep live tensors and RSS flat.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import { PiscesForConditionalGeneration, type PiscesRecord } from "../src/index.js";
import { referenceDir } from "./helpers.js";

const dir = referenceDir("tied_k2");
const model = PiscesForConditionalGeneration.fromPretrained(join(dir, "model"));
afterAll(() => model.dispose());
const records: PiscesRecord[] = [
  { task: "captioning", image: join(dir, "image0.png"), caption: "a red circle" },
  { task: "generation", image: join(dir, "image1.png"), caption: "a blue square" },
];

describe("memory contract", () => {
  it("processor.call", async () => {
    await expectMemoryContract(T, expect, () => model.processor!.call(records), 200);
  });
  it("forward + backward", async () => {
    const batch = await model.processor!.call(records);
    await expectMemoryContract(
      T,
      expect,
      () => {
        const out = model.forward(batch);
        out.loss.backward();
        model.zeroGrad();
        return out;
      },
      200,
    );
  });
  it("generateImageEmbeddings", async () => {
    await expectMemoryContract(T, expect, () => model.generateImageEmbeddings({ captions: ["a red circle", "a square"] }), 200);
  });
  it("textSteps run to the end or stopped early", async () => {
    const p = model.processor!.captioningPrompt();
    const pixels = (await model.processor!.siglipProcessor.preprocess(join(dir, "image0.png"))).pixelValues;
    const input = {
      inputIds: T.tensor([p.inputIds]),
      attentionMask: T.ones([1, p.inputIds.length], { dtype: "int64" }),
      understandingMask: T.tensor([p.understanding]),
      understandingPixelValues: pixels,
    };
    await expectMemoryContract(T, expect, () => [...model.textSteps(input, { maxNewTokens: 3, eosTokenId: null })].length, 200);
    await expectMemoryContract(
      T,
      expect,
      () => {
        for (const _ of model.textSteps(input, { maxNewTokens: 3, eosTokenId: null })) break;
        return 0;
      },
      200,
    );
  });
});
