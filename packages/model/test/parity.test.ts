// Pisces against its PyTorch reference (tools/reference/pisces_reference.py, on transformers and
// diffusers) on tiny random folders: the processor's batch, losses, gradients, generated vectors,
// greedy caption and a guided decode; a folder written by savePretrained loads in both.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PiscesForConditionalGeneration, type PiscesRecord } from "../src/index.js";
import { CONFIGS, maxAbsDiff, maxRelDiff, python, referenceDir, referenceScript } from "./helpers.js";

const BATCH_KEYS = ["inputIds", "labels", "attentionMask", "understandingMask", "generationMask"] as const;
const PY_KEYS = {
  inputIds: "input_ids",
  labels: "labels",
  attentionMask: "attention_mask",
  understandingMask: "understanding_mask",
  generationMask: "generation_mask",
};

describe.each(CONFIGS)("Pisces %s against the PyTorch reference", (name) => {
  let dir: string;
  let model: PiscesForConditionalGeneration;
  let ref: T.SafetensorsReader;
  let info: { records: PiscesRecord[]; vector_captions: string[]; caption_tokens: number[]; guidance: number; steps: number; height: number; width: number };
  beforeAll(() => {
    dir = referenceDir(name);
    model = PiscesForConditionalGeneration.fromPretrained(join(dir, "model"));
    ref = T.loadSafetensors(join(dir, "reference.safetensors"));
    info = JSON.parse(readFileSync(join(dir, "reference.json"), "utf8"));
    info.records = info.records.map((r) => ({ ...r, image: join(dir, (r as { image: string }).image) })) as PiscesRecord[];
  });
  afterAll(() => model?.dispose());

  it("the processor builds the reference's batch: ids, labels, masks and pixel values", async () => {
    const batch = await model.processor!.call(info.records);
    for (const key of BATCH_KEYS) expect(batch[key].tolist(), key).toEqual(ref.get(PY_KEYS[key]).tolist());
    expect(maxAbsDiff(batch.understandingPixelValues!, ref.get("understanding_pixel_values"))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(batch.generationPixelValues!, ref.get("generation_pixel_values"))).toBeLessThanOrEqual(1e-6);
  });

  it("losses and gradients of a mixed batch equal the reference (1e-4)", async () => {
    const batch = await model.processor!.call(info.records);
    model.zeroGrad();
    const out = model.forward(batch);
    out.loss.backward();
    for (const [key, pyKey] of [
      ["loss", "loss"],
      ["textLoss", "text_loss"],
      ["imageLoss", "image_loss"],
      ["imageCosineLoss", "cosine"],
    ] as const)
      expect(Math.abs(out[key].item() - ref.get(pyKey).item()), key).toBeLessThanOrEqual(1e-4);
    // logits of real tokens (padding positions attend differently: transformers lets a padding query see no keys of its own)
    const real = batch.attentionMask.bool().unsqueeze(-1);
    expect(maxAbsDiff(out.logits.mul(real), ref.get("logits").mul(real))).toBeLessThanOrEqual(1e-4);
    const params = new Map(model.namedParameters());
    const gradKeys = ref.keys().filter((k) => k.startsWith("grad."));
    expect(gradKeys.length).toBeGreaterThanOrEqual(12 + 9); // three MLPs (4 tensors each) and LLM layer 0
    for (const k of gradKeys) {
      const p = params.get(k.slice(5));
      expect(p, k).toBeDefined();
      expect(p!.grad, k).not.toBeNull();
      expect(maxRelDiff(p!.grad!, ref.get(k)), k).toBeLessThanOrEqual(1e-4);
    }
    // the encoders are frozen: no gradient reaches them
    expect(model.siglip.parameters().every((p) => p.grad === null)).toBe(true);
    expect(model.genClip.clip.parameters().every((p) => p.grad === null)).toBe(true);
    model.zeroGrad();
    for (const t of Object.values(out)) if (t instanceof T.Tensor) t.dispose();
  });

  it("the generated vectors (conditional and empty caption, one batched decode) equal the reference (1e-4)", () => {
    const { conditional, unconditional } = model.generateImageEmbeddings({ captions: info.vector_captions, guidanceScale: info.guidance });
    expect(conditional.shape).toEqual(ref.get("vectors_cond").shape);
    expect(maxAbsDiff(conditional, ref.get("vectors_cond"))).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(unconditional!.squeeze(0), ref.get("vectors_uncond"))).toBeLessThanOrEqual(1e-4);
    conditional.dispose();
    unconditional!.dispose();
  });

  it("greedy caption tokens are the reference's", () => {
    const processor = model.processor!;
    const prompt = processor.captioningPrompt();
    const inputIds = T.tensor([prompt.inputIds], { dtype: "int64" });
    const understandingMask = T.tensor([prompt.understanding], { dtype: "int64" });
    const tokens: number[] = [];
    for (const step of model.textSteps(
      { inputIds, attentionMask: T.onesLike(inputIds), understandingMask, understandingPixelValues: ref.get("understanding_pixel_values").slice(0, 0, 1) },
      { maxNewTokens: info.caption_tokens.length, eosTokenId: null },
    ))
      tokens.push(step.tokens[0]!);
    expect(tokens).toEqual(info.caption_tokens);
  });

  it("a 4-step guided decode of the vectors equals diffusers (1e-3, latents and pixels)", async () => {
    const cond = ref.get("vectors_cond");
    const uncond = ref.get("vectors_uncond").unsqueeze(0).expand(cond.shape).contiguous();
    const loop = model.decoder!.decodeSteps(cond, {
      uncond,
      guidanceScale: info.guidance,
      steps: info.steps,
      height: info.height,
      width: info.width,
      latents: ref.get("init_latents"),
    });
    let r = await loop.next();
    while (!r.done) r = await loop.next();
    expect(maxAbsDiff(r.value.latents, ref.get("final_latents"))).toBeLessThanOrEqual(1e-3);
    expect(maxAbsDiff(r.value.images, ref.get("image"))).toBeLessThanOrEqual(1e-3);
  });

  it("savePretrained writes a folder that loads back identically and loads in the Python reference", async () => {
    const out = mkdtempSync(join(tmpdir(), "pisces-save-"));
    try {
      const target = join(out, "saved");
      model.savePretrained(target);
      const again = PiscesForConditionalGeneration.fromPretrained(target);
      try {
        const a = model.stateDict();
        const b = again.stateDict();
        expect([...b.keys()]).toEqual([...a.keys()]);
        for (const [k, t] of a)
          expect(
            T.scope(() => t.equal(b.get(k)!)),
            k,
          ).toBe(true);
        for (const [x, y] of [
          [model.siglip, again.siglip],
          [model.genClip.clip, again.genClip.clip],
          [model.decoder!.unet, again.decoder!.unet],
          [model.decoder!.vae, again.decoder!.vae],
        ] as const)
          for (const [k, t] of x.stateDict())
            expect(
              T.scope(() => t.equal(y.stateDict().get(k)!)),
              k,
            ).toBe(true);
        const batch = await again.processor!.call(info.records);
        const loss = T.noGrad(() => again.forward(batch).loss.item());
        expect(Math.abs(loss - ref.get("loss").item())).toBeLessThanOrEqual(1e-4);
      } finally {
        again.dispose();
      }
      const report = JSON.parse(execFileSync(python, [referenceScript, "check", target, dir], { encoding: "utf8" }).trim().split("\n").pop()!);
      expect(report.max_abs_diff).toBeLessThanOrEqual(1e-5);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
