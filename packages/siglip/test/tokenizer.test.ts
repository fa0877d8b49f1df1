// SiglipTokenizer against transformers' SiglipTokenizer (a SentencePiece unigram model trained by
// tools/reference/siglip_text_reference.py), and zero-shot classification end to end: image file
// and label strings in, logits out, against transformers' SiglipProcessor + SiglipModel.
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { siglipTextFixtures } from "../../../tools/test-support/vision-fixtures.js";
import { parseSentencePieceModel, SiglipModel, SiglipProcessor, SiglipTokenizer } from "../src/index.js";
import { maxAbsDiff } from "./helpers.js";

let dir: string;
let ref: { corpus: string[]; ids: number[][]; padded: number[][]; tokens: string[][]; vocab_size: number };
beforeAll(() => {
  dir = siglipTextFixtures();
  ref = JSON.parse(readFileSync(join(dir, "tokenizer", "reference.json"), "utf8"));
});

describe("SiglipTokenizer", () => {
  it("gives transformers' ids and pieces for a mixed corpus (case, punctuation, whitespace, CJK, emoji, unknown characters, special tokens)", () => {
    const tok = SiglipTokenizer.fromPretrained(join(dir, "tokenizer"));
    expect(tok.vocabSize).toBe(ref.vocab_size);
    ref.corpus.forEach((text, i) => {
      expect(tok.encode(text), JSON.stringify(text)).toEqual(ref.ids[i]);
      // pieces too, except that an unknown character comes back as "<unk>" (transformers: the character)
      const unk = new Set(ref.ids[i]!.flatMap((id, j) => (id === tok.unkTokenId ? [j] : [])));
      expect(
        tok.tokenize(text).filter((_, j) => !unk.has(j)),
        JSON.stringify(text),
      ).toEqual(ref.tokens[i]!.filter((_, j) => !unk.has(j)));
    });
  });

  it("pads to max_length and truncates keeping the EOS, as transformers", () => {
    const tok = SiglipTokenizer.fromPretrained(join(dir, "tokenizer"));
    expect(tok.batchEncode(ref.corpus, { maxLength: 16 })).toEqual(ref.padded);
    expect(tok.modelMaxLength).toBe(16);
    const longest = tok.batchEncode(["a cat", "a photo of a dog"], { padding: "longest" });
    expect(new Set(longest.map((r) => r.length)).size).toBe(1);
    expect(() => tok.batchEncode(["x"], { maxLength: 0 })).toThrow(/maxLength must be a positive integer/);
  });

  it("gives clear errors for a missing or malformed spiece.model", () => {
    const empty = mkdtempSync(join(tmpdir(), "pisces-siglip-tok-"));
    expect(() => SiglipTokenizer.fromPretrained(empty)).toThrow(/no spiece.model/);
    const model = readFileSync(join(dir, "tokenizer", "spiece.model"));
    expect(() => parseSentencePieceModel(model.subarray(0, 100))).toThrow(/truncated protobuf/);
    writeFileSync(join(empty, "spiece.model"), Buffer.from("not a protobuf at all"));
    expect(() => SiglipTokenizer.fromPretrained(empty)).toThrow(/spiece.model/);
  });
});

describe("zero-shot classification", () => {
  it("image file + labels -> logits equal transformers' SiglipProcessor + SiglipModel", async () => {
    const zs = join(dir, "zero_shot");
    const labels = JSON.parse(readFileSync(join(zs, "labels.json"), "utf8")) as string[];
    const expected = T.loadSafetensors(join(zs, "reference.safetensors"));
    const processor = SiglipProcessor.fromPretrained(zs);
    const model = SiglipModel.fromPretrained(zs);
    const images = join(dir, "..", "images", "astronaut.png");
    const inputs = await processor.call({ text: labels, images });
    T.noGrad(() =>
      T.scope(() => {
        expect(inputs.inputIds!.toArray()).toEqual(expected.get("input_ids").toArray());
        expect(maxAbsDiff(inputs.pixelValues!, expected.get("pixel_values"))).toBe(0);
        expect(inputs.attentionMask!.toArray()).toEqual(expected.get("attention_mask").toArray());
        const { logitsPerImage } = model.forward({ inputIds: inputs.inputIds!, attentionMask: inputs.attentionMask, pixelValues: inputs.pixelValues! });
        expect(logitsPerImage.shape).toEqual([1, labels.length]);
        expect(maxAbsDiff(logitsPerImage, expected.get("logits_per_image"))).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(logitsPerImage.sigmoid(), expected.get("probs"))).toBeLessThanOrEqual(1e-5);
      }),
    );
    inputs.inputIds!.dispose();
    inputs.attentionMask!.dispose();
    inputs.pixelValues!.dispose();
    model.dispose();
  });
});
