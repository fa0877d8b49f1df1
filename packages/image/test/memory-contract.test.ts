// The memory contract (tensor-cuda README, "Writing a model"): toPixelValues leaves exactly its
// output live, and 1,000 calls keep live tensors and RSS flat (loadImage makes no tensors at all).
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { expectMemoryContract } from "../../../tools/test-support/memory-contract.js";
import { loadImage, resizePil, toPixelValues } from "../src/index.js";

const raw = { data: new Uint8Array(20 * 12 * 3).fill(90), width: 20, height: 12, channels: 3 as const };

describe("memory contract", () => {
  it("loadImage + resizePil + toPixelValues", async () => {
    await expectMemoryContract(
      T,
      expect,
      async () => toPixelValues([resizePil(await loadImage(raw), 8, 8)], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }),
      1000,
    );
  });
});
