// The README's code is examples/zero-shot.ts, word for word (so it type-checks), and it runs.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { zeroShot } from "../examples/zero-shot.js";
import { siglipTextFixtures } from "../../../tools/test-support/vision-fixtures.js";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const example = readFileSync(new URL("../examples/zero-shot.ts", import.meta.url), "utf8");

describe("README example", () => {
  it("is examples/zero-shot.ts (less its first comment line)", () => {
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example.split("\n").slice(1).join("\n"));
  });
  it("runs: zero-shot probabilities equal transformers' on the reference checkpoint", async () => {
    const dir = siglipTextFixtures();
    const zs = join(dir, "zero_shot");
    const labels = JSON.parse(readFileSync(join(zs, "labels.json"), "utf8")) as string[];
    const probs = await zeroShot(zs, labels, [join(dir, "..", "images", "astronaut.png")]);
    const expected = T.loadSafetensors(join(zs, "reference.safetensors")).get("probs");
    expect(T.scope(() => probs.sub(expected).abs().max().item())).toBeLessThanOrEqual(1e-5);
  });
});
