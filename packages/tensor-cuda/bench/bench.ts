// `pnpm bench` for @pisces/tensor-cuda: per-op overhead, an MLP training step and a large matmul,
// timed here and in Python PyTorch (tools/reference/tensor_cuda_bench.py) in the same run, same machine, same threads.
// Prints a table and writes bench/RESULTS.md. Ratio = ours / PyTorch time (below 1.0: we are faster).
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "../src/index.js";
import { bestTime } from "../../../tools/bench/timing.js";

const here = dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
T.setNumThreads(threads);

// (a) per-op overhead: 100k adds of a 4-element tensor, each result disposed.
const x = T.ones([4]);
const adds = () => {
  for (let i = 0; i < 100_000; i++) x.add(x).dispose();
};
adds();

// (b) one training step of a 2-layer MLP (batch 64, width 1024) with AdamW.
class Mlp extends T.nn.Module {
  fc1 = new T.nn.Linear(1024, 1024);
  fc2 = new T.nn.Linear(1024, 1024);
  forward(input: T.Tensor): T.Tensor {
    return this.fc2.forward(T.gelu(this.fc1.forward(input)));
  }
}
T.manualSeed(0);
const model = new Mlp();
const opt = new T.optim.AdamW(model.parameters(), { lr: 1e-3 });
const inp = T.randn([64, 1024]);
const target = T.randn([64, 1024]);
const trainSteps = (n: number) => () => {
  for (let i = 0; i < n; i++)
    T.scope(() => {
      opt.zeroGrad();
      T.mseLoss(model.forward(inp), target).backward();
      opt.step();
    });
};
trainSteps(5)();

// (c) 2048 x 2048 float32 matmul.
const a = T.randn([2048, 2048]);
const b = T.randn([2048, 2048]);
const matmuls = (n: number) => () => {
  for (let i = 0; i < n; i++) a.matmul(b).dispose();
};
matmuls(2)();

// Three rounds, alternating with the Python process, keeping each side's best: load from other
// processes on a shared machine then hits both sides alike.
type Timings = { small_add: number; train_step: number; matmul: number };
const ours: Timings = { small_add: Infinity, train_step: Infinity, matmul: Infinity };
const theirs: Timings = { small_add: Infinity, train_step: Infinity, matmul: Infinity };
let torchVersion = "";
for (let round = 0; round < 3; round++) {
  ours.small_add = Math.min(ours.small_add, bestTime(adds, 5) / 100_000);
  ours.train_step = Math.min(ours.train_step, bestTime(trainSteps(20), 5) / 20);
  ours.matmul = Math.min(ours.matmul, bestTime(matmuls(5), 5) / 5);
  const py = JSON.parse(
    execFileSync(process.env.PYTHON ?? "python3", [join(here, "..", "..", "..", "tools", "reference", "tensor_cuda_bench.py"), String(threads)], {
      encoding: "utf8",
    }),
  ) as Timings & {
    torch: string;
  };
  torchVersion = py.torch;
  for (const k of ["small_add", "train_step", "matmul"] as const) theirs[k] = Math.min(theirs[k], py[k]);
}
const py = { torch: torchVersion, ...theirs };
const [smallAdd, trainStep, matmul] = [ours.small_add, ours.train_step, ours.matmul];

const fmt = (s: number) => (s < 1e-3 ? `${(s * 1e6).toFixed(2)} µs` : `${(s * 1e3).toFixed(2)} ms`);
const rows: [string, number, number, string][] = [
  ["(a) add of 4 floats, per op (100k ops)", smallAdd, py.small_add, "<= 1.0"],
  ["(b) MLP training step, batch 64, width 1024, AdamW", trainStep, py.train_step, "<= 1.0"],
  ["(c) matmul 2048x2048 float32", matmul, py.matmul, "<= 1.05"],
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [
  `| benchmark | @pisces/tensor-cuda | PyTorch ${py.torch} | ratio (ours / PyTorch) | goal |`,
  "|---|---|---|---|---|",
  ...rows.map(([name, ours, theirs, goal]) => `| ${name} | ${fmt(ours)} | ${fmt(theirs)} | ${(ours / theirs).toFixed(2)} | ${goal} |`),
].join("\n");
console.log(`\nMachine: ${machine}\nlibtorch ${T.libtorchVersion()}, Node ${process.version}\n\n${table}\n`);
if (!process.env.BENCH_NO_WRITE) {
  writeFileSync(
    join(here, "RESULTS.md"),
    `# @pisces/tensor-cuda benchmark\n\nWritten by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}.\n` +
      `Machine: ${machine}. libtorch ${T.libtorchVersion()} (CPU build), Node ${process.version}, Python PyTorch ${py.torch}.\n` +
      "Times are the best of 15 runs per side (3 rounds alternating with the Python process); both sides measured in the same run.\n\n" +
      `${table}\n`,
  );
}
