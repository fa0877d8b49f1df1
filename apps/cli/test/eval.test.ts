// evalDecoderCeiling in process, on the tiny random Pisces of the reference fixtures: both
// unconditional branches run and say which they used; a wrong one is refused before any work.
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { piscesReference } from "../../../tools/test-support/pisces-fixtures.js";
import { evalDecoderCeiling } from "../src/index.js";

let model: PiscesForConditionalGeneration;
beforeAll(() => {
  model = PiscesForConditionalGeneration.fromPretrained(join(piscesReference("tied_k2"), "model"));
});
afterAll(() => model.dispose());

describe("evalDecoderCeiling", () => {
  it("guides against the empty caption's vectors by default, or against zeros", async () => {
    const done: number[] = [];
    const empty = await evalDecoderCeiling(model, { scenes: 2, steps: 2, onScene: (d) => done.push(d) });
    expect(empty).toMatchObject({ scenes: 2, unconditional: "empty-caption" });
    expect(empty.exact).toBeGreaterThanOrEqual(0);
    expect(done).toEqual([2]);
    expect(await evalDecoderCeiling(model, { scenes: 2, steps: 2, unconditional: "zeros" })).toMatchObject({ scenes: 2, unconditional: "zeros" });
    await expect(evalDecoderCeiling(model, { scenes: 2, unconditional: "none" as never })).rejects.toThrow(
      /unconditional must be "empty-caption" or "zeros", got none/,
    );
  });
});
