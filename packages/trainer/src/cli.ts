#!/usr/bin/env node
// pisces-train RECIPE [--resume] [--nproc-per-node N] [--dist-timeout SECONDS]: trains what the
// recipe names; progress on stderr (rank 0 only), the final folder's path on stdout.
// Data-parallel: launched by torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) each
// process is one rank; with --nproc-per-node N (and no RANK) this process starts N local ranks
// itself and stops them all when one fails.
import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import * as T from "@pisces/tensor-cuda";
import { trainDecoder } from "./decoder-trainer.js";
import { trainGenClip } from "./gen-clip-trainer.js";
import { trainPisces } from "./pisces-trainer.js";
import { Progress, type ProgressOutput } from "./progress.js";
import { readRecipe } from "./recipe.js";
import { trainSiglip } from "./siglip-trainer.js";
import { trainVae } from "./vae-trainer.js";

const USAGE = "usage: pisces-train RECIPE.json [--resume] [--nproc-per-node N] [--dist-timeout SECONDS]\n";

/** Starts `n` local ranks of this same command; resolves with the exit code to return. */
async function launchLocal(n: number, args: string[]): Promise<number> {
  const port = await T.distributed.freePort();
  const children = Array.from({ length: n }, (_, rank) =>
    spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
      env: {
        ...process.env,
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(n),
        LOCAL_WORLD_SIZE: String(n),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
      },
      stdio: ["ignore", "inherit", "inherit"],
    }),
  );
  let failed: string | null = null;
  const codes = await Promise.all(
    children.map(
      (child, rank) =>
        new Promise<number>((resolve) =>
          child.on("exit", (code, signal) => {
            if ((code !== 0 || signal) && !failed) {
              failed = `rank ${rank} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`;
              for (const other of children) if (other !== child && other.exitCode === null) other.kill("SIGTERM");
            }
            resolve(code ?? 1);
          }),
        ),
    ),
  );
  if (failed) {
    process.stderr.write(`pisces-train: ${failed}; the other ranks were stopped\n`);
    return 1;
  }
  return codes.every((c) => c === 0) ? 0 : 1;
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () =>
    parseArgs({
      allowPositionals: true,
      options: {
        resume: { type: "boolean", default: false },
        "nproc-per-node": { type: "string" },
        "dist-timeout": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  try {
    parsed = parse();
  } catch (e) {
    process.stderr.write(`pisces-train: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help || parsed.positionals.length !== 1) {
    process.stderr.write(USAGE);
    return parsed.values.help ? 0 : 2;
  }
  const nproc = parsed.values["nproc-per-node"] === undefined ? 1 : Number(parsed.values["nproc-per-node"]);
  const timeoutS = parsed.values["dist-timeout"] === undefined ? 1800 : Number(parsed.values["dist-timeout"]);
  if (!Number.isInteger(nproc) || nproc < 1 || nproc > 1024) {
    process.stderr.write(`pisces-train: --nproc-per-node must be a whole number from 1 to 1024, got ${parsed.values["nproc-per-node"]}\n${USAGE}`);
    return 2;
  }
  if (!(timeoutS > 0)) {
    process.stderr.write(`pisces-train: --dist-timeout must be a positive number of seconds, got ${parsed.values["dist-timeout"]}\n${USAGE}`);
    return 2;
  }
  let group: T.distributed.ProcessGroup | undefined;
  try {
    const launch = T.distributed.launchEnvironment();
    if (nproc > 1 && !launch) {
      const args = process.argv.slice(2).filter((a, i, all) => !a.startsWith("--nproc-per-node") && all[i - 1] !== "--nproc-per-node");
      return await launchLocal(nproc, args);
    }
    const recipe = readRecipe(parsed.positionals[0]!);
    if (launch && launch.worldSize > 1) group = T.distributed.initProcessGroup({ timeoutMs: Math.round(timeoutS * 1000) });
    const lead = !group || group.rank === 0;
    const quiet: ProgressOutput = { write: () => true };
    const progress = new Progress(lead ? process.stderr : quiet, recipe.maxSteps);
    const train = { pisces: trainPisces, decoder: trainDecoder, vae: trainVae, siglip: trainSiglip, gen_clip: trainGenClip }[recipe.kind];
    const warn = (m: string) => {
      const line = `${group ? `[rank ${group.rank}] ` : ""}warning: ${m}`;
      if (lead) progress.message(line);
      else process.stderr.write(`${line}\n`);
    };
    try {
      for await (const e of train(recipe, { resume: parsed.values.resume, group, warn })) {
        if (e.type === "start")
          progress.message(
            `${recipe.name}: ${e.resumedFrom ? `resuming from ${e.resumedFrom}` : "starting"} at step ${e.step} of ${e.maxSteps} (${e.parameters} trained parameters${group ? `, ${group.size} ranks` : ""})`,
          );
        if (e.type === "step") progress.step(e);
        if (e.type === "validation")
          progress.message(
            `validation step ${e.step}: loss ${e.loss.toFixed(4)}${Object.entries(e.parts)
              .map(([k, v]) => ` ${k} ${v.toFixed(4)}`)
              .join("")} (${e.records} records)`,
          );
        if (e.type === "checkpoint") progress.message(`checkpoint ${e.dir}`);
        if (e.type === "done" && lead) process.stdout.write(`${e.dir}\n`);
      }
    } finally {
      progress.end();
    }
    return 0;
  } catch (e) {
    process.stderr.write(`pisces-train${group ? ` [rank ${group.rank}]` : ""}: ${(e as Error).message.split("\n")[0]}\n`);
    return 1;
  } finally {
    group?.destroy();
  }
}

main().then((code) => process.exit(code));
