// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import * as T from "@pisces/tensor-cuda";

export function trainSteps(device: T.Device = "cuda", steps = 3): number[] {
  const x = T.randn([64, 1024], { device, dtype: "bfloat16" });
  const layer = new T.nn.Linear(1024, 1024).to({ device, dtype: "bfloat16" });
  const opt = new T.optim.AdamW(layer.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++)
    T.scope(() => {
      // frees every intermediate tensor at the end
      const loss = T.gelu(layer.forward(x)).float().pow(2).mean();
      opt.zeroGrad();
      loss.backward();
      opt.step();
      losses.push(loss.item());
    });
  return losses;
}
