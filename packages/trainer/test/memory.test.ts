// Long training loops keep memory flat: live tensors at step 5 equal those at step 30, for both
// trainers, reading one record at a time (prefetch 0); with records prepared ahead, the count
// differs at most by the examples in flight, whichever finished decoding when it is read.
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
    const recipe = readRecipe(writeRecipe(join(work, "pisces"), { max_steps: 30, save_every: 10, global_batch_size: 2, micro_batch_size: 1, prefetch: 0 }));
    const [a, b] = await liveAt(trainPisces(recipe), [5, 30]);
    expect(b).toBe(a);
  });
  it("the decoder", async () => {
    const recipe = readRecipe(
      writeRecipe(join(work, "decoder"), {
        kind: "decoder",
        max_steps: 30,
        save_every: 10,
        global_batch_size: 2,
        resolution: 32,
        ema_decay: 0.99,
        prefetch: 0,
      }),
    );
    const [a, b] = await liveAt(trainDecoder(recipe), [5, 30]);
    expect(b).toBe(a);
  });
  it("the decoder, two records prepared ahead: flat up to the examples in flight", async () => {
    const recipe = readRecipe(
      writeRecipe(join(work, "decoder-prefetch"), { kind: "decoder", max_steps: 30, save_every: 10, global_batch_size: 2, resolution: 32, prefetch: 2 }),
    );
    const live = await liveAt(trainDecoder(recipe), [5, 10, 15, 20, 25, 30]);
    // a decoder example holds two tensors (CLIP pixels, VAE pixels): two in flight move the count by at most 4
    expect(Math.max(...live) - Math.min(...live)).toBeLessThanOrEqual(4);
  });
});
