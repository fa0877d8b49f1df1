// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { trainingStepAndVectors } from "../examples/readme.js";
import { referenceDir } from "./helpers.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs on the reference's tiny Pisces", async () => {
    const dir = referenceDir("untied_k4");
    const { losses, shape } = await trainingStepAndVectors(join(dir, "model"), join(dir, "image0.png"));
    expect(losses.text).toBeGreaterThan(0);
    expect(losses.image).toBeGreaterThan(0);
    expect(shape).toEqual([1, 64, 24]);
  });
});
