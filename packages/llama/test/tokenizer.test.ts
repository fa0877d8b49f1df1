// The tokenizer gives the ids of Python `tokenizers` on a mixed corpus, decodes the same, and the
// chat template renders byte-identical to transformers' apply_chat_template.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { AutoTokenizer, type ChatMessage } from "../src/index.js";
import { referenceFixtures } from "./helpers.js";

interface Reference {
  encodings: { text: string; ids: number[]; ids_no_special: number[]; decoded: string; decoded_skip_special: string }[];
  chats: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string }[];
}

let tok: AutoTokenizer;
let ref: Reference;
beforeAll(() => {
  const dir = referenceFixtures();
  tok = AutoTokenizer.fromPretrained(join(dir, "tokenizer"));
  ref = JSON.parse(readFileSync(join(dir, "tokenizer_reference.json"), "utf8")) as Reference;
});

describe("AutoTokenizer", () => {
  it("encodes a mixed corpus (ASCII, CJK, emoji, special tokens) to the same ids as Python", () => {
    expect(ref.encodings.length).toBeGreaterThanOrEqual(10);
    for (const e of ref.encodings) {
      expect(tok.encode(e.text), e.text).toEqual(e.ids);
      expect(tok.encode(e.text, { addSpecialTokens: false }), e.text).toEqual(e.ids_no_special);
    }
  });

  it("decodes to the same text as Python", () => {
    for (const e of ref.encodings) {
      expect(tok.decode(e.ids), e.text).toBe(e.decoded);
      expect(tok.decode(e.ids, { skipSpecialTokens: true }), e.text).toBe(e.decoded_skip_special);
    }
  });

  it("renders the chat template byte-identical to apply_chat_template", () => {
    for (const c of ref.chats) {
      expect(tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt })).toBe(c.text);
    }
    const ids = tok.applyChatTemplate(ref.chats[0]!.messages, { tokenize: true });
    expect(ids[0]).toBe(tok.tokenToId("<|begin_of_text|>"));
    expect(ids.filter((i) => i === tok.tokenToId("<|begin_of_text|>")).length).toBe(1); // BOS once, from the template
  });

  it("adds Pisces' [IMG] and [/IMG] as special tokens with new ids", () => {
    const t = AutoTokenizer.fromPretrained(join(referenceFixtures(), "tokenizer"));
    const before = t.vocabSize;
    expect(t.addSpecialTokens(["[IMG]", "[/IMG]"])).toBe(2);
    expect(t.addSpecialTokens(["[IMG]"])).toBe(0);
    expect(t.vocabSize).toBe(before + 2);
    const img = t.tokenToId("[IMG]")!;
    const ids = t.encode("a cat[IMG][/IMG]done", { addSpecialTokens: false });
    expect(ids).toContain(img);
    expect(ids).toContain(img + 1);
    expect(t.decode(ids)).toBe("a cat[IMG][/IMG]done");
    expect(t.decode(ids, { skipSpecialTokens: true })).toBe("a catdone");
  });

  it("rejects bad input clearly", () => {
    expect(() => tok.decode([1e9])).toThrow(/token id 1000000000 is out of range/);
    expect(() => tok.encode(5 as unknown as string)).toThrow(/expected a string/);
    expect(() => tok.applyChatTemplate([{ role: "user" } as ChatMessage])).toThrow(/messages must be an array/);
    expect(() => AutoTokenizer.fromPretrained("/nonexistent")).toThrow(/no tokenizer.json/);
  });
});
