// Training parity with Python PyTorch: the same MLP from the same initial weights, trained 5 steps
// with AdamW and with SGD (momentum, Nesterov, weight decay, gradient clipping), gives the same
// losses and weights. Also the learning-rate schedules. Reference: tools/reference/tensor_cuda_reference.py.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { flat, maxAbsDiff, referenceFixtures } from "./helpers.js";

class Mlp extends T.nn.Module {
  fc1 = new T.nn.Linear(8, 16);
  fc2 = new T.nn.Linear(16, 4);
  forward(x: T.Tensor): T.Tensor {
    return this.fc2.forward(T.gelu(this.fc1.forward(x)));
  }
}

let dir: string;
beforeAll(() => {
  dir = referenceFixtures();
});

function train(makeOptimizer: (params: T.nn.Parameter[]) => T.optim.Optimizer<{ lr: number }>, clip?: number) {
  const init = T.loadSafetensors(join(dir, "mlp_init.safetensors"));
  const model = new Mlp();
  model.loadStateDict({ keys: () => ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], get: (k) => init.get(k) });
  const x = init.get("x");
  const y = init.get("y");
  const optimizer = makeOptimizer(model.parameters());
  const losses: number[] = [];
  for (let i = 0; i < 5; i++) {
    T.scope(() => {
      optimizer.zeroGrad();
      const loss = T.mseLoss(model.forward(x), y);
      loss.backward();
      if (clip !== undefined) T.optim.clipGradNorm(model.parameters(), clip);
      optimizer.step();
      losses.push(loss.item());
    });
  }
  return { model, losses };
}

function compare(model: Mlp, losses: number[], file: string) {
  const ref = T.loadSafetensors(join(dir, file));
  const lossDiff = maxAbsDiff(losses, flat(ref.get("losses")));
  if (process.env.PISCES_VERBOSE) console.log(file, "max loss diff", lossDiff);
  expect(lossDiff).toBeLessThanOrEqual(1e-6);
  for (const [key, p] of model.stateDict()) expect(maxAbsDiff(p, ref.get(key)), key).toBeLessThanOrEqual(1e-6);
}

describe("training matches Python PyTorch", () => {
  it("AdamW: 5 steps give the same losses and weights (1e-6)", () => {
    const { model, losses } = train((p) => new T.optim.AdamW(p, { lr: 1e-2, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 }));
    expect(losses[4]!).toBeLessThan(losses[0]!);
    compare(model, losses, "mlp_adamw.safetensors");
  });

  it("SGD with momentum, Nesterov, weight decay and clipGradNorm: same losses and weights (1e-6)", () => {
    const { model, losses } = train((p) => new T.optim.SGD(p, { lr: 5e-2, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }), 0.5);
    compare(model, losses, "mlp_sgd.safetensors");
  });

  it("learning-rate schedules match LambdaLR with transformers' warm-up lambdas", () => {
    const ref = JSON.parse(readFileSync(join(dir, "schedules.json"), "utf8")) as { cosine: number[]; constant: number[] };
    const p = new T.nn.Parameter(T.zeros([1]));
    const run = (make: (o: T.optim.SGD) => T.optim.LambdaLR, n: number) => {
      const opt = new T.optim.SGD([p], { lr: 0.1 });
      const sched = make(opt);
      const lrs: number[] = [];
      for (let i = 0; i < n; i++) {
        lrs.push(opt.lr);
        sched.step();
      }
      return lrs;
    };
    const cosine = run((o) => T.optim.getCosineScheduleWithWarmup(o, { numWarmupSteps: 3, numTrainingSteps: 10 }), 12);
    const constant = run((o) => T.optim.getConstantScheduleWithWarmup(o, { numWarmupSteps: 4 }), 8);
    expect(maxAbsDiff(cosine, ref.cosine)).toBeLessThanOrEqual(1e-15);
    expect(maxAbsDiff(constant, ref.constant)).toBeLessThanOrEqual(1e-15);
  });
});
