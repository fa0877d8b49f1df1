// Streaming: text pieces are UTF-8 safe across token boundaries; stop strings end a row.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type Decoder, LlamaForCausalLM } from "../src/index.js";
import { referenceFixtures } from "./helpers.js";

const load = () => LlamaForCausalLM.fromPretrained(join(referenceFixtures(), "gqa", "model"));

/** A decoder whose i-th token is the i-th byte of repeated 🐟 (F0 9F 90 9F): one fish per 4 tokens. */
const fishBytes: Decoder = {
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids.map((_, i) => [0xf0, 0x9f, 0x90, 0x9f][i % 4]!))),
};
/** A decoder that spells token ids as letters. */
const letters: Decoder = { decode: (ids) => ids.map((id) => String.fromCharCode(97 + (id % 26))).join("") };

describe("generateStream", () => {
  it("never splits a multi-byte character across chunks", async () => {
    const model = load();
    const pieces: string[] = [];
    for await (const chunk of model.generateStream({ inputIds: [[5, 6, 7]], maxNewTokens: 10, eosTokenId: null, tokenizer: fishBytes })) {
      expect(chunk.tokens.length).toBe(1);
      pieces.push(chunk.text[0]!);
    }
    expect(pieces).toEqual(["", "", "", "🐟", "", "", "", "🐟", "", ""]);
    expect(pieces.join("")).not.toContain("\uFFFD");
    model.dispose();
  });

  it("streams the same tokens as generate()", async () => {
    const model = load();
    const tokens: number[] = [];
    for await (const chunk of model.generateStream({ inputIds: [[9, 8, 7, 6]], maxNewTokens: 12, eosTokenId: null })) tokens.push(chunk.tokens[0]!);
    const full = model.generate({ inputIds: [[9, 8, 7, 6]], maxNewTokens: 12, eosTokenId: null }).tolist() as number[][];
    expect(tokens).toEqual(full[0]!.slice(4));
    model.dispose();
  });

  it("stops a row when its text contains a stop string", () => {
    const model = load();
    const free = (model.generate({ inputIds: [[9, 8, 7, 6]], maxNewTokens: 12, eosTokenId: null }).tolist() as number[][])[0]!.slice(4);
    const stop = letters.decode(free.slice(3, 5)); // the text of generated tokens 4 and 5
    const stopped = (
      model.generate({ inputIds: [[9, 8, 7, 6]], maxNewTokens: 12, eosTokenId: null, stopStrings: [stop], tokenizer: letters }).tolist() as number[][]
    )[0]!.slice(4);
    const text = letters.decode(stopped);
    expect(text.includes(stop)).toBe(true);
    expect(text.slice(0, -1).includes(stop)).toBe(false); // it stopped at the first token completing it
    expect(stopped).toEqual(free.slice(0, stopped.length));
    model.dispose();
  });
});
