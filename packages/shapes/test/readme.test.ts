// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { firstDetections, genevalShapes, oracle } from "../examples/readme.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("scores the oracle at 1.00 and detects the first prompt's object", async () => {
    const scores = await genevalShapes(oracle);
    expect(scores.overall).toBe(1);
    expect(firstDetections()).toHaveLength(1);
  });
});
