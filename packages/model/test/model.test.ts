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

describe("fromPretrained with quantize", () => {
  it("names the layer whose width does not fit GGML's blocks, and refuses other dtypes or bits", () => {
    expect(() => PiscesForConditionalGeneration.fromPretrained(join(dir, "model"), { quantize: "int8" })).toThrow(
      /down_proj has 48 input features, not a multiple of 32/,
    );
    expect(() => PiscesForConditionalGeneration.fromPretrained(join(dir, "model"), { quantize: "int2" as never })).toThrow(
      /quantize must be "int8" or "int4", got "int2"/,
    );
    expect(() => PiscesForConditionalGeneration.fromPretrained(join(dir, "model"), { quantize: "int8", dtype: "bfloat16" })).toThrow(/runs in float32/);
  });
});

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

  it("parallel scheduled sampling: p = 1 feeds the first pass's own predictions back (train mode only); the loss targets stay the true vectors", async () => {
    const batch = await model.processor!.call(records);
    const plain = T.noGrad(() => model.forward(batch).loss.item());
    const cfg = model as unknown as { config: { generationScheduledSampling: number } };
    const saved = cfg.config.generationScheduledSampling;
    try {
      cfg.config.generationScheduledSampling = 1;
      expect(T.noGrad(() => model.forward(batch).loss.item())).toBe(plain); // eval mode: the true vectors
      // by hand: predictions of every vector from the true previous ones, then a second pass fed those
      const targets = model.generationTargets(batch.generationPixelValues!);
      const first = T.noGrad(() => model.forward({ ...batch, generationPixelValues: null, generationTargets: targets }));
      const fed = first.imageEmbeddings!; // gen-CLIP space, what the second pass must be fed
      const manual = T.noGrad(() => model.forward({ ...batch, generationPixelValues: null, generationTargets: fed }));
      model.train();
      const got = T.noGrad(() => model.forward({ ...batch, noiseGenerator: new T.Generator({ seed: 3 }) }));
      // the second pass saw the first pass's vectors: the same predictions as the manual second pass
      expect(got.imageEmbeddings!.sub(manual.imageEmbeddings!).abs().max().item()).toBeLessThan(1e-5);
      // and the loss compares them with the true vectors, not with what was fed
      const mse = T.noGrad(() => T.mseLoss(model.normalizeTargets(got.imageEmbeddings!), model.normalizeTargets(targets)).item());
      expect(got.imageLoss.item()).toBeCloseTo(mse, 5);
      expect(got.imageLoss.item()).not.toBeCloseTo(manual.imageLoss.item(), 4);
      expect(got.textLoss.item()).toBeCloseTo(manual.textLoss.item(), 5);
    } finally {
      cfg.config.generationScheduledSampling = saved;
      model.eval();
    }
  });

  it("rollout sampling: p = 1 feeds the model's own free-running rollout (train mode only), left or right padded; the loss targets stay the true vectors", async () => {
    const cfg = model as unknown as { config: { generationRolloutSampling: number } };
    const saved = cfg.config.generationRolloutSampling;
    const caption = (records[1] as { caption: string }).caption;
    try {
      for (const padding of ["right", "left"] as const) {
        const batch = await model.processor!.call(records, { padding });
        const plain = T.noGrad(() => model.forward(batch).loss.item());
        cfg.config.generationRolloutSampling = 1;
        expect(T.noGrad(() => model.forward(batch).loss.item())).toBe(plain); // eval mode: the true vectors
        // by hand: the rollout inference makes, then one pass fed with it
        const rolled = model.generateImageEmbeddings({ captions: [caption], guidanceScale: 1 }).conditional; // gen-CLIP space
        const manual = T.noGrad(() => model.forward({ ...batch, generationPixelValues: null, generationTargets: rolled }));
        const targets = model.generationTargets(batch.generationPixelValues!);
        model.train();
        const got = T.noGrad(() => model.forward({ ...batch, noiseGenerator: new T.Generator({ seed: 5 }) }));
        model.eval();
        expect(got.imageEmbeddings!.sub(manual.imageEmbeddings!).abs().max().item()).toBeLessThan(1e-4); // (a KV cache against one full pass)
        const mse = T.noGrad(() => T.mseLoss(model.normalizeTargets(got.imageEmbeddings!), model.normalizeTargets(targets)).item());
        expect(got.imageLoss.item()).toBeCloseTo(mse, 5);
        expect(got.imageLoss.item()).not.toBeCloseTo(manual.imageLoss.item(), 4);
        cfg.config.generationRolloutSampling = 0;
        model.train();
        const forced = T.noGrad(() => model.forward({ ...batch, noiseGenerator: new T.Generator({ seed: 5 }) }));
        model.eval();
        expect(forced.imageEmbeddings!.sub(got.imageEmbeddings!).abs().max().item()).toBeGreaterThan(1e-3); // p = 0: teacher forcing again
        for (const t of [rolled, targets]) t.dispose();
      }
    } finally {
      cfg.config.generationRolloutSampling = saved;
      model.eval();
    }
  });

  it("generation_input_feedback false: the vectors never see earlier vectors, so the free-running rollout equals teacher forcing", async () => {
    const batch = await model.processor!.call([records[1]!]);
    const cfg = model as unknown as { config: { generationInputFeedback: boolean } };
    try {
      cfg.config.generationInputFeedback = false;
      const targets = model.generationTargets(batch.generationPixelValues!);
      const forced = T.noGrad(() => model.forward({ ...batch, generationPixelValues: null, generationTargets: targets }).imageEmbeddings!);
      const other = T.noGrad(() => model.forward({ ...batch, generationPixelValues: null, generationTargets: targets.mul(-3) }).imageEmbeddings!);
      expect(other.sub(forced).abs().max().item()).toBeLessThan(1e-5); // the inputs carry no vector
      const free = model.generateImageEmbeddings({ captions: [(records[1] as { caption: string }).caption], guidanceScale: 1 }).conditional;
      expect(free.sub(forced).abs().max().item()).toBeLessThan(1e-4); // (a KV cache against one full pass: float rounding only)
      cfg.config.generationInputFeedback = true;
      const fed = model.generateImageEmbeddings({ captions: [(records[1] as { caption: string }).caption], guidanceScale: 1 }).conditional;
      expect(fed.sub(forced).abs().max().item()).toBeGreaterThan(1e-3); // with feedback the rollout differs
      for (const t of [targets, forced, other, free, fed]) t.dispose();
    } finally {
      cfg.config.generationInputFeedback = true;
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

describe("generation_target_normalization", () => {
  it("normalises targets for the loss and teacher forcing, and returns vectors in gen-CLIP space", async () => {
    const { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const work = mkdtempSync(join(tmpdir(), "pisces-norm-"));
    try {
      const folder = join(work, "model");
      cpSync(join(dir, "model"), folder, { recursive: true });
      const config = JSON.parse(readFileSync(join(folder, "config.json"), "utf8"));
      writeFileSync(join(folder, "config.json"), JSON.stringify({ ...config, generation_target_normalization: true }));
      // strict loading: the statistics must be in model.safetensors
      expect(() => PiscesForConditionalGeneration.fromPretrained(folder)).toThrow(/generation_target_mean/);
      const state = T.loadSafetensors(join(dir, "model", "model.safetensors"));
      const tensors = new Map(state.keys().map((k) => [k, state.get(k)] as const));
      tensors.set("generation_target_mean", T.zeros([16]));
      tensors.set("generation_target_std", T.ones([16]));
      T.saveSafetensors(join(folder, "model.safetensors"), tensors);
      const normed = PiscesForConditionalGeneration.fromPretrained(folder);
      try {
        const batch = await normed.processor!.call(records);
        // mean 0, std 1: the same numbers as without normalisation
        const [a, b] = T.noGrad(() => [loss(model.forward(batch)), loss(normed.forward(batch))]);
        expect(b).toEqual(a);
        const g = T.Generator;
        const mean = T.randn([16], { generator: new g({ seed: 1 }) });
        const std = T.rand([16], { generator: new g({ seed: 2 }) }).add(0.5);
        normed.setGenerationTargetStatistics(mean, std);
        const out = T.noGrad(() => normed.forward(batch));
        const targets = normed.generationTargets(batch.generationPixelValues!);
        // imageLoss is the MSE in normalised space; imageEmbeddings come back in gen-CLIP space
        const expected = T.scope(() => out.imageEmbeddings!.sub(mean).div(std).sub(targets.sub(mean).div(std)).pow(2).mean().item());
        expect(out.imageLoss.item()).toBeCloseTo(expected, 5);
        // the first vector comes from the [IMG] position alone: the head's output, denormalised
        const v = normed.generateImageEmbeddings({ captions: ["a red circle"], guidanceScale: 1 }).conditional;
        const plain = model.generateImageEmbeddings({ captions: ["a red circle"], guidanceScale: 1 }).conditional;
        expect(T.scope(() => v.select(1, 0).sub(plain.select(1, 0).mul(std).add(mean)).abs().max().item())).toBeLessThan(1e-5);
        expect(() => normed.setGenerationTargetStatistics(mean, T.zeros([16]))).toThrow(/every std must be > 0/);
        expect(() => model.setGenerationTargetStatistics(mean, std)).toThrow(/generation_target_normalization is off/);
      } finally {
        normed.dispose();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
