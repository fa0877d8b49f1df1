// The README's code is examples/readme.ts word for word, so `pnpm typecheck` compiles it. (Running
// it needs a chat model folder; the GGUF tests run the same calls on SmolLM2.)
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readmeExampleMismatch } from "../../../tools/test-support/readme-example.js";

describe("README example", () => {
  it("is examples/readme.ts", () => expect(readmeExampleMismatch(fileURLToPath(new URL("..", import.meta.url)))).toBeNull());
});
