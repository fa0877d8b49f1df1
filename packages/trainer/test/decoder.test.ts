// The decoder trainer: one step equals diffusers' UNet under torch.optim.AdamW from the same inputs;
// a run learns, resumes bit-exactly, and writes a Pisces folder with the trained UNet.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { NoiseSchedule, SdxlDecoder } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { decoderLoss, type RecipeJson, readRecipe, type TrainEvent, trainDecoder, withRollouts } from "../src/index.js";
import { piscesReference, piscesReferenceScript, python, stepAndCompare, writeRecipe } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-decoder-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function run(recipePath: string, resume = false): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of trainDecoder(readRecipe(recipePath), { resume })) events.push(e);
  return events;
}

/** Trains `settings` in `parted`, stopped after `stopAt` steps and resumed, and expects the UNet `whole` (run in one go) wrote, bit for bit. */
async function expectResumedEqual(whole: string, parted: string, settings: Partial<RecipeJson>, stopAt: number): Promise<void> {
  const recipe = writeRecipe(parted, settings);
  for await (const e of trainDecoder(readRecipe(recipe))) if (e.type === "step" && e.step === stopAt) break;
  await run(recipe, true);
  const unet = (dir: string) => T.loadSafetensors(join(dir, "run", "final", "decoder", "unet", "diffusion_pytorch_model.safetensors"));
  const a = unet(whole);
  const b = unet(parted);
  for (const k of a.keys())
    expect(
      T.scope(() => a.get(k).equal(b.get(k))),
      k,
    ).toBe(true);
}

describe("decoder training", () => {
  it("one step equals the PyTorch reference: loss within 1e-5, updated weights within 0.2 x lr", () => {
    const ref = piscesReference("tied_k2");
    const refPath = join(work, "decoder-step.safetensors");
    execFileSync(python, [piscesReferenceScript, "decoder_step", ref, refPath], { stdio: "pipe" });
    const r = T.loadSafetensors(refPath);
    const decoder = SdxlDecoder.fromPretrained(join(ref, "model", "decoder"));
    const { unet } = decoder;
    try {
      const schedule = new NoiseSchedule(T.readJsonFile(join(ref, "model", "decoder", "scheduler", "scheduler_config.json")) as never);
      unet.train();
      const loss = decoderLoss(unet, schedule, {
        latents: r.get("latents"),
        vectors: r.get("vectors"),
        noise: r.get("noise"),
        timesteps: r.get("timesteps"),
        keep: r.get("keep"),
        height: 32,
        width: 32,
      });
      expect(Math.abs(loss.item() - r.get("loss").item())).toBeLessThanOrEqual(1e-5);
      // Adam's first update is about lr x sign(g): where a gradient is within float noise of zero the
      // sign can differ, so the bound is a share of lr (measured: 1.05e-5, about 0.1 lr)
      expect(stepAndCompare(unet, loss, r, (k) => `unet.${k}`)).toBeLessThanOrEqual(0.2 * 1e-4);
    } finally {
      unet.dispose();
      decoder.vae.dispose();
    }
  });

  it("trains, resumes bit-exactly, keeps an EMA and writes a Pisces folder with the trained UNet", async () => {
    const settings = {
      kind: "decoder" as const,
      max_steps: 6,
      save_every: 2,
      global_batch_size: 2,
      resolution: 32,
      ema_decay: 0.9,
      optimizer: { lr: 1e-3 },
      seed: 1,
    };
    const whole = join(work, "whole");
    const events = await run(writeRecipe(whole, settings));
    const losses = events.flatMap((e) => (e.type === "step" ? [e.loss] : []));
    expect(losses.length).toBe(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    await expectResumedEqual(whole, join(work, "parted"), settings, 3);
    // the final folder is a Pisces folder whose UNet changed
    const model = PiscesForConditionalGeneration.fromPretrained(join(whole, "run", "final"));
    const source = SdxlDecoder.fromPretrained(join(piscesReference("tied_k2"), "model", "decoder"));
    const changed = [...model.decoder!.unet.stateDict()].some(([k, t]) => !T.scope(() => t.equal(source.unet.stateDict().get(k)!)));
    expect(changed).toBe(true);
    model.dispose();
    source.unet.dispose();
    source.vae.dispose();
  });

  it("rollout conditioning: a dropped sample is conditioned on the given unconditional vectors", () => {
    const ref = piscesReference("tied_k2");
    const decoder = SdxlDecoder.fromPretrained(join(ref, "model", "decoder"));
    try {
      const schedule = new NoiseSchedule(T.readJsonFile(join(ref, "model", "decoder", "scheduler", "scheduler_config.json")) as never);
      const { unet } = decoder;
      const D = unet.config.crossAttentionDim as number;
      T.manualSeed(3);
      const latents = T.randn([1, 4, 4, 4]);
      const noise = T.randn([1, 4, 4, 4]);
      const vectors = T.randn([1, 4, D]);
      const uncond = T.randn([1, 4, D]);
      const timesteps = T.tensor([500], { dtype: "int64" });
      const at = (v: T.Tensor, keep: number, unconditional?: T.Tensor) =>
        T.noGrad(() =>
          decoderLoss(unet, schedule, { latents, noise, timesteps, vectors: v, keep: T.tensor([keep]), unconditional, height: 32, width: 32 }).item(),
        );
      // dropped: as if conditioned on the unconditional vectors; kept: its own vectors; without one, zeros
      expect(at(vectors, 0, uncond)).toBe(at(uncond, 1));
      expect(at(vectors, 1, uncond)).toBe(at(vectors, 1));
      expect(at(vectors, 0)).toBe(at(T.zerosLike(vectors), 1));
      expect(at(vectors, 0, uncond)).not.toBe(at(vectors, 0));
    } finally {
      decoder.unet.dispose();
      decoder.vae.dispose();
    }
  });

  it("rollout conditioning: the chosen rows are the LLM's own rollout from their captions, the others the true vectors", () => {
    const model = PiscesForConditionalGeneration.fromPretrained(join(piscesReference("tied_k2"), "model"), { decoder: false });
    try {
      const m = model.numGenerationVectors;
      const D = model.generation_head.linear_2.weight.size(0); // gen-CLIP width
      T.manualSeed(4);
      const truth = T.randn([3, m, D]);
      const captions = ["a red circle", "two blue squares", "a green triangle"];
      const mixed = withRollouts(model, truth, captions, [1, 0, 1]);
      for (const [i, caption] of [[0, captions[0]!] as const, [2, captions[2]!] as const]) {
        const alone = model.generateImageEmbeddings({ captions: [caption], guidanceScale: 1 }).conditional;
        // batched with left padding against alone: the same up to float rounding
        expect(T.scope(() => mixed.select(0, i).sub(alone.select(0, 0)).abs().max().item())).toBeLessThan(1e-4);
        expect(T.scope(() => mixed.select(0, i).sub(truth.select(0, i)).abs().max().item())).toBeGreaterThan(0.1);
      }
      expect(T.scope(() => mixed.select(0, 1).equal(truth.select(0, 1)))).toBe(true);
      expect(() => withRollouts(model, truth, captions.slice(0, 2), [1, 0, 1])).toThrow(/3 rows of vectors, 2 captions/);
    } finally {
      model.dispose();
    }
  });

  it("rollout conditioning trains, resumes bit-exactly, and asks for an LLM when the folder has none", async () => {
    const settings = { kind: "decoder" as const, max_steps: 4, save_every: 2, global_batch_size: 2, resolution: 32, rollout_conditioning: 0.5, seed: 2 };
    const whole = join(work, "rollout-whole");
    const losses = (await run(writeRecipe(whole, settings))).flatMap((e) => (e.type === "step" ? [e.loss] : []));
    expect(losses.length).toBe(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    await expectResumedEqual(whole, join(work, "rollout-parted"), settings, 2);
    // a decoder-only start (no LLM weights) cannot roll out
    const bare = join(work, "bare-model");
    cpSync(join(piscesReference("tied_k2"), "model"), bare, { recursive: true, filter: (src) => !src.endsWith(join("model", "model.safetensors")) });
    await expect(run(writeRecipe(join(work, "bare"), { ...settings, model: bare }))).rejects.toThrow(/rollout_conditioning needs a trained Pisces LLM/);
  });
});
