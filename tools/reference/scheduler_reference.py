"""Reference outputs for @pisces/sdxl-decoder's schedulers, made with diffusers: for each config,
the timesteps, sigmas and init_noise_sigma for several step counts, and a 4-step run (scaled model
input and step outputs from fixed random tensors), plus add_noise.
Usage: python3 tools/reference/scheduler_reference.py OUT_DIR"""

import json
import os
import sys

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
SDXL = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
CONFIGS = {
    # stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
    "sdxl": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon",
                 timestep_spacing="leading", steps_offset=1, interpolation_type="linear"),
    "trailing_v": dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                       prediction_type="v_prediction", timestep_spacing="trailing"),
    "linspace_linear": dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear", timestep_spacing="linspace"),
    "ddim_sdxl": dict(SDXL, timestep_spacing="leading", clip_sample=False, set_alpha_to_one=False, _class="DDIMScheduler"),
    "ddim_trailing_v": dict(SDXL, timestep_spacing="trailing", prediction_type="v_prediction", clip_sample=False, _class="DDIMScheduler"),
    "ddim_default": dict(_class="DDIMScheduler"),
    "dpm_default": dict(_class="DPMSolverMultistepScheduler"),
    "dpm_sdxl_leading": dict(SDXL, timestep_spacing="leading", _class="DPMSolverMultistepScheduler"),
    "dpm_trailing_v": dict(SDXL, timestep_spacing="trailing", prediction_type="v_prediction", _class="DPMSolverMultistepScheduler"),
}
CLASSES = {"EulerDiscreteScheduler": EulerDiscreteScheduler, "DDIMScheduler": DDIMScheduler, "DPMSolverMultistepScheduler": DPMSolverMultistepScheduler}
ref, tensors = {}, {}
for name, cfg in CONFIGS.items():
    cfg = dict(cfg)
    cls = cfg.pop("_class", "EulerDiscreteScheduler")
    entry = {"config": dict(cfg, _class_name=cls), "schedules": {}}
    s = CLASSES[cls](**cfg)
    for n in (1, 4, 7, 25, 50):
        s.set_timesteps(n)
        sig = getattr(s, "sigmas", None)
        entry["schedules"][n] = {"timesteps": s.timesteps.tolist(), "sigmas": sig.tolist() if sig is not None else None, "init_noise_sigma": float(s.init_noise_sigma)}
    g = torch.Generator().manual_seed(0)
    s.set_timesteps(5)
    sample = torch.randn(2, 4, 8, 8, generator=g) * s.init_noise_sigma
    tensors[f"{name}.sample0"] = sample.clone()
    for i, t in enumerate(s.timesteps):
        scaled = s.scale_model_input(sample, t)
        model_output = torch.randn(2, 4, 8, 8, generator=g)
        tensors[f"{name}.scaled{i}"] = scaled
        tensors[f"{name}.model_output{i}"] = model_output
        res = s.step(model_output, t, sample)
        sample = res.prev_sample
        tensors[f"{name}.prev{i}"] = sample.clone()
        if getattr(res, "pred_original_sample", None) is not None:  # DPM-Solver's output has none
            tensors[f"{name}.pred_original{i}"] = res.pred_original_sample.clone()
    clean = torch.randn(3, 4, 8, 8, generator=g)
    noise = torch.randn(3, 4, 8, 8, generator=g)
    ts = s.timesteps[[0, 2, 4]]
    tensors[f"{name}.clean"], tensors[f"{name}.noise"] = clean, noise
    tensors[f"{name}.noisy"] = s.add_noise(clean, noise, ts)
    entry["add_noise_timesteps"] = ts.tolist()
    ref[name] = entry
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, "schedulers.safetensors"))
json.dump(ref, open(os.path.join(out, "schedulers.json"), "w"), indent=1)
print(f"wrote scheduler references to {out}")
