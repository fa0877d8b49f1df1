// SdxlDecoder: loads a folder written by diffusers' save_pretrained (unet/, vae/, scheduler/) and
// runs a 4-step Euler loop with classifier-free guidance from the same initial noise as a loop
// built from the diffusers pieces (tools/reference/decoder_reference.py): latents and image within 1e-3.
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { fixtures, referenceFixtures } from "./helpers.js";
import { DPMSolverMultistepScheduler, SdxlDecoder } from "../src/index.js";

beforeAll(() => {
  referenceFixtures();
});
const maxAbsDiff = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item());

describe("SdxlDecoder", () => {
  it("a 4-step CFG loop matches the diffusers loop (<= 1e-3), yielding every step", async () => {
    const ref = T.loadSafetensors(join(fixtures, "decoder_reference.safetensors"));
    const decoder = SdxlDecoder.fromPretrained(join(fixtures, "decoder"));
    const steps: number[] = [];
    const loop = decoder.decodeSteps(ref.get("cond"), { steps: 4, guidanceScale: 3, height: 64, width: 64, latents: ref.get("init_latents") });
    let r = await loop.next();
    while (!r.done) {
      steps.push(r.value.timestep);
      expect(r.value.latents.shape).toEqual([2, 4, 16, 16]);
      r = await loop.next();
    }
    expect(steps).toEqual([751, 501, 251, 1]);
    expect(maxAbsDiff(r.value.latents, ref.get("final_latents"))).toBeLessThanOrEqual(1e-3);
    expect(maxAbsDiff(r.value.images, ref.get("image"))).toBeLessThanOrEqual(1e-3);
  });

  it("returns PNGs, is reproducible for a seed, and runs other schedulers and batch sizes", async () => {
    const decoder = SdxlDecoder.fromPretrained(join(fixtures, "decoder"));
    const cond = T.randn([1, 5, 24]);
    const a = await decoder.decode(cond, { steps: 2, seed: 11, height: 32, width: 48 });
    const b = await decoder.decode(cond, { steps: 2, seed: 11, height: 32, width: 48 });
    expect(a.images.shape).toEqual([1, 3, 32, 48]);
    expect(a.images.equal(b.images)).toBe(true);
    const meta = await sharp(a.png[0]!).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 48, 32]);
    const dpm = await decoder.decode(T.randn([3, 5, 24]), {
      steps: 3,
      seed: 1,
      height: 32,
      width: 32,
      guidanceScale: 1,
      scheduler: new DPMSolverMultistepScheduler(),
    });
    expect(dpm.images.shape).toEqual([3, 3, 32, 32]);
    expect(dpm.png.length).toBe(3);
  });

  it("keeps memory flat across decodes", async () => {
    const decoder = SdxlDecoder.fromPretrained(join(fixtures, "decoder"));
    const cond = T.randn([1, 5, 24]);
    const run = async () => {
      const r = await decoder.decode(cond, { steps: 2, seed: 1, height: 32, width: 32 });
      r.images.dispose();
      r.latents.dispose();
    };
    await run();
    const before = T.memoryStats().liveTensors;
    for (let i = 0; i < 3; i++) await run();
    expect(T.memoryStats().liveTensors).toBe(before);
  });

  it("rejects bad conditioning, sizes, steps and folders clearly", async () => {
    const decoder = SdxlDecoder.fromPretrained(join(fixtures, "decoder"));
    const cond = T.randn([1, 5, 24]);
    const fails = (c: T.Tensor, o: Parameters<SdxlDecoder["decode"]>[1]) => decoder.decode(c, o);
    await expect(fails(T.randn([1, 5, 16]), {})).rejects.toThrow(/cond must be \(batch, vectors, 24\)/);
    await expect(fails(T.randn([5, 24]), {})).rejects.toThrow(/cond must be/);
    await expect(fails(cond, { height: 36, width: 32 })).rejects.toThrow(/multiples of 8, got 36x32/);
    await expect(fails(cond, { steps: 0, height: 32, width: 32 })).rejects.toThrow(/steps must be a positive integer/);
    await expect(fails(cond, { guidanceScale: Number.NaN, height: 32, width: 32 })).rejects.toThrow(/guidanceScale must be a finite number/);
    expect(() => SdxlDecoder.fromPretrained(join(fixtures, "unet"))).toThrow(/the 'unet' folder is missing/);
  });
});
