// The README's code is examples/readme.ts word for word (so it type-checks), and it runs.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";
import { decodeToPng } from "../examples/readme.js";
import { fixtures, referenceFixtures } from "./helpers.js";

beforeAll(() => {
  referenceFixtures();
});

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
  it("runs on the tiny reference decoder folder", async () => {
    const out = join(mkdtempSync(join(tmpdir(), "pisces-sdxl-readme-")), "out.png");
    const dir = join(fixtures, "decoder");
    const D = JSON.parse(readFileSync(join(dir, "unet", "config.json"), "utf8")).cross_attention_dim as number;
    const vectors = T.randn([1, 4, D]);
    await decodeToPng(dir, vectors, out, 32, 2);
    expect(readFileSync(out).subarray(1, 4).toString()).toBe("PNG");
    vectors.dispose();
  });
});
