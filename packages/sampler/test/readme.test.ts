// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { drawAndDescribe } from "../examples/readme.js";
import { piscesReference } from "./helpers.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs on the reference's tiny Pisces", async () => {
    const out = mkdtempSync(join(tmpdir(), "pisces-sampler-readme-"));
    try {
      const caption = await drawAndDescribe(join(piscesReference("tied_k2"), "model"), join(out, "image.png"), 32, 2);
      expect(existsSync(join(out, "image.png"))).toBe(true);
      expect(typeof caption).toBe("string");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
