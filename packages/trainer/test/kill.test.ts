// SIGKILL at random moments (also during checkpoint writes): the resumed runs produce the same
// metrics and final weights as an uninterrupted run, and no checkpoint is ever half-written.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { writeRecipe } from "./helpers.js";

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "..", "src", "cli.ts");
const tsx = join(here, "..", "node_modules", ".bin", "tsx");
const work = mkdtempSync(join(tmpdir(), "pisces-kill-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs the CLI; kills it with SIGKILL once its stderr shows `killAt` (a step or a checkpoint line), or lets it finish. */
function train(recipe: string, resume: boolean, killAt: RegExp | null): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(tsx, ["--conditions=@pisces/source", cli, ...(recipe ? [recipe] : []), ...(resume ? ["--resume"] : [])], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let killed = false;
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (killAt && !killed && killAt.test(stderr)) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    child.on("exit", (code) => resolve({ code, killed, stderr }));
  });
}

describe("pisces-train under SIGKILL", () => {
  it("resumes to the same losses and weights as an uninterrupted run", async () => {
    const settings = { max_steps: 8, save_every: 2, keep_last: 2, global_batch_size: 2, shuffle: true, seed: 5 };
    const whole = writeRecipe(join(work, "whole"), settings);
    const first = await train(whole, false, null);
    expect(first.code, first.stderr).toBe(0);
    const parted = writeRecipe(join(work, "parted"), settings);
    // kill points: mid-step, right as a checkpoint begins writing (the step line before it), after a checkpoint
    const kills = [/step 3\/8/, /step 4\/8/, /checkpoint .*step-00000004/, /step 7\/8/];
    let resume = false;
    for (const at of kills) {
      const r = await train(parted, resume, at);
      expect(r.killed || r.code === 0, r.stderr).toBe(true);
      resume = true;
      // never a half-written checkpoint under its final name
      const root = join(work, "parted", "run", "checkpoints");
      if (existsSync(root))
        for (const name of readdirSync(root).filter((n) => n.startsWith("step-")))
          for (const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json"])
            expect(existsSync(join(root, name, f)), `${name}/${f}`).toBe(true);
    }
    const last = await train(parted, true, null);
    expect(last.code, last.stderr).toBe(0);
    expect(readFileSync(join(work, "parted", "run", "metrics.jsonl"), "utf8")).toBe(readFileSync(join(work, "whole", "run", "metrics.jsonl"), "utf8"));
    const a = T.loadSafetensors(join(work, "whole", "run", "final", "model.safetensors"));
    const b = T.loadSafetensors(join(work, "parted", "run", "final", "model.safetensors"));
    for (const k of a.keys())
      expect(
        T.scope(() => a.get(k).equal(b.get(k))),
        k,
      ).toBe(true);
  });

  it("usage and recipe errors are one line with exit codes 2 and 1", async () => {
    const usage = await train("", false, null);
    expect(usage.code).toBe(2);
    const missing = await train(join(work, "no-such-recipe.json"), false, null);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^pisces-train: .*no-such-recipe.json/);
    expect(missing.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });
});
