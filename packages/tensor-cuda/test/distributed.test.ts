// c10d through the addon: several real processes on loopback (Gloo), launched with torchrun's
// variables, each running test/fixtures/distributed-worker.ts.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";

const { distributed: D } = T;
const here = dirname(fileURLToPath(import.meta.url));
const tsx = join(here, "..", "node_modules", ".bin", "tsx");
const worker = join(here, "fixtures", "distributed-worker.ts");

interface RankResult {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `world` ranks of the worker in `mode`; resolves with each rank's exit code and output. */
async function launch(world: number, mode: string, extra: string[] = [], env: Record<string, string> = {}): Promise<RankResult[]> {
  const port = await D.freePort();
  return Promise.all(
    Array.from(
      { length: world },
      (_, rank) =>
        new Promise<RankResult>((resolve) => {
          const child = spawn(tsx, [worker, mode, ...extra], {
            env: {
              ...process.env,
              ...env,
              RANK: String(rank),
              LOCAL_RANK: String(rank),
              WORLD_SIZE: String(world),
              MASTER_ADDR: "127.0.0.1",
              MASTER_PORT: String(port),
            },
            stdio: ["ignore", "pipe", "pipe"],
          });
          let out = "";
          let err = "";
          child.stdout.on("data", (d) => (out += d));
          child.stderr.on("data", (d) => (err += d));
          child.on("close", (code) => resolve({ code, out, err }));
        }),
    ),
  );
}

const parse = (r: RankResult) => {
  if (r.code !== 0) throw new Error(`rank exited with ${r.code}: ${r.err.slice(-2000)}`);
  return JSON.parse(r.out.trim().split("\n").pop()!);
};

describe("launch environment", () => {
  it("reads torchrun's variables, and names what is missing or wrong", () => {
    expect(D.launchEnvironment({})).toBeNull();
    expect(D.launchEnvironment({ RANK: "1", WORLD_SIZE: "4", MASTER_ADDR: "10.0.0.2", MASTER_PORT: "1234" })).toEqual({
      rank: 1,
      worldSize: 4,
      localRank: 1,
      masterAddr: "10.0.0.2",
      masterPort: 1234,
    });
    expect(() => D.launchEnvironment({ RANK: "0" })).toThrow(/WORLD_SIZE is not set/);
    expect(() => D.launchEnvironment({ RANK: "4", WORLD_SIZE: "4" })).toThrow(/RANK=4 does not fit WORLD_SIZE=4/);
    expect(() => D.launchEnvironment({ RANK: "x", WORLD_SIZE: "2" })).toThrow(/RANK=x is not a non-negative integer/);
    expect(() => D.initProcessGroup({ env: {} })).toThrow(/needs a rank and a world size/);
    expect(() => D.initProcessGroup({ backend: "nccl", env: {} })).toThrow(/only 'gloo'/);
  });
});

// CI installs libgloo-dev (tools/setup.sh), so there these tests must run; elsewhere a build
// without it has to say so clearly.
const gloo = D.isAvailable("gloo");
describe.runIf(!gloo)("a build without Gloo", () => {
  it("says what to install", () => {
    expect(process.env.CI, "CI must build with Gloo (tools/setup.sh installs libgloo-dev)").toBeFalsy();
    const store = new D.TCPStore("127.0.0.1", 0, { worldSize: 1, isMaster: true, timeoutMs: 5000 });
    expect(() => D.ProcessGroup.gloo(store, 0, 1)).toThrow(/libgloo-dev/);
  });
});

describe.runIf(gloo)("Gloo process group (2 processes on loopback)", () => {
  it("allReduce, broadcast, allGather, reduceScatter, barrier and the store", async () => {
    const [r0, r1] = (await launch(2, "collectives")).map(parse);
    for (const r of [r0, r1]) {
      expect(r.sum).toEqual([3, 30]);
      expect(r.max).toEqual([2, -1]);
      expect(r.avg).toEqual([1]);
      expect(r.broadcast).toEqual([7, 8, 9]);
      expect(r.allGather).toEqual([
        [0, 0.5],
        [1, 1.5],
      ]);
      expect(r.store).toEqual(["from 0", "from 1"]);
    }
    // rank r receives the sum over ranks of inputs[r] = [100 r + rank, 1]
    expect(r0.reduceScatter).toEqual([0 + 1, 2]);
    expect(r1.reduceScatter).toEqual([200 + 1, 2]);
    expect([r0.counter, r1.counter].sort()).toEqual([1, 2]);
  }, 120_000);

  it("DistributedDataParallel: 2 ranks with batch b equal 1 rank with batch 2b after 20 AdamW steps (1e-6)", async () => {
    const [one] = (await launch(1, "ddp", ["8"])).map(parse);
    const two = (await launch(2, "ddp", ["4"])).map(parse);
    expect(two[0].weights).toEqual(two[1].weights); // the ranks agree exactly, though seeded apart
    expect(one.losses).toHaveLength(20);
    for (let i = 0; i < 20; i++) expect(Math.abs(two[0].losses[i] - one.losses[i])).toBeLessThan(1e-6);
    let worst = 0;
    for (const [k, w] of Object.entries(one.weights as Record<string, number[]>))
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs((w[i] as number) - two[0].weights[k][i]));
    expect(worst).toBeLessThan(1e-6);
    expect(one.losses[19]).not.toEqual(one.losses[0]); // it trained
  }, 120_000);

  it("a rank that dies makes the others fail with a clear error, not hang", async () => {
    const ranks = await launch(2, "hang", [], { PISCES_TEST_TIMEOUT_MS: "20000" });
    expect(ranks[1]?.code).toBe(3);
    expect(parse(ranks[0] as RankResult).error).toMatch(/TorchError: .*(Connection closed by peer|Timed out|timeout)/i);
  }, 120_000);
});
