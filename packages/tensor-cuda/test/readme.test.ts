// The README's code is examples/readme.ts word for word (so it type-checks), and it runs (on the CPU here).
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { trainSteps } from "../examples/readme.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs: three bf16 AdamW steps give finite, positive losses", () => {
    const losses = trainSteps("cpu", 3);
    expect(losses).toHaveLength(3);
    for (const l of losses) expect(Number.isFinite(l) && l > 0).toBe(true);
  });
});
