// Trains a Pisces stage (the LLM and the three MLPs; both encoders frozen) from a recipe: records
// drawn from weighted JSONL manifests, micro-batches accumulated into the global batch, AdamW with
// the paper's constant-with-warm-up schedule, gradient clipping, metrics as JSONL, atomic
// checkpoints every `save_every` steps, and a resume that continues bit-exactly. An async
// generator of events, so the CLI prints progress and tests can stop it anywhere.
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type EncodedRecord, PiscesForConditionalGeneration, type PiscesRecord } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { CheckpointError, latestCheckpoint, saveCheckpoint, type TrainerState, trimMetrics } from "./checkpoint.js";
import { DataError, type DataPosition, RecordStream } from "./data.js";
import type { Recipe } from "./recipe.js";

export type TrainEvent =
  | { type: "start"; step: number; maxSteps: number; resumedFrom: string | null; parameters: number }
  | { type: "step"; step: number; loss: number; textLoss: number; imageLoss: number; lr: number; gradNorm: number; skipped: number; recordsPerSecond: number }
  | { type: "checkpoint"; step: number; dir: string }
  | { type: "done"; step: number; dir: string };

export interface TrainOptions {
  /** Continue from output_dir's latest checkpoint (an error when output_dir has one and this is false). */
  resume?: boolean;
  /** Log the first few skipped records here (default: nothing). */
  warn?: (message: string) => void;
}

interface Example {
  encoded: EncodedRecord;
  understanding: T.Tensor[];
  generation: T.Tensor[];
}

export async function* trainPisces(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const out = recipe.outputDir;
  mkdirSync(out, { recursive: true });
  const checkpoint = latestCheckpoint(out);
  if (checkpoint && !options.resume)
    throw new CheckpointError(`${out} already holds checkpoints (latest ${checkpoint.dir}): pass --resume to continue, or choose another output_dir`);
  const model = PiscesForConditionalGeneration.fromPretrained(recipe.model);
  let optimizer: T.optim.AdamW | null = null;
  try {
    const config = model.config as { textLossWeight: number; imageLossWeight: number };
    if (recipe.textLossWeight !== null) config.textLossWeight = recipe.textLossWeight;
    if (recipe.imageLossWeight !== null) config.imageLossWeight = recipe.imageLossWeight;
    const params = model.parameters();
    const o = recipe.optimizer;
    optimizer = new T.optim.AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, betas: o.betas, eps: o.eps });
    const scheduler =
      recipe.schedule.type === "constant_with_warmup"
        ? T.optim.getConstantScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps })
        : T.optim.getCosineScheduleWithWarmup(optimizer, { numWarmupSteps: recipe.schedule.warmupSteps, numTrainingSteps: recipe.maxSteps });
    let state: TrainerState | null = null;
    if (checkpoint) {
      state = checkpoint.state;
      const weights = T.loadSafetensors(join(checkpoint.dir, "model.safetensors"));
      model.loadStateDict(weights);
      const moments = T.loadSafetensors(join(checkpoint.dir, "optimizer.safetensors"));
      const tensors = new Map(moments.keys().map((k) => [k, moments.get(k)] as const));
      optimizer.loadStateDict({ tensors, scalars: state.optimizerScalars });
      for (const t of tensors.values()) t.dispose();
      for (let i = 0; i < state.schedulerStep; i++) scheduler.step();
    }
    model.train();
    const stream = new RecordStream(recipe.data, recipe.seed, recipe.shuffle, state?.data as DataPosition | undefined);
    let skipped = state?.skipped ?? 0;
    let read = state?.read ?? 0;
    const startStep = state?.step ?? 0;
    const metrics = join(out, "metrics.jsonl");
    trimMetrics(metrics, startStep); // a killed run may have logged steps past its last checkpoint
    const processor = model.processor!;
    const warn = options.warn ?? (() => {});

    const draw = async (): Promise<Example> => {
      for (;;) {
        const { record, source } = stream.next();
        read++;
        const problem = await (async () => {
          if ("bad" in record) return record.bad;
          if (!recipe.tasks.includes((record as PiscesRecord).task)) return null;
          try {
            const encoded = processor.encodeRecord(record as PiscesRecord);
            if ((record as PiscesRecord).task === "generation" && encoded.generationImages.length === 0)
              return `${source}: a generation record needs its image to train`;
            const load = async (p: { preprocess(i: unknown): Promise<{ pixelValues: T.Tensor }> }, images: unknown[]) => {
              const list: T.Tensor[] = [];
              try {
                for (const i of images) list.push((await p.preprocess(i)).pixelValues);
              } catch (e) {
                for (const t of list) t.dispose();
                throw e;
              }
              return list;
            };
            const understanding = await load(processor.siglipProcessor as never, encoded.understandingImages);
            try {
              return { encoded, understanding, generation: await load(processor.genClipProcessor as never, encoded.generationImages) };
            } catch (e) {
              for (const t of understanding) t.dispose();
              throw e;
            }
          } catch (e) {
            return `${source}: ${(e as Error).message}`;
          }
        })();
        if (problem !== null && typeof problem === "object") return problem;
        if (problem === null) {
          read--; // another task's record: not read for this stage
          continue;
        }
        skipped++;
        if (skipped <= 5) warn(`skipped ${problem}`);
        if (read >= 20 && skipped / read > recipe.maxSkippedFraction)
          throw new DataError(`${skipped} of ${read} records were bad (more than max_skipped_fraction ${recipe.maxSkippedFraction}); the last: ${problem}`);
      }
    };

    yield { type: "start", step: startStep, maxSteps: recipe.maxSteps, resumedFrom: checkpoint?.dir ?? null, parameters: model.numParameters() };
    for (let step = startStep + 1; step <= recipe.maxSteps; step++) {
      const t0 = performance.now();
      const lr = optimizer.lr;
      let loss = 0;
      let textLoss = 0;
      let imageLoss = 0;
      for (let micro = 0; micro < recipe.accumulationSteps; micro++) {
        const examples: Example[] = [];
        try {
          for (let i = 0; i < recipe.microBatchSize; i++) examples.push(await draw());
          const values = T.scope(() => {
            const pad = processor.pad(
              examples.map((e) => e.encoded),
              { padding: "right" },
            );
            const und = examples.flatMap((e) => e.understanding);
            const gen = examples.flatMap((e) => e.generation);
            const r = model.forward({
              ...pad,
              understandingPixelValues: und.length ? T.cat(und, 0) : null,
              generationPixelValues: gen.length ? T.cat(gen, 0) : null,
              noiseGenerator: new T.Generator({ seed: recipe.seed * 1_000_003 + step * 1_009 + micro }),
            });
            r.loss.div(recipe.accumulationSteps).backward();
            return [r.loss.item(), r.textLoss.item(), r.imageLoss.item()];
          });
          loss += values[0]! / recipe.accumulationSteps;
          textLoss += values[1]! / recipe.accumulationSteps;
          imageLoss += values[2]! / recipe.accumulationSteps;
        } finally {
          for (const e of examples) for (const t of [...e.understanding, ...e.generation]) t.dispose();
        }
      }
      const gradNorm = recipe.maxGradNorm > 0 ? T.optim.clipGradNorm(params, recipe.maxGradNorm) : T.optim.clipGradNorm(params, Number.POSITIVE_INFINITY);
      optimizer.step();
      scheduler.step();
      model.zeroGrad();
      const event = {
        type: "step" as const,
        step,
        loss,
        textLoss,
        imageLoss,
        lr,
        gradNorm,
        skipped,
        recordsPerSecond: (recipe.globalBatchSize * 1000) / (performance.now() - t0),
      };
      if (step % recipe.logEvery === 0 || step === recipe.maxSteps)
        appendFileSync(metrics, `${JSON.stringify({ step, loss, text_loss: textLoss, image_loss: imageLoss, lr, grad_norm: gradNorm, skipped })}\n`);
      yield event;
      if (step % recipe.saveEvery === 0 || step === recipe.maxSteps) {
        const moments = optimizer.stateDict();
        const dir = saveCheckpoint(
          out,
          {
            model: model.stateDict(),
            optimizer: moments.tensors,
            state: { step, data: stream.position, skipped, read, schedulerStep: step, optimizerScalars: moments.scalars, recipeName: recipe.name },
          },
          recipe.keepLast,
        );
        yield { type: "checkpoint", step, dir };
      }
    }
    const final = join(out, "final");
    model.eval();
    model.savePretrained(final);
    yield { type: "done", step: recipe.maxSteps, dir: final };
  } finally {
    optimizer?.dispose();
    model.dispose();
  }
}
