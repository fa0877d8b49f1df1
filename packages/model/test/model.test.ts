// Behaviour beyond the reference: padding sides agree, training options, cached features, text after images.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { PiscesForConditionalGeneration, type PiscesRecord } from "../src/index.js";
import { referenceDir } from "./helpers.js";

const dir = referenceDir("tied_k2");
const model = PiscesForConditionalGeneration.fromPretrained(join(dir, "model"));
afterAll(() => model.dispose());
const records: PiscesRecord[] = [
  { task: "captioning", image: join(dir, "image0.png"), caption: "a red circle" },
  { task: "generation", image: join(dir, "image1.png"), caption: "a blue square to the left of a green triangle" },
  {
    task: "chat",
    messages: [
      { role: "user", content: [{ type: "image" }, { type: "text", text: "What colour is the circle?" }] },
      { role: "assistant", content: "red" },
    ],
    images: [join(dir, "image2.png")],
  },
];
const loss = (o: { textLoss: T.Tensor; imageLoss: T.Tensor }) => [o.textLoss.item(), o.imageLoss.item()];

describe("PiscesForConditionalGeneration", () => {
  it("left- and right-padded batches give the same losses", async () => {
    const right = await model.processor!.call(records);
    const left = await model.processor!.call(records, { padding: "left" });
    const [a, b] = T.noGrad(() => [loss(model.forward(right)), loss(model.forward(left))]);
    expect(a[0]).toBeCloseTo(b[0]!, 4);
    expect(a[1]).toBeCloseTo(b[1]!, 4);
  });

  it("a chat record labels only the assistant's turn", async () => {
    const e = model.processor!.encodeRecord(records[2]!);
    const labelled = e.labels.filter((l) => l !== -100);
    const tok = model.processor!.tokenizer;
    expect(tok.decode(labelled)).toBe("red<|eot_id|>");
    expect(e.understanding.filter(Boolean).length).toBe(model.numUnderstandingTokens);
  });

  it("cached encoder outputs give the losses pixel values give", async () => {
    const batch = await model.processor!.call(records);
    const features = model.understandingFeatures(batch.understandingPixelValues!);
    const targets = model.generationTargets(batch.generationPixelValues!);
    const [a, b] = T.noGrad(() => [
      loss(model.forward(batch)),
      loss(
        model.forward({ ...batch, understandingPixelValues: null, generationPixelValues: null, understandingFeatures: features, generationTargets: targets }),
      ),
    ]);
    expect(b).toEqual(a);
    expect(targets.shape).toEqual([1, model.numGenerationVectors, 16]);
  });

  it("training options: teacher-forcing noise (train mode only, seeded), the cosine term", async () => {
    const batch = await model.processor!.call(records);
    const plain = T.noGrad(() => model.forward(batch).loss.item());
    const noisy = model as unknown as { config: { generationInputNoiseStd: number; imageCosineLossWeight: number } };
    const saved = { ...noisy.config };
    try {
      noisy.config.generationInputNoiseStd = 0.5;
      expect(T.noGrad(() => model.forward(batch).loss.item())).toBe(plain); // eval mode: no noise
      model.train();
      const run = (seed: number) => T.noGrad(() => model.forward({ ...batch, noiseGenerator: new T.Generator({ seed }) }).loss.item());
      expect(run(1)).toBe(run(1));
      expect(run(1)).not.toBe(plain);
      model.eval();
      noisy.config.generationInputNoiseStd = 0;
      noisy.config.imageCosineLossWeight = 0.5;
      const out = T.noGrad(() => model.forward(batch));
      expect(out.loss.item()).toBeCloseTo(plain + 0.5 * out.imageCosineLoss.item(), 5);
    } finally {
      Object.assign(noisy.config, saved);
      model.eval();
    }
  });

  it("a batch without generation samples has imageLoss 0; one without labels has textLoss 0", async () => {
    const und = await model.processor!.call([records[0]!]);
    const out = T.noGrad(() => model.forward(und));
    expect(out.imageLoss.item()).toBe(0);
    expect(out.imageEmbeddings).toBeNull();
    const gen = await model.processor!.call([records[1]!]);
    const noLabels = T.noGrad(() => model.forward({ ...gen, labels: T.fullLike(gen.labels, -100) }));
    expect(noLabels.textLoss.item()).toBe(0);
    expect(noLabels.imageEmbeddings!.shape).toEqual([1, model.numGenerationVectors, 16]);
  });

  it("guidance 1 decodes the captions only", () => {
    const { conditional, unconditional } = model.generateImageEmbeddings({ captions: ["a red circle"], guidanceScale: 1 });
    expect(unconditional).toBeNull();
    const withCfg = model.generateImageEmbeddings({ captions: ["a red circle"] });
    expect(T.scope(() => conditional.sub(withCfg.conditional).abs().max().item())).toBeLessThan(1e-5); // padding does not change a row
  });
});
