// Checkpoints that survive a kill: each is a folder written aside (a hidden temporary beside it),
// every file fsynced, then renamed into place; `latest` (the name of the newest complete one) is
// replaced last, atomically. A run killed at any moment leaves the previous checkpoint and
// `latest` intact; stale temporaries of dead processes are removed on the next save.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";

export interface TrainerState {
  step: number;
  /** The loader's position (data.ts). */
  data: unknown;
  /** Eligible records seen on the shared stream (data-parallel bookkeeping; absent in older checkpoints). */
  eligible?: number;
  skipped: number;
  read: number;
  /** Steps skipped for a NaN/inf loss or gradient. */
  nonfinite?: number;
  /** Data-parallel runs: each rank's loader state, by rank. */
  ranks?: { data: unknown; eligible: number; skipped: number; read: number }[];
  schedulerStep: number;
  optimizerScalars: Record<string, number>;
  recipeName: string;
}

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

function writeSynced(path: string, text: string | Buffer): void {
  writeFileSync(path, text);
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const checkpointName = (step: number) => `step-${String(step).padStart(8, "0")}`;

/** Writes checkpoints/<step>/ (model.safetensors, optimizer.safetensors, trainer_state.json) atomically, then `latest`; keeps the last `keep`. */
export function saveCheckpoint(
  outputDir: string,
  parts: { model: Map<string, T.Tensor>; optimizer: Map<string, T.Tensor>; state: TrainerState },
  keep: number,
): string {
  const root = join(outputDir, "checkpoints");
  mkdirSync(root, { recursive: true });
  const name = checkpointName(parts.state.step);
  const target = join(root, name);
  T.removeStaleTemporaries(target);
  const tmp = join(root, `.${name}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(tmp);
  try {
    T.saveSafetensors(join(tmp, "model.safetensors"), parts.model); // fsynced by saveSafetensors
    T.saveSafetensors(join(tmp, "optimizer.safetensors"), parts.optimizer);
    writeSynced(join(tmp, "trainer_state.json"), JSON.stringify(parts.state, null, 1));
    syncDir(tmp);
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
    syncDir(root);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const latestTmp = join(outputDir, `.latest.tmp-${process.pid}`);
  writeSynced(latestTmp, `${name}\n`);
  renameSync(latestTmp, join(outputDir, "latest"));
  syncDir(outputDir);
  const all = readdirSync(root)
    .filter((n) => /^step-\d{8}$/.test(n))
    .sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(root, old), { recursive: true, force: true });
  return target;
}

/** The newest complete checkpoint (named by `latest`), or null when the run has none. */
export function latestCheckpoint(outputDir: string): { dir: string; state: TrainerState } | null {
  const latest = join(outputDir, "latest");
  if (!existsSync(latest)) return null;
  const name = readFileSync(latest, "utf8").trim();
  if (!/^step-\d{8}$/.test(name)) throw new CheckpointError(`${latest} names '${name}', not a checkpoint: the file was edited by hand?`);
  const dir = join(outputDir, "checkpoints", name);
  const statePath = join(dir, "trainer_state.json");
  if (!existsSync(statePath)) throw new CheckpointError(`${latest} names ${dir}, which is missing or incomplete`);
  return { dir, state: T.readJsonFile(statePath, "trainer state") as TrainerState };
}

/** Drops metric lines of steps after `step` (logged by a run killed before its next checkpoint). */
export function trimMetrics(path: string, step: number): void {
  if (!existsSync(path)) return;
  const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false; // a line cut by the kill
    }
  });
  if (kept.length !== lines.length) writeFileSync(path, kept.map((l) => `${l}\n`).join(""));
}

/**
 * Writes `outputDir/final`: the config, tokenizer and processor files of `source` (every file but
 * weights, top level only) with `weights` as `weightsName`; written aside, then renamed into place.
 */
export function writeFinalFolder(source: string, outputDir: string, weightsName: string, weights: Map<string, T.Tensor>): string {
  const final = join(outputDir, "final");
  const tmp = join(outputDir, `.final.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    for (const name of readdirSync(source)) {
      const path = join(source, name);
      if (name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json") || !statSync(path).isFile()) continue;
      writeSynced(join(tmp, name), readFileSync(path)); // bytes: spiece.model is binary
    }
    T.saveSafetensors(join(tmp, weightsName), weights, { format: "pt" });
    syncDir(tmp);
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return final;
}
