// The README's example, compiled by `pnpm typecheck` and run by test/readme.test.ts.
import { AutoTokenizer, LlamaForCausalLM } from "@pisces/llama";
import type * as T from "@pisces/tensor-cuda";

export async function chat(dir: string, question: string, device: T.Device = "cuda"): Promise<string> {
  // dir: config.json, model*.safetensors, tokenizer.json (e.g. Llama-3.2-1B-Instruct)
  const tokenizer = AutoTokenizer.fromPretrained(dir);
  const model = LlamaForCausalLM.fromPretrained(dir, { device }); // bf16 on CUDA, fp32 on CPU
  const prompt = tokenizer.applyChatTemplate([{ role: "user", content: question }], { addGenerationPrompt: true, tokenize: true });
  let answer = "";
  for await (const chunk of model.generateStream({ inputIds: [prompt], maxNewTokens: 128, doSample: true, temperature: 0.7, topP: 0.9, seed: 1, tokenizer })) {
    process.stdout.write(chunk.text[0]!);
    answer += chunk.text[0];
  }
  model.dispose();
  return answer;
}
