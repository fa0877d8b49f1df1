// Long training loops keep memory flat: live tensors at step 5 equal those at step 30, for both trainers.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { readRecipe, type TrainEvent, trainDecoder, trainPisces } from "../src/index.js";
import { writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-trainer-memory-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function liveAt(loop: AsyncGenerator<TrainEvent>, steps: number[]): Promise<number[]> {
  const live: number[] = [];
  for await (const e of loop) if (e.type === "step" && steps.includes(e.step)) live.push(T.memoryStats().liveTensors);
  return live;
}

describe("training memory", () => {
  it("a Pisces stage", async () => {
    const recipe = readRecipe(writeRecipe(join(work, "pisces"), { max_steps: 30, save_every: 10, global_batch_size: 2, micro_batch_size: 1 }));
    const [a, b] = await liveAt(trainPisces(recipe), [5, 30]);
    expect(b).toBe(a);
  });
  it("the decoder", async () => {
    const recipe = readRecipe(
      writeRecipe(join(work, "decoder"), { kind: "decoder", max_steps: 30, save_every: 10, global_batch_size: 2, resolution: 32, ema_decay: 0.99 }),
    );
    const [a, b] = await liveAt(trainDecoder(recipe), [5, 30]);
    expect(b).toBe(a);
  });
});
