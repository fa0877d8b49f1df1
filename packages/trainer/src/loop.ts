// The training loop every trainer shares: records drawn from the recipe's manifests (bad ones
// skipped and counted), micro-batches accumulated into the global batch, gradient clipping, AdamW
// with the recipe's warm-up schedule, metrics as JSONL, atomic checkpoints and a bit-exact resume.
// A trainer supplies only what differs: how a record becomes an example, the loss of a micro-batch,
// extra state (an EMA) and the final export.
//
// Data-parallel: with a process group of N ranks (torchrun's variables, or `pisces-train
// --nproc-per-node N`), every rank walks the same seeded record stream and takes every N-th
// eligible record, so the N ranks together see what one rank with an N times larger batch sees;
// gradients are averaged by DistributedDataParallel's Reducer during the backward. Only rank 0
// writes metrics, checkpoints and the final folder (each rank's data position is gathered into
// the checkpoint through the store).
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { CheckpointError, latestCheckpoint, saveCheckpoint, trimMetrics } from "./checkpoint.js";
import { DataError, type DataPosition, RecordStream } from "./data.js";
import type { Recipe } from "./recipe.js";

export type TrainEvent =
  | { type: "start"; step: number; maxSteps: number; resumedFrom: string | null; parameters: number }
  | {
      type: "step";
      step: number;
      loss: number;
      parts: Record<string, number>;
      lr: number;
      gradNorm: number;
      skipped: number;
      /** Steps skipped so far because the loss or the gradients were NaN/inf. */
      nonfinite: number;
      recordsPerSecond: number;
    }
  | { type: "validation"; step: number; loss: number; parts: Record<string, number>; records: number }
  | { type: "checkpoint"; step: number; dir: string }
  | { type: "done"; step: number; dir: string };

export interface TrainOptions {
  /** Continue from output_dir's latest checkpoint (an error when output_dir has one and this is false). */
  resume?: boolean;
  /** Receives the first few skipped records (default: nothing). */
  warn?: (message: string) => void;
  /** Train data-parallel over this group (every rank calls runTraining with the same recipe). */
  group?: T.distributed.ProcessGroup;
}

export class TrainingError extends Error {
  override name = "TrainingError";
}

/** What one rank's loader has consumed (saved per rank in a checkpoint). */
interface RankState {
  data: DataPosition;
  /** Eligible records seen on the shared stream (every rank's, not only this rank's). */
  eligible: number;
  skipped: number;
  read: number;
}

/** What a trainer plugs into the loop. `E` is one prepared example (tensors it owns). */
export interface TrainerSpec<E> {
  /** The module whose parameters are trained (its state dict is checkpointed). */
  module: T.nn.Module;
  /** Cheap check that a record is this trainer's (e.g. its task), before any decoding; data-parallel ranks split the accepted records. */
  accepts?(record: unknown): boolean;
  /** A record -> an example, a problem (skipped and counted), or null (not this trainer's: passed over). */
  prepare(record: unknown, source: string): Promise<E | string | null>;
  disposeExample(example: E): void;
  /** The loss of a micro-batch (graph attached), and named parts to log. `generator` is seeded by (seed, step, micro). */
  loss(examples: E[], generator: T.Generator, step: number): { loss: T.Tensor; parts: Record<string, T.Tensor> };
  /** Called after each optimizer step (e.g. to update an EMA). */
  afterStep?(): void;
  /** Extra tensors to checkpoint beside the module's (saved as `extra.<name>`), and their restore. */
  extraState?(): Map<string, T.Tensor>;
  restoreExtraState?(tensors: Map<string, T.Tensor>): void;
  /** Writes the trained result (e.g. output_dir/final) and returns its path. */
  finish(): string;
}

/** The recipe's AdamW: weight decay on parameters of 2+ dimensions, and on 1-D ones only with `decay_1d`. */
export function makeOptimizer(params: T.nn.Parameter[], o: Recipe["optimizer"]): T.optim.AdamW {
  const decayed = o.decay1d ? params : params.filter((p) => p.dim() >= 2);
  const undecayed = o.decay1d ? [] : params.filter((p) => p.dim() < 2);
  return new T.optim.AdamW(
    [
      { params: decayed, options: { weightDecay: o.weightDecay } },
      { params: undecayed, options: { weightDecay: 0 } },
    ].filter((g) => g.params.length > 0),
    { lr: o.lr, betas: o.betas, eps: o.eps },
  );
}

/**
 * Averages the gradients over the ranks after the backward, as DDP's reducer does during it: in
 * buckets of about 25 MB (sum, then divided by the world size). A parameter no rank used keeps no
 * gradient (the optimizer passes it over, as with DDP); one used by some ranks only gets zeros on
 * the others first.
 */
export function allReduceGradients(params: readonly T.nn.Parameter[], group: T.distributed.ProcessGroup, bucketBytes = 25 * 1024 * 1024): void {
  T.scope(() => {
    const used = T.tensor(
      params.map((p) => (T.scope(() => p.grad !== null) ? 1 : 0)),
      { dtype: "float64" },
    );
    group.allReduce(used);
    const anyRank = Array.from(used.toArray() as Float64Array, (v) => v > 0);
    let bucket: T.Tensor[] = [];
    let bytes = 0;
    const flush = () => {
      if (bucket.length === 0) return;
      T.scope(() => {
        const flat = T.cat(bucket.map((g) => g.flatten()));
        group.allReduce(flat);
        flat.div_(group.size);
        let at = 0;
        for (const g of bucket) {
          g.copy_(flat.slice(0, at, at + g.numel()).view(g.shape));
          at += g.numel();
        }
      });
      bucket = [];
      bytes = 0;
    };
    params.forEach((p, i) => {
      if (!anyRank[i]) return;
      let g = p.grad;
      if (g === null) {
        p.grad = T.zerosLike(p);
        g = p.grad!;
      }
      if (bucket.length > 0 && (bucket[0]!.dtype !== g.dtype || bucket[0]!.device !== g.device)) flush();
      bucket.push(g);
      bytes += g.numel() * T.DTYPE_SIZE[g.dtype];
      if (bytes >= bucketBytes) flush();
    });
    flush();
  });
}

export async function* runTraining<E>(recipe: Recipe, spec: TrainerSpec<E>, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const group = options.group && options.group.size > 1 ? options.group : null;
  const world = group?.size ?? 1;
  const rank = group?.rank ?? 0;
  const lead = rank === 0;
  if (recipe.microBatchSize * recipe.accumulationSteps !== recipe.globalBatchSize || recipe.globalBatchSize % (recipe.microBatchSize * world) !== 0)
    throw new TrainingError(
      `global_batch_size ${recipe.globalBatchSize} is not a multiple of micro_batch_size ${recipe.microBatchSize} x ${world} ranks: change the batch sizes or the number of ranks`,
    );
  const accumulation = recipe.globalBatchSize / (recipe.microBatchSize * world);
  const out = recipe.outputDir;
  mkdirSync(out, { recursive: true });
  const checkpoint = latestCheckpoint(out);
  if (checkpoint && !options.resume)
    throw new CheckpointError(`${out} already holds checkpoints (latest ${checkpoint.dir}): pass --resume to continue, or choose another output_dir`);
  const state = checkpoint?.state ?? null;
  const saved: RankState[] | null = state
    ? ((state.ranks as RankState[] | undefined) ?? [
        { data: state.data as DataPosition, eligible: state.eligible ?? 0, skipped: state.skipped, read: state.read },
      ])
    : null;
  if (saved && saved.length !== world)
    throw new CheckpointError(`${checkpoint!.dir} was written by a run of ${saved.length} rank(s): resume it with the same number of ranks (now ${world})`);
  const module = spec.module;
  const params = module.parameters();
  const optimizer = makeOptimizer(params, recipe.optimizer);
  let ddp: T.distributed.DistributedDataParallel | null = null;
  try {
    const scheduler =
      recipe.schedule.type === "constant_with_warmup"
        ? T.optim.getConstantScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps })
        : T.optim.getCosineScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps, numTrainingSteps: recipe.maxSteps });
    if (checkpoint && state) {
      const weights = T.loadSafetensors(join(checkpoint.dir, "model.safetensors"));
      const own = weights.keys().filter((k) => !k.startsWith("extra."));
      module.loadStateDict({ keys: () => own, get: (k: string) => weights.get(k), shapeOf: (k: string) => weights.shapeOf(k) });
      const extra = new Map(
        weights
          .keys()
          .filter((k) => k.startsWith("extra."))
          .map((k) => [k.slice(6), weights.get(k)] as const),
      );
      if (extra.size) spec.restoreExtraState?.(extra);
      for (const t of extra.values()) t.dispose();
      const moments = T.loadSafetensors(join(checkpoint.dir, "optimizer.safetensors"));
      const tensors = new Map(moments.keys().map((k) => [k, moments.get(k)] as const));
      optimizer.loadStateDict({ tensors, scalars: state.optimizerScalars });
      for (const t of tensors.values()) t.dispose();
      for (let i = 0; i < state.schedulerStep; i++) scheduler.step();
    }
    // bf16: the forward and the loss under autocast on the parameters' device; the backward outside
    const deviceType = params[0]?.device.startsWith("cuda") ? "cuda" : "cpu";
    const lossOf = (examples: E[], generator: T.Generator, step: number) =>
      recipe.mixedPrecision === "bf16"
        ? T.autocast({ deviceType, dtype: "bfloat16" }, () => spec.loss(examples, generator, step))
        : spec.loss(examples, generator, step);
    // Parameters a batch does not use (the understanding MLP in a generation-only batch) are
    // found from the loss's graph each step, as DDP's find_unused_parameters does.
    // With gradient checkpointing the reducer cannot be used: its hooks fire during the first
    // backward, before the recomputed segments have added their share; the gradients are
    // all-reduced once the whole backward has run instead (not overlapped with it).
    if (group && !recipe.gradientCheckpointing) ddp = new T.distributed.DistributedDataParallel(module, group, { findUnusedParameters: true });
    module.train();
    const mine = saved?.[rank];
    const stream = new RecordStream(recipe.data, recipe.seed, recipe.shuffle, mine?.data as DataPosition | undefined);
    let eligible = mine?.eligible ?? 0;
    let skipped = mine?.skipped ?? 0;
    let read = mine?.read ?? 0;
    let nonfinite = state?.nonfinite ?? 0;
    let nonfiniteInARow = 0;
    const startStep = state?.step ?? 0;
    const metrics = join(out, "metrics.jsonl");
    if (lead) trimMetrics(metrics, startStep); // a killed run may have logged steps past its last checkpoint
    const warn = options.warn ?? (() => {});

    // Records are drawn in order and prepared `prefetch` ahead: image decoding (sharp, on libuv's
    // threads) overlaps the step that runs meanwhile. Each queued record remembers the loader
    // position before it, so a checkpoint resumes at the first record not yet consumed.
    interface Pending {
      data: DataPosition;
      eligible: number;
      source: string;
      result: Promise<E | string | null>;
    }
    const queue: Pending[] = [];
    const refill = async () => {
      while (queue.length < recipe.prefetch + 1) {
        const data = stream.position;
        const before = eligible;
        const { record, source } = await stream.next();
        if (!("bad" in record) && spec.accepts && !spec.accepts(record)) continue; // another trainer's record
        if (eligible++ % world !== rank) continue; // another rank's
        const result =
          "bad" in record
            ? Promise.resolve(record.bad)
            : Promise.resolve()
                .then(() => spec.prepare(record, source))
                .catch((e: Error) => `${source}: ${e.message}`);
        queue.push({ data, eligible: before, source, result });
      }
    };
    const draw = async (): Promise<{ example: E; source: string }> => {
      for (;;) {
        await refill();
        const head = queue.shift()!;
        read++;
        const result = await head.result;
        if (result === null) {
          read--; // another trainer's record: not counted
          continue;
        }
        if (typeof result !== "string") return { example: result, source: head.source };
        skipped++;
        if (skipped <= 5) warn(`skipped ${result}`);
        if (read >= 20 && skipped / read > recipe.maxSkippedFraction)
          throw new DataError(`${skipped} of ${read} records were bad (more than max_skipped_fraction ${recipe.maxSkippedFraction}); the last: ${result}`);
      }
    };
    /** Where the loader is: before the first queued record, or the stream's position when none is queued. */
    const loaderState = (): RankState =>
      queue.length ? { data: queue[0]!.data, eligible: queue[0]!.eligible, skipped, read } : { data: stream.position, eligible, skipped, read };
    const drain = async () => {
      for (const p of queue.splice(0)) {
        const r = await p.result;
        if (r !== null && typeof r !== "string") spec.disposeExample(r);
      }
    };
    /**
     * The recipe's validation: the loss (and its named parts) over up to max_records held-out
     * records, read in file order from a fresh stream each time (the same records every time),
     * split across ranks like the training data, under no-grad with dropout off and fixed draws.
     */
    const validate = async (step: number): Promise<TrainEvent | null> => {
      const v = recipe.validation;
      if (!v) return null;
      const held = new RecordStream(v.data, recipe.seed, false);
      const sums: Record<string, number> = {};
      let lossSum = 0;
      let count = 0;
      let k = 0;
      module.eval();
      try {
        let batch: E[] = [];
        const flush = () => {
          if (!batch.length) return;
          T.scope(() =>
            T.noGrad(() => {
              const r = lossOf(batch, new T.Generator({ seed: recipe.seed * 1_000_003 + 999_983 + k }), step);
              lossSum += r.loss.item() * batch.length;
              for (const [name, t] of Object.entries(r.parts)) sums[name] = (sums[name] ?? 0) + t.item() * batch.length;
            }),
          );
          count += batch.length;
          for (const e of batch) spec.disposeExample(e);
          batch = [];
        };
        for (let taken = 0; taken < v.maxRecords; ) {
          const { record, source } = await held.next();
          if (held.position.manifests.some((p) => p.epoch > 0)) break; // every held-out record seen once
          if (!("bad" in record) && spec.accepts && !spec.accepts(record)) continue;
          taken++;
          if (k++ % world !== rank || "bad" in record) continue;
          const result = await Promise.resolve()
            .then(() => spec.prepare(record, source))
            .catch(() => null);
          if (result === null || typeof result === "string") continue;
          batch.push(result);
          if (batch.length === recipe.microBatchSize) flush();
        }
        flush();
      } finally {
        module.train();
      }
      const names = Object.keys(sums).sort();
      const totals = sumOverRanks([lossSum, count, ...names.map((n) => sums[n]!)]);
      const records = totals[1]!;
      if (records === 0) throw new DataError("validation: none of the held-out records could be used (no record of this trainer's tasks, or all bad)");
      const parts = Object.fromEntries(names.map((n, i) => [n, totals[i + 2]! / records]));
      const loss = totals[0]! / records;
      if (lead) appendFileSync(metrics, `${JSON.stringify({ step, split: "validation", loss, ...parts, records })}\n`);
      return { type: "validation", step, loss, parts, records };
    };
    /** Sums numbers over the ranks, in one all-reduce. */
    const sumOverRanks = (values: number[]): number[] => {
      if (!group) return values;
      return T.scope(() => {
        const t = T.tensor(values, { dtype: "float64" });
        group.allReduce(t);
        return Array.from(t.toArray() as Float64Array);
      });
    };

    try {
      yield { type: "start", step: startStep, maxSteps: recipe.maxSteps, resumedFrom: checkpoint?.dir ?? null, parameters: module.numParameters() };
      for (let step = startStep + 1; step <= recipe.maxSteps; step++) {
        const t0 = performance.now();
        const lr = optimizer.lr;
        let loss = 0;
        const parts: Record<string, number> = {};
        const sources: string[] = [];
        for (let micro = 0; micro < accumulation; micro++) {
          const examples: E[] = [];
          try {
            for (let i = 0; i < recipe.microBatchSize; i++) {
              const drawn = await draw();
              examples.push(drawn.example);
              sources.push(drawn.source);
            }
            const values = T.scope(() => {
              // every random draw of a micro-batch from one generator: a resumed run draws the same
              const generator = new T.Generator({ seed: recipe.seed * 1_000_003 + step * 1_009 + micro + rank * 100_003 });
              const r = lossOf(examples, generator, step);
              const scaled = r.loss.div(accumulation);
              if (ddp && micro === accumulation - 1) ddp.prepareForBackward([scaled]); // the last micro-batch synchronises
              scaled.backward();
              return { loss: r.loss.item(), parts: Object.fromEntries(Object.entries(r.parts).map(([k, t]) => [k, t.item()])) };
            });
            loss += values.loss / accumulation;
            for (const [k, v] of Object.entries(values.parts)) parts[k] = (parts[k] ?? 0) + v / accumulation;
          } finally {
            for (const e of examples) spec.disposeExample(e);
          }
        }
        if (group && !ddp) allReduceGradients(params, group);
        const names = Object.keys(parts);
        // losses averaged over the ranks, skip counts summed: one all-reduce per step
        const totals = sumOverRanks([loss, ...names.map((k) => parts[k]!), skipped]);
        loss = totals[0]! / world;
        names.forEach((k, i) => {
          parts[k] = totals[i + 1]! / world;
        });
        const skippedAll = totals[names.length + 1]!;
        // the gradients are the same on every rank after the all-reduce, so is this decision
        const gradNorm = T.optim.clipGradNorm(params, recipe.maxGradNorm > 0 ? recipe.maxGradNorm : Number.POSITIVE_INFINITY);
        if (Number.isFinite(loss) && Number.isFinite(gradNorm)) {
          optimizer.step();
          nonfiniteInARow = 0;
        } else {
          nonfinite++;
          nonfiniteInARow++;
          warn(`step ${step}: the ${Number.isFinite(loss) ? "gradient norm" : "loss"} is not finite; the step is skipped (${nonfiniteInARow} in a row)`);
          if (nonfiniteInARow >= recipe.maxNonfiniteSteps) {
            const last = latestCheckpoint(out);
            throw new TrainingError(
              `${nonfiniteInARow} steps in a row had a NaN/inf loss or gradient (max_nonfinite_steps ${recipe.maxNonfiniteSteps}), the last at step ${step} ` +
                `with the records ${sources.slice(0, 8).join(", ")}${sources.length > 8 ? ", ..." : ""}; ` +
                (last ? `the last good checkpoint is ${last.dir}` : "no checkpoint was written yet") +
                ": lower the learning rate or check the data, then resume",
            );
          }
        }
        scheduler.step();
        module.zeroGrad();
        spec.afterStep?.();
        if (lead && (step % recipe.logEvery === 0 || step === recipe.maxSteps))
          appendFileSync(metrics, `${JSON.stringify({ step, loss, ...parts, lr, grad_norm: gradNorm, skipped: skippedAll, nonfinite })}\n`);
        yield {
          type: "step",
          step,
          loss,
          parts,
          lr,
          gradNorm,
          skipped: skippedAll,
          nonfinite,
          recordsPerSecond: (recipe.globalBatchSize * 1000) / (performance.now() - t0),
        };
        if (recipe.validation && ((recipe.validation.every > 0 && step % recipe.validation.every === 0) || step === recipe.maxSteps)) {
          const event = await validate(step);
          if (event) yield event;
        }
        if (step % recipe.saveEvery === 0 || step === recipe.maxSteps) {
          const own = loaderState();
          let ranks: RankState[] = [own];
          if (group) {
            group.store.set(`pisces-train/${step}/${rank}`, JSON.stringify(own));
            ranks = lead ? Array.from({ length: world }, (_, r) => JSON.parse(group.store.get(`pisces-train/${step}/${r}`)) as RankState) : [];
          }
          if (lead) {
            const moments = optimizer.stateDict();
            const weights = new Map(module.stateDict());
            for (const [k, t] of spec.extraState?.() ?? []) weights.set(`extra.${k}`, t);
            const dir = saveCheckpoint(
              out,
              {
                model: weights,
                optimizer: moments.tensors,
                state: {
                  step,
                  data: own.data,
                  eligible: own.eligible,
                  skipped,
                  read,
                  nonfinite,
                  ...(group ? { ranks } : {}),
                  schedulerStep: step,
                  optimizerScalars: moments.scalars,
                  recipeName: recipe.name,
                },
              },
              recipe.keepLast,
            );
            yield { type: "checkpoint", step, dir };
          }
        }
      }
    } finally {
      await drain(); // examples prepared ahead and not used
    }
    module.eval();
    const final = lead ? spec.finish() : join(out, "final");
    group?.barrier(); // the final folder is complete before any rank reports done
    yield { type: "done", step: recipe.maxSteps, dir: final };
  } finally {
    ddp?.dispose();
    optimizer.dispose();
  }
}
