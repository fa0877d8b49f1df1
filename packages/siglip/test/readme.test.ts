// The README's code is examples/zero-shot.ts, word for word (so it type-checks), and it runs.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { zeroShot } from "../examples/zero-shot.js";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { siglipTextFixtures } from "../../../tools/test-support/vision-fixtures.js";

describe("README example", () => {
  it("is examples/zero-shot.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)), "zero-shot.ts")).toBeNull());
  it("runs: zero-shot probabilities equal transformers' on the reference checkpoint", async () => {
    const dir = siglipTextFixtures();
    const zs = join(dir, "zero_shot");
    const labels = JSON.parse(readFileSync(join(zs, "labels.json"), "utf8")) as string[];
    const probs = await zeroShot(zs, labels, [join(dir, "..", "images", "astronaut.png")]);
    const expected = T.loadSafetensors(join(zs, "reference.safetensors")).get("probs");
    expect(T.scope(() => probs.sub(expected).abs().max().item())).toBeLessThanOrEqual(1e-5);
  });
});
