// Euler, DDIM and DPM-Solver++ (2M) schedulers against diffusers (tools/reference/scheduler_reference.py): timesteps,
// sigmas and init_noise_sigma for several step counts and spacings, a 4-step run with epsilon and
// v-prediction, and addNoise.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { fixtures, referenceFixtures } from "./helpers.js";
import { DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler, type Scheduler, type SchedulerConfigJson } from "../src/index.js";

interface Reference {
  config: SchedulerConfigJson;
  schedules: Record<string, { timesteps: number[]; sigmas: number[] | null; init_noise_sigma: number }>;
  add_noise_timesteps: number[];
}
let ref: Record<string, Reference>;
let tensors: T.SafetensorsReader;
beforeAll(() => {
  referenceFixtures();
  ref = JSON.parse(readFileSync(join(fixtures, "schedulers.json"), "utf8"));
  tensors = T.loadSafetensors(join(fixtures, "schedulers.safetensors"));
});

const rel = (a: T.Tensor, b: T.Tensor) => T.scope(() => a.sub(b).abs().max().item() / Math.max(b.abs().max().item(), 1e-12));

function make(config: SchedulerConfigJson): Scheduler & { sigmas?: number[] } {
  switch (config._class_name) {
    case "DDIMScheduler":
      return DDIMScheduler.fromConfig(config);
    case "DPMSolverMultistepScheduler":
      return DPMSolverMultistepScheduler.fromConfig(config);
    default:
      return EulerDiscreteScheduler.fromConfig(config);
  }
}

const NAMES = ["sdxl", "trailing_v", "linspace_linear", "ddim_sdxl", "ddim_trailing_v", "ddim_default", "dpm_default", "dpm_sdxl_leading", "dpm_trailing_v"];

describe.each(NAMES)("scheduler '%s' matches diffusers", (name) => {
  it("timesteps, sigmas and initNoiseSigma", () => {
    const r = ref[name]!;
    const s = make(r.config);
    for (const [n, expected] of Object.entries(r.schedules)) {
      s.setTimesteps(Number(n));
      expect(s.timesteps, `${n} steps`).toEqual(expected.timesteps);
      if (expected.sigmas) {
        expect(s.sigmas!.length).toBe(expected.sigmas.length);
        s.sigmas!.forEach((v, i) => {
          expect(Math.abs(v - expected.sigmas![i]!), `${n} steps, sigma ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v)));
        });
      }
      expect(Math.abs(s.initNoiseSigma - expected.init_noise_sigma)).toBeLessThanOrEqual(1e-6 * expected.init_noise_sigma);
    }
  });

  it("a 5-step run: scaled inputs, predicted originals and step outputs", () => {
    T.scope(() => {
      const r = ref[name]!;
      const s = make(r.config);
      s.setTimesteps(5);
      let sample = tensors.get(`${name}.sample0`);
      s.timesteps.forEach((t, i) => {
        expect(rel(s.scaleModelInput(sample, t), tensors.get(`${name}.scaled${i}`)), `scaled ${i}`).toBeLessThanOrEqual(1e-6);
        const out = s.step(tensors.get(`${name}.model_output${i}`), t, sample);
        if (tensors.has(`${name}.pred_original${i}`))
          expect(rel(out.predOriginalSample, tensors.get(`${name}.pred_original${i}`)), `pred ${i}`).toBeLessThanOrEqual(1e-5);
        expect(rel(out.prevSample, tensors.get(`${name}.prev${i}`)), `step ${i}`).toBeLessThanOrEqual(1e-5);
        sample = out.prevSample;
      });
      if (!(s instanceof DDIMScheduler)) expect(() => s.step(sample, 0, sample)).toThrow(/no step 5/);
      const noisy = s.addNoise(tensors.get(`${name}.clean`), tensors.get(`${name}.noise`), r.add_noise_timesteps);
      expect(rel(noisy, tensors.get(`${name}.noisy`))).toBeLessThanOrEqual(1e-6);
    });
  });
});

describe("EulerDiscreteScheduler input checks", () => {
  it("rejects unsupported configs and bad step counts clearly", () => {
    expect(() => new EulerDiscreteScheduler({ use_karras_sigmas: true })).toThrow(/use_karras_sigmas not supported yet/);
    expect(() => new EulerDiscreteScheduler({ prediction_type: "sample" as "epsilon" })).toThrow(
      /prediction_type = "sample" is not supported \(supported: epsilon, v_prediction\)/,
    );
    expect(() => EulerDiscreteScheduler.fromConfig({ _class_name: "DDIMScheduler" })).toThrow(/not EulerDiscreteScheduler/);
    const s = new EulerDiscreteScheduler();
    expect(() => s.setTimesteps(0)).toThrow(/positive integer/);
    expect(() => s.setTimesteps(2000)).toThrow(/exceed the 1000 training timesteps/);
    expect(() => s.scaleModelInput(T.zeros([1]), 0)).toThrow(/call setTimesteps/);
  });
});
