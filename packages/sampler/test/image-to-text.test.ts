// imageToText: captions equal to the model's own greedy decode (itself equal to the PyTorch
// reference), questions through the chat template, chats, streaming, stop strings, bad input,
// cancellation and flat memory.
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { settle } from "../../../tools/test-support/memory-contract.js";
import { describeImages, type ImageToTextEvent, imageToText } from "../src/index.js";
import { tinyPisces } from "./helpers.js";

const { model, dir, images } = tinyPisces();
afterAll(() => model.dispose());
const reference = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8")) as { caption_tokens: number[] };

describe("imageToText", () => {
  it("captions with the paper's prompt: the reference's greedy tokens", async () => {
    let last: ImageToTextEvent | undefined;
    const pieces: string[] = [];
    for await (const e of imageToText(model, { images: images[0]!, maxNewTokens: reference.caption_tokens.length })) {
      if (e.stage === "text") pieces.push(e.text[0]!);
      last = e;
    }
    expect(last?.stage).toBe("done");
    if (last?.stage !== "done") return;
    expect(last.tokens[0]).toEqual(reference.caption_tokens.slice(0, last.tokens[0]!.length));
    // the stream holds back bytes of an incomplete character (random weights emit stray byte tokens)
    expect(last.texts[0]!.startsWith(pieces.join(""))).toBe(true);
    expect(last.texts[0]).toBe(model.processor!.tokenizer.decode(last.tokens[0]!, { skipSpecialTokens: true }));
  });

  it("batches images with left padding: each row equals the image alone", async () => {
    const alone = await Promise.all(
      images.slice(0, 3).map((image) => describeImages(model, { images: image, prompt: "What colour is the circle?", maxNewTokens: 6 })),
    );
    const batched = await describeImages(model, { images: images.slice(0, 3), prompt: "What colour is the circle?", maxNewTokens: 6 });
    expect(batched).toEqual(alone.map((x) => x[0]));
  });

  it("chats with images in the user turns, sampling with a seed", async () => {
    const messages = [
      { role: "user", content: [{ type: "image" as const }, { type: "text" as const, text: "What is this?" }] },
      { role: "assistant", content: "a red circle" },
      { role: "user", content: [{ type: "text" as const, text: "And this?" }, { type: "image" as const }] },
    ];
    const a = await describeImages(model, { messages, images: [images[0]!, images[1]!], maxNewTokens: 5, doSample: true, temperature: 0.8, seed: 7 });
    const b = await describeImages(model, { messages, images: [images[0]!, images[1]!], maxNewTokens: 5, doSample: true, temperature: 0.8, seed: 7 });
    expect(a).toEqual(b);
    expect(a.length).toBe(1);
    await expect(describeImages(model, { messages, images: [images[0]!], maxNewTokens: 2 })).rejects.toThrow(/place 2 image\(s\) but 1 were given/);
  });

  it("stop strings end the text before them", async () => {
    const full = (await describeImages(model, { images: images[0]!, maxNewTokens: 8 }))[0]!;
    const stop = full.slice(Math.max(1, Math.floor(full.length / 2)), Math.max(2, Math.floor(full.length / 2) + 1));
    const cut = (await describeImages(model, { images: images[0]!, maxNewTokens: 8, stopStrings: [stop] }))[0]!;
    expect(cut).toBe(full.slice(0, full.indexOf(stop)));
  });

  it("bad input: missing, unreadable and absent images, conflicting options", async () => {
    await expect(describeImages(model, { images: join(tmpdir(), "no-such-image.png") })).rejects.toThrow(/image 0: .*no-such-image/);
    const corrupt = join(tmpdir(), `pisces-corrupt-${process.pid}.png`);
    writeFileSync(corrupt, Buffer.from("\x89PNG\r\n\x1a\n not really"));
    await expect(describeImages(model, { images: corrupt })).rejects.toThrow(/image 0: /);
    await expect(describeImages(model, {})).rejects.toThrow(/needs at least one image/);
    await expect(describeImages(model, { images: images[0]!, prompt: "x", messages: [] })).rejects.toThrow(/either prompt or messages/);
    await expect(describeImages(model, { images: images[0]!, maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be a positive integer/);
    await expect(describeImages(model, { images: images[0]!, maxNewTokens: 10_000 })).rejects.toThrow(/exceeds the model's 256 positions/);
    await expect(describeImages(model, { images: images[0]!, prompt: "a [IMG] b" })).rejects.toThrow(/must not contain \[IMG\]/);
  });

  it("an abort stops between tokens and frees every tensor; memory stays flat over 200 calls", async () => {
    await describeImages(model, { images: images[0]!, maxNewTokens: 4 });
    await settle();
    const live = T.memoryStats().liveTensors;
    const controller = new AbortController();
    const run = (async () => {
      for await (const e of imageToText(model, { images: images[0]!, maxNewTokens: 50, signal: controller.signal })) if (e.stage === "text") controller.abort();
    })();
    await expect(run).rejects.toThrow(/aborted/);
    expect(T.memoryStats().liveTensors).toBe(live);
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await describeImages(model, { images: images[i % 4]!, maxNewTokens: 4 });
    await settle();
    expect(T.memoryStats().liveTensors).toBe(live);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 2 ** 20);
  });
});
