// The training loop every trainer shares: records drawn from the recipe's manifests (bad ones
// skipped and counted), micro-batches accumulated into the global batch, gradient clipping, AdamW
// with the recipe's warm-up schedule, metrics as JSONL, atomic checkpoints and a bit-exact resume.
// A trainer supplies only what differs: how a record becomes an example, the loss of a micro-batch,
// extra state (an EMA) and the final export.
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { CheckpointError, latestCheckpoint, saveCheckpoint, trimMetrics } from "./checkpoint.js";
import { DataError, type DataPosition, RecordStream } from "./data.js";
import type { Recipe } from "./recipe.js";

export type TrainEvent =
  | { type: "start"; step: number; maxSteps: number; resumedFrom: string | null; parameters: number }
  | { type: "step"; step: number; loss: number; parts: Record<string, number>; lr: number; gradNorm: number; skipped: number; recordsPerSecond: number }
  | { type: "checkpoint"; step: number; dir: string }
  | { type: "done"; step: number; dir: string };

export interface TrainOptions {
  /** Continue from output_dir's latest checkpoint (an error when output_dir has one and this is false). */
  resume?: boolean;
  /** Receives the first few skipped records (default: nothing). */
  warn?: (message: string) => void;
}

/** What a trainer plugs into the loop. `E` is one prepared example (tensors it owns). */
export interface TrainerSpec<E> {
  /** The module whose parameters are trained (its state dict is checkpointed). */
  module: T.nn.Module;
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

export async function* runTraining<E>(recipe: Recipe, spec: TrainerSpec<E>, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const out = recipe.outputDir;
  mkdirSync(out, { recursive: true });
  const checkpoint = latestCheckpoint(out);
  if (checkpoint && !options.resume)
    throw new CheckpointError(`${out} already holds checkpoints (latest ${checkpoint.dir}): pass --resume to continue, or choose another output_dir`);
  const module = spec.module;
  const params = module.parameters();
  const o = recipe.optimizer;
  const optimizer = new T.optim.AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, betas: o.betas, eps: o.eps });
  try {
    const scheduler =
      recipe.schedule.type === "constant_with_warmup"
        ? T.optim.getConstantScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps })
        : T.optim.getCosineScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps, numTrainingSteps: recipe.maxSteps });
    const state = checkpoint?.state ?? null;
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
    module.train();
    const stream = new RecordStream(recipe.data, recipe.seed, recipe.shuffle, state?.data as DataPosition | undefined);
    let skipped = state?.skipped ?? 0;
    let read = state?.read ?? 0;
    const startStep = state?.step ?? 0;
    const metrics = join(out, "metrics.jsonl");
    trimMetrics(metrics, startStep); // a killed run may have logged steps past its last checkpoint
    const warn = options.warn ?? (() => {});

    const draw = async (): Promise<E> => {
      for (;;) {
        const { record, source } = stream.next();
        read++;
        let result: E | string | null;
        if ("bad" in record) result = record.bad;
        else
          try {
            result = await spec.prepare(record, source);
          } catch (e) {
            result = `${source}: ${(e as Error).message}`;
          }
        if (result === null) {
          read--; // another trainer's record: not counted
          continue;
        }
        if (typeof result !== "string") return result;
        skipped++;
        if (skipped <= 5) warn(`skipped ${result}`);
        if (read >= 20 && skipped / read > recipe.maxSkippedFraction)
          throw new DataError(`${skipped} of ${read} records were bad (more than max_skipped_fraction ${recipe.maxSkippedFraction}); the last: ${result}`);
      }
    };

    yield { type: "start", step: startStep, maxSteps: recipe.maxSteps, resumedFrom: checkpoint?.dir ?? null, parameters: module.numParameters() };
    for (let step = startStep + 1; step <= recipe.maxSteps; step++) {
      const t0 = performance.now();
      const lr = optimizer.lr;
      let loss = 0;
      const parts: Record<string, number> = {};
      for (let micro = 0; micro < recipe.accumulationSteps; micro++) {
        const examples: E[] = [];
        try {
          for (let i = 0; i < recipe.microBatchSize; i++) examples.push(await draw());
          const values = T.scope(() => {
            // every random draw of a micro-batch from one generator: a resumed run draws the same
            const generator = new T.Generator({ seed: recipe.seed * 1_000_003 + step * 1_009 + micro });
            const r = spec.loss(examples, generator, step);
            r.loss.div(recipe.accumulationSteps).backward();
            return { loss: r.loss.item(), parts: Object.fromEntries(Object.entries(r.parts).map(([k, t]) => [k, t.item()])) };
          });
          loss += values.loss / recipe.accumulationSteps;
          for (const [k, v] of Object.entries(values.parts)) parts[k] = (parts[k] ?? 0) + v / recipe.accumulationSteps;
        } finally {
          for (const e of examples) spec.disposeExample(e);
        }
      }
      const gradNorm = T.optim.clipGradNorm(params, recipe.maxGradNorm > 0 ? recipe.maxGradNorm : Number.POSITIVE_INFINITY);
      optimizer.step();
      scheduler.step();
      module.zeroGrad();
      spec.afterStep?.();
      if (step % recipe.logEvery === 0 || step === recipe.maxSteps)
        appendFileSync(metrics, `${JSON.stringify({ step, loss, ...parts, lr, grad_norm: gradNorm, skipped })}\n`);
      yield { type: "step", step, loss, parts, lr, gradNorm, skipped, recordsPerSecond: (recipe.globalBatchSize * 1000) / (performance.now() - t0) };
      if (step % recipe.saveEvery === 0 || step === recipe.maxSteps) {
        const moments = optimizer.stateDict();
        const weights = new Map(module.stateDict());
        for (const [k, t] of spec.extraState?.() ?? []) weights.set(`extra.${k}`, t);
        const dir = saveCheckpoint(
          out,
          {
            model: weights,
            optimizer: moments.tensors,
            state: { step, data: stream.position, skipped, read, schedulerStep: step, optimizerScalars: moments.scalars, recipeName: recipe.name },
          },
          recipe.keepLast,
        );
        yield { type: "checkpoint", step, dir };
      }
    }
    module.eval();
    yield { type: "done", step: recipe.maxSteps, dir: spec.finish() };
  } finally {
    optimizer.dispose();
  }
}
