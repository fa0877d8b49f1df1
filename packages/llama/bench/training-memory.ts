// `pnpm bench:training-memory` for @pisces/llama: what gradient checkpointing saves. One training
// step (forward + backward) of a SmolLM2-135M-shaped model (random weights, shared with
// transformers) at batch 2 x 512 tokens, plain and with `gradientCheckpointingEnable()`, against
// transformers' `gradient_checkpointing_enable()` in the same run. Every measurement is a fresh
// process: the step's time and its peak resident memory above the memory at its start (Linux
// VmHWM, reset through /proc/self/clear_refs after a warm-up step that allocated the gradients).
// Writes bench/TRAINING_MEMORY.md.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { LlamaForCausalLM } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const modelDir = process.env.BENCH_MODEL_DIR ?? join(tmpdir(), "pisces-bench-smollm2-135m");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const [batch, sequence] = [2, 512];
type Mode = "plain" | "checkpointing";
interface Measure {
  step_s: number;
  peak_above_start_bytes: number;
  loss: number;
}

const status = (key: string) =>
  Number(
    /(\d+) kB/.exec(
      readFileSync("/proc/self/status", "utf8")
        .split("\n")
        .find((l) => l.startsWith(`${key}:`))!,
    )![1],
  ) * 1024;

if (process.argv[2] === "--child") {
  const mode = process.argv[3] as Mode;
  T.setNumThreads(threads);
  const model = LlamaForCausalLM.fromPretrained(modelDir).train();
  if (mode === "checkpointing") model.gradientCheckpointingEnable();
  const g = new T.Generator({ seed: 0 });
  const ids = T.keep(T.randint(3, 49152, [batch, sequence], { generator: g }));
  const step = () =>
    T.scope(() => {
      const loss = model.forward({ inputIds: ids, labels: ids }).loss!;
      loss.backward();
      return loss.item();
    });
  const loss = step(); // warm-up: allocates the gradients
  writeFileSync("/proc/self/clear_refs", "5");
  const start = status("VmRSS");
  const t0 = performance.now();
  step();
  const seconds = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ step_s: seconds, peak_above_start_bytes: status("VmHWM") - start, loss }));
  process.exit(0);
}

const py = process.env.PYTHON ?? "python3";
const python = (mode: Mode) =>
  JSON.parse(
    execFileSync(
      py,
      [join(here, "..", "..", "..", "tools", "reference", "llama_train_memory.py"), modelDir, String(threads), String(batch), String(sequence), mode],
      {
        encoding: "utf8",
      },
    )
      .trim()
      .split("\n")
      .pop()!,
  ) as Measure & { torch: string; transformers: string };
const ours = (mode: Mode) =>
  JSON.parse(
    execFileSync(process.execPath, ["--import", "tsx", "--conditions=@pisces/source", fileURLToPath(import.meta.url), "--child", mode], { encoding: "utf8" })
      .trim()
      .split("\n")
      .pop()!,
  ) as Measure;

const results: Record<string, Record<Mode, Measure>> = { ours: {} as Record<Mode, Measure>, theirs: {} as Record<Mode, Measure> };
let version = "";
for (const mode of ["plain", "checkpointing"] as const) {
  const p = python(mode); // first: it makes the model folder if it is missing
  version = `transformers ${p.transformers}, PyTorch ${p.torch}`;
  results.theirs![mode] = p;
  results.ours![mode] = ours(mode);
  console.error(`${mode}: ours ${JSON.stringify(results.ours![mode])} theirs ${JSON.stringify(p)}`);
}
const mb = (b: number) => (b / 2 ** 20).toFixed(0);
const o = results.ours!;
const t = results.theirs!;
const rows = [
  `| step time, plain (s) | ${o.plain.step_s.toFixed(2)} | ${t.plain.step_s.toFixed(2)} | ${(t.plain.step_s / o.plain.step_s).toFixed(2)} (>1: ours faster) |`,
  `| step time, checkpointing (s) | ${o.checkpointing.step_s.toFixed(2)} | ${t.checkpointing.step_s.toFixed(2)} | ${(t.checkpointing.step_s / o.checkpointing.step_s).toFixed(2)} (>1: ours faster) |`,
  `| step peak above its start, plain (MiB) | ${mb(o.plain.peak_above_start_bytes)} | ${mb(t.plain.peak_above_start_bytes)} | ${(o.plain.peak_above_start_bytes / t.plain.peak_above_start_bytes).toFixed(2)} (<1: ours smaller) |`,
  `| step peak above its start, checkpointing (MiB) | ${mb(o.checkpointing.peak_above_start_bytes)} | ${mb(t.checkpointing.peak_above_start_bytes)} | ${(o.checkpointing.peak_above_start_bytes / t.checkpointing.peak_above_start_bytes).toFixed(2)} (<1: ours smaller) |`,
  `| checkpointing / plain: time | ${(o.checkpointing.step_s / o.plain.step_s).toFixed(2)} | ${(t.checkpointing.step_s / t.plain.step_s).toFixed(2)} | |`,
  `| checkpointing / plain: peak memory | ${(o.checkpointing.peak_above_start_bytes / o.plain.peak_above_start_bytes).toFixed(2)} | ${(t.checkpointing.peak_above_start_bytes / t.plain.peak_above_start_bytes).toFixed(2)} | |`,
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [`| SmolLM2-135M shape, batch ${batch} x ${sequence}, float32, CPU | @pisces/llama | ${version} | ratio |`, "|---|---|---|---|", ...rows].join(
  "\n",
);
console.log(`\nMachine: ${machine}\n\n${table}\n`);
if (!process.env.BENCH_NO_WRITE)
  writeFileSync(
    join(here, "TRAINING_MEMORY.md"),
    `# @pisces/llama: gradient checkpointing\n\nWritten by \`pnpm bench:training-memory\` on ${new Date().toISOString().slice(0, 10)}.\nMachine: ${machine}. libtorch ${T.libtorchVersion()}, Node ${process.version}.\n` +
      "One training step (forward + backward, loss over every position) of a SmolLM2-135M-shaped model with random weights, each measurement in a fresh process, once. " +
      "Peak memory: the step's peak resident set above the resident set at its start (after a warm-up step allocated the gradients), so it counts the activations the backward keeps and the backward's own buffers, not the weights or gradients. " +
      "transformers runs sdpa attention and non-reentrant checkpointing.\n\n" +
      `${table}\n`,
  );
