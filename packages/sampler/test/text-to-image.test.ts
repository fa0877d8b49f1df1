// textToImage: events, seeds, guidance against the empty caption, chunking, bad input, cancellation.
import { loadImage } from "@pisces/image";
import { toPng } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { settle } from "../../../tools/test-support/memory-contract.js";
import { generateImages, SamplerError, type TextToImageEvent, textToImage } from "../src/index.js";
import { tinyPisces } from "./helpers.js";

const { model } = tinyPisces();
afterAll(() => model.dispose());
const base = { steps: 2, width: 32, height: 32 } as const;

async function collect(gen: AsyncGenerator<TextToImageEvent>): Promise<TextToImageEvent[]> {
  const events: TextToImageEvent[] = [];
  for await (const e of gen) events.push(e);
  return events;
}

describe("textToImage", () => {
  it("yields vector progress, denoise steps, then PNGs of the asked size", async () => {
    const events = await collect(textToImage(model, { ...base, prompts: ["a red circle", "a blue square"], numImagesPerPrompt: 2, seed: 5, batchSize: 3 }));
    const vectors = events.filter((e) => e.stage === "vectors");
    expect(vectors.length).toBe(model.numGenerationVectors); // both prompts fit one chunk of 3: one batched decode
    expect(vectors.at(-1)).toEqual({ stage: "vectors", i: vectors.length, of: vectors.length });
    const denoise = events.filter((e) => e.stage === "denoise");
    expect(denoise.map((e) => (e.stage === "denoise" ? [e.step, e.images] : null))).toEqual([
      [1, [0, 3]],
      [2, [0, 3]],
      [1, [3, 4]],
      [2, [3, 4]],
    ]);
    const done = events.at(-1)!;
    expect(done.stage).toBe("done");
    if (done.stage !== "done") return;
    expect(done.seeds).toEqual([5, 6, 7, 8]);
    expect(done.images.length).toBe(4);
    for (const png of done.images) {
      const img = await loadImage(png);
      expect([img.width, img.height]).toEqual([32, 32]);
    }
  });

  it("guides against the empty caption's vectors: equal to the decoder run by hand", async () => {
    const [png] = await generateImages(model, { ...base, prompts: "a red circle", seed: 11, guidanceScale: 3 });
    const { conditional, unconditional } = model.generateImageEmbeddings({ captions: ["a red circle"], guidanceScale: 3 });
    const noise = T.randn([1, 4, 8, 8], { generator: new T.Generator({ seed: 11 }) });
    const byHand = await model.decoder!.decode(conditional, { uncond: unconditional!, latents: noise, guidanceScale: 3, steps: 2, height: 32, width: 32 });
    expect(Buffer.compare(png!, (await toPng(byHand.images))[0]!)).toBe(0);
    // against zeros (the decoder's default) the image differs: the sampler does not use it
    const zeros = await model.decoder!.decode(conditional, { latents: noise, guidanceScale: 3, steps: 2, height: 32, width: 32 });
    expect(T.scope(() => zeros.images.sub(byHand.images).abs().max().item())).toBeGreaterThan(1e-3);
    for (const t of [conditional, unconditional!, noise, byHand.images, byHand.latents, zeros.images, zeros.latents]) t.dispose();
  });

  it("seeded runs are reproducible and independent of chunking", async () => {
    const a = await generateImages(model, { ...base, prompts: ["a red circle", "a green triangle"], seed: 3, batchSize: 4 });
    const b = await generateImages(model, { ...base, prompts: ["a red circle", "a green triangle"], seed: 3, batchSize: 4 });
    expect(a.map((x) => x.toString("base64"))).toEqual(b.map((x) => x.toString("base64")));
    const c = await generateImages(model, { ...base, prompts: ["a red circle", "a green triangle"], seed: 3, batchSize: 1 });
    // chunks of one prompt run without left padding: the vectors differ by float rounding only
    for (let i = 0; i < 2; i++) {
      const [x, y] = [await loadImage(a[i]!), await loadImage(c[i]!)];
      const worst = Math.max(...x.data.map((v, j) => Math.abs(v - y.data[j]!)));
      expect(worst).toBeLessThanOrEqual(2);
    }
    const other = await generateImages(model, { ...base, prompts: "a red circle", seed: 4 });
    expect(Buffer.compare(other[0]!, a[0]!)).not.toBe(0);
  });

  it("other schedulers by name, and previews", async () => {
    for (const scheduler of ["ddim", "dpm"] as const)
      expect((await generateImages(model, { ...base, prompts: "a circle", seed: 1, scheduler })).length).toBe(1);
    const events = await collect(textToImage(model, { ...base, steps: 3, prompts: "a circle", seed: 1, previewEvery: 1 }));
    const previews = events.filter((e) => e.stage === "denoise" && e.preview);
    expect(previews.length).toBe(2); // not on the last step: the final image follows
  });

  it("bad options are clear errors", async () => {
    const bad = async (o: object, message: RegExp) => {
      await expect(generateImages(model, { ...base, prompts: "a circle", ...o })).rejects.toThrow(message);
    };
    await bad({ guidanceScale: 0 }, /guidanceScale must be a positive number/);
    await bad({ guidanceScale: Number.NaN }, /guidanceScale/);
    await bad({ steps: 0 }, /steps must be a positive integer/);
    await bad({ width: 36 }, /width must be a multiple of 8/);
    await bad({ height: 0 }, /height must be a multiple of 8/);
    await bad({ prompts: [] }, /prompts must be a string or a non-empty list/);
    await bad({ seed: [1, 2] }, /seed lists 2 seeds for 1 images/);
    await bad({ seed: -1 }, /seeds must be non-negative integers/);
    await bad({ scheduler: "heun" }, /scheduler must be "euler", "ddim" or "dpm"/);
    await bad({ numImagesPerPrompt: 1.5 }, /numImagesPerPrompt must be a positive integer/);
    await bad({ prompts: "x ".repeat(400) }, /exceeds the LLM's 256 positions: shorten the caption/);
    await expect(generateImages(model, { ...base, prompts: "a circle" })).resolves.toHaveLength(1); // the model is still usable
    expect(new SamplerError("x").name).toBe("SamplerError");
  });

  it("an abort mid-denoise stops the run and frees every tensor", async () => {
    await generateImages(model, { ...base, prompts: "warm-up", seed: 1 });
    await settle();
    const before = T.memoryStats().liveTensors;
    const controller = new AbortController();
    const run = (async () => {
      for await (const e of textToImage(model, { ...base, steps: 10, prompts: ["a red circle", "a blue square"], seed: 1, signal: controller.signal }))
        if (e.stage === "denoise" && e.step === 3) controller.abort();
    })();
    await expect(run).rejects.toThrow(/aborted/);
    expect(T.memoryStats().liveTensors).toBe(before);
    // an already-aborted signal stops before any work
    await expect(generateImages(model, { ...base, prompts: "x", signal: AbortSignal.abort() })).rejects.toThrow(/aborted/);
    expect(T.memoryStats().liveTensors).toBe(before);
  });

  it("memory stays flat over 200 calls", async () => {
    await generateImages(model, { ...base, steps: 1, prompts: "warm-up", seed: 1 });
    await settle();
    const live = T.memoryStats().liveTensors;
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 200; i++) await generateImages(model, { ...base, steps: 1, prompts: ["a red circle"], seed: i });
    await settle();
    expect(T.memoryStats().liveTensors).toBe(live);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 2 ** 20);
  });
});
