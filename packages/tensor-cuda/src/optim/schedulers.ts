// Learning-rate schedules: LambdaLR (torch.optim.lr_scheduler) and the two warm-up schedules of
// transformers' optimization module (constant and cosine), which Pisces training uses.
import type { Optimizer } from "./optimizer.js";

/** Sets each group's lr to `baseLr * lambda(step)`; call `step()` after each `optimizer.step()`. */
export class LambdaLR {
  private readonly baseLrs: number[];
  lastEpoch = 0;
  constructor(
    readonly optimizer: Optimizer<{ lr: number }>,
    readonly lrLambda: (step: number) => number,
  ) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
    this.apply();
  }
  step(): void {
    this.lastEpoch++;
    this.apply();
  }
  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.options.lr);
  }
  private apply(): void {
    const factor = this.lrLambda(this.lastEpoch);
    this.optimizer.paramGroups.forEach((g, i) => {
      g.options.lr = this.baseLrs[i]! * factor;
    });
  }
}

function checkSteps(name: string, warmup: number, total?: number): void {
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`${name}: numWarmupSteps must be a non-negative integer, got ${warmup}`);
  if (total !== undefined && (!Number.isInteger(total) || total < warmup))
    throw new RangeError(`${name}: numTrainingSteps must be an integer >= numWarmupSteps, got ${total}`);
}

/** Linear warm-up from 0 to the base lr over `numWarmupSteps`, then constant. */
export function getConstantScheduleWithWarmup(optimizer: Optimizer<{ lr: number }>, options: { numWarmupSteps: number }): LambdaLR {
  const w = options.numWarmupSteps;
  checkSteps("getConstantScheduleWithWarmup", w);
  return new LambdaLR(optimizer, (step) => (step < w ? step / Math.max(1, w) : 1));
}

/** Linear warm-up, then a half-cosine decay to 0 at `numTrainingSteps`. */
export function getCosineScheduleWithWarmup(
  optimizer: Optimizer<{ lr: number }>,
  options: { numWarmupSteps: number; numTrainingSteps: number; numCycles?: number },
): LambdaLR {
  const { numWarmupSteps: w, numTrainingSteps: total, numCycles = 0.5 } = options;
  checkSteps("getCosineScheduleWithWarmup", w, total);
  return new LambdaLR(optimizer, (step) => {
    if (step < w) return step / Math.max(1, w);
    const progress = (step - w) / Math.max(1, total - w);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  });
}
