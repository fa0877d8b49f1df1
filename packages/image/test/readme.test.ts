// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { visionReferenceFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { pixelValues } from "../examples/readme.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs on a real image", async () => {
    const px = await pixelValues(join(visionReferenceFixtures(), "images", "astronaut.png"));
    expect(px.shape).toEqual([1, 3, 224, 224]);
    px.dispose();
  });
});
