// Data-parallel training over Gloo on loopback: `pisces-train --nproc-per-node 2` with per-rank
// batch b equals one rank with batch 2b (losses and final weights within 1e-6), and a rank killed
// mid-run stops the other with a clear error, leaves every checkpoint whole, and the run resumes.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { worstWeightDifference, writeRecipe } from "./helpers.js";

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "..", "src", "cli.ts");
const work = mkdtempSync(join(tmpdir(), "pisces-ddp-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stderr: string;
}

/** Runs the CLI in one node process (tsx as a loader, not its wrapper process, so a SIGKILL reaches the rank itself). */
function run(args: string[], env: Record<string, string> = {}, onStderr?: (all: string) => void, onSpawn?: (child: ChildProcess) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--conditions=@pisces/source", cli, ...args], {
      cwd: join(here, ".."),
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    onSpawn?.(child);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr);
    });
    child.on("exit", (code) => resolve({ code, stderr }));
  });
}

const losses = (dir: string) =>
  readFileSync(join(dir, "run", "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).loss as number);

/** The final weights of two runs' work folders, compared. */
const finalDifference = (a: string, b: string) =>
  worstWeightDifference(join(a, "run", "final", "model.safetensors"), join(b, "run", "final", "model.safetensors"));

// generation records only: the image loss is a mean over equally many vectors per record, so the
// mean of two ranks' batch means is the mean over the whole batch
const settings = {
  tasks: ["generation" as const],
  max_steps: 20,
  global_batch_size: 4,
  shuffle: true,
  seed: 3,
  log_every: 1,
  optimizer: { lr: 1e-3, weight_decay: 0.01 },
};

describe.runIf(T.distributed.isAvailable("gloo"))("pisces-train data-parallel (Gloo, 2 ranks)", () => {
  it("2 ranks with batch b give the losses and weights of 1 rank with batch 2b (1e-6)", async () => {
    const one = writeRecipe(join(work, "one"), { ...settings, micro_batch_size: 4, save_every: 20 });
    const two = writeRecipe(join(work, "two"), { ...settings, micro_batch_size: 2, save_every: 20 });
    const [a, b] = await Promise.all([run([one]), run([two, "--nproc-per-node", "2", "--dist-timeout", "60"])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/2 ranks/);
    const l1 = losses(join(work, "one"));
    const l2 = losses(join(work, "two"));
    expect(l2).toHaveLength(20);
    for (let i = 0; i < 20; i++) expect(Math.abs(l1[i]! - l2[i]!), `step ${i + 1}`).toBeLessThan(1e-6);
    expect(l1[19]!).toBeLessThan(l1[0]!); // it trained
    expect(finalDifference(join(work, "one"), join(work, "two"))).toBeLessThan(1e-6);
  }, 600_000);

  it("with gradient checkpointing (gradients all-reduced after the backward), the same losses and weights again", async () => {
    // compared with the 1-rank run of the test above (plain backward)
    const ckpt = writeRecipe(join(work, "ckpt"), { ...settings, micro_batch_size: 2, save_every: 20, gradient_checkpointing: true });
    const r = await run([ckpt, "--nproc-per-node", "2", "--dist-timeout", "60"]);
    expect(r.code, r.stderr).toBe(0);
    const l1 = losses(join(work, "one"));
    const l2 = losses(join(work, "ckpt"));
    expect(l2).toHaveLength(20);
    for (let i = 0; i < 20; i++) expect(Math.abs(l1[i]! - l2[i]!), `step ${i + 1}`).toBeLessThan(1e-6);
    expect(finalDifference(join(work, "one"), join(work, "ckpt"))).toBeLessThan(1e-6);
  }, 600_000);

  it("a killed rank stops the other with a clear error; checkpoints stay whole and the run resumes to the same weights", async () => {
    const whole = writeRecipe(join(work, "whole"), { ...settings, max_steps: 8, micro_batch_size: 2, save_every: 2 });
    const parted = writeRecipe(join(work, "parted"), { ...settings, max_steps: 8, micro_batch_size: 2, save_every: 2 });
    const done = await run([whole, "--nproc-per-node", "2", "--dist-timeout", "60"]);
    expect(done.code, done.stderr).toBe(0);

    // torchrun's way: each rank its own process; SIGKILL rank 1 once rank 0 has logged step 5
    const port = String(await T.distributed.freePort());
    const env = (rank: number) => ({ RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: "2", MASTER_ADDR: "127.0.0.1", MASTER_PORT: port });
    let victim: ChildProcess | null = null;
    const rank1 = run([parted, "--dist-timeout", "30"], env(1), undefined, (child) => {
      victim = child;
    });
    const rank0 = run([parted, "--dist-timeout", "30"], env(0), (all) => {
      if (/step 5\/8/.test(all) && victim && victim.exitCode === null) victim.kill("SIGKILL");
    });
    const [r0, r1] = await Promise.all([rank0, rank1]);
    expect(r1.code).toBeNull(); // killed
    expect(r0.code, r0.stderr).toBe(1);
    expect(r0.stderr).toMatch(/pisces-train \[rank 0\]: .*(Connection closed by peer|Timed out|timeout|reset by peer)/i);
    const root = join(work, "parted", "run", "checkpoints");
    for (const name of readdirSync(root).filter((n) => n.startsWith("step-")))
      for (const f of ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]) expect(existsSync(join(root, name, f)), `${name}/${f}`).toBe(true);

    const resumed = await run([parted, "--resume", "--nproc-per-node", "2", "--dist-timeout", "60"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .*step-0000000[46]/);
    expect(losses(join(work, "parted"))).toEqual(losses(join(work, "whole")));
    expect(finalDifference(join(work, "whole"), join(work, "parted"))).toBe(0);
  }, 600_000);

  it("a resume with another number of ranks is refused with the number to use", async () => {
    const r = await run([join(work, "two", "recipe.json"), "--resume"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/written by a run of 2 rank\(s\): resume it with the same number of ranks \(now 1\)/);
  }, 120_000);
});
