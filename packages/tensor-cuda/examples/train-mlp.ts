// A first look at @pisces/tensor-cuda: fit y = sin(3x) with a small MLP and AdamW, on CUDA when
// available, then save and reload the weights as safetensors. Run: pnpm demo
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "../src/index.js";

const device = T.isCudaAvailable() ? "cuda" : "cpu";
console.log(`libtorch ${T.libtorchVersion()} on ${device}`);

class Mlp extends T.nn.Module {
  fc1 = new T.nn.Linear(1, 64);
  fc2 = new T.nn.Linear(64, 64);
  fc3 = new T.nn.Linear(64, 1);
  forward(x: T.Tensor): T.Tensor {
    return this.fc3.forward(T.silu(this.fc2.forward(T.silu(this.fc1.forward(x)))));
  }
}

T.manualSeed(0);
const model = new Mlp().to(device);
const optimizer = new T.optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0 });
const schedule = T.optim.getCosineScheduleWithWarmup(optimizer, { numWarmupSteps: 50, numTrainingSteps: 1500 });
const x = T.linspace(-2, 2, 256, { device }).unsqueeze(1); // (256, 1)
const y = x.mul(3).sin();

const t0 = performance.now();
for (let step = 0; step <= 1500; step++) {
  T.scope(() => {
    optimizer.zeroGrad();
    const loss = T.mseLoss(model.forward(x), y);
    loss.backward();
    optimizer.step();
    schedule.step();
    if (step % 300 === 0) console.log(`step ${String(step).padStart(4)}  loss ${loss.item().toExponential(3)}  lr ${optimizer.lr.toExponential(2)}`);
  });
}
console.log(`1500 steps in ${((performance.now() - t0) / 1000).toFixed(2)} s; live tensors: ${T.memoryStats().liveTensors}`);

const path = join(mkdtempSync(join(tmpdir(), "pisces-demo-")), "mlp.safetensors");
T.saveSafetensors(path, model.stateDict(), { example: "sin" });
const copy = new Mlp().to(device);
copy.loadStateDict(T.loadSafetensors(path));
const same = T.noGrad(() => T.scope(() => copy.forward(x).equal(model.forward(x))));
console.log(`saved to ${path} and reloaded: ${same ? "identical outputs" : "OUTPUTS DIFFER"}`);
