// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { visionReferenceFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { genClipVectors } from "../examples/readme.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs on the reference CLIP checkpoint", async () => {
    const fixtures = visionReferenceFixtures();
    const dir = mkdtempSync(join(tmpdir(), "pisces-genclip-readme-"));
    cpSync(join(fixtures, "clip_gelu", "model"), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    const size = config.vision_config?.image_size ?? config.image_size;
    const grid = size / (config.vision_config?.patch_size ?? config.patch_size);
    writeFileSync(join(dir, "preprocessor_config.json"), JSON.stringify({ size: { shortest_edge: size }, crop_size: { height: size, width: size } }));
    const vectors = await genClipVectors(dir, join(fixtures, "images", "astronaut.png"), grid % 2 === 0 ? 2 : 1);
    const k = grid % 2 === 0 ? 2 : 1;
    expect(vectors.shape.slice(0, 2)).toEqual([1, (grid / k) ** 2]);
    vectors.dispose();
  });
});
