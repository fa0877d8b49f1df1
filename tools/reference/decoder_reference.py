"""Reference for @pisces/sdxl-decoder's SdxlDecoder: a diffusers-style folder (unet/, vae/,
scheduler/ written by save_pretrained; the tiny UNet and VAE of unet_reference.py and
vae_reference.py, made first if missing) and a 4-step Euler loop with classifier-free guidance
run with those diffusers pieces from fixed initial noise, conditioned Emu2-style: the vectors as
cross-attention context, their mean in the pooled slot, time ids from the size.
Usage: python3 tools/reference/decoder_reference.py OUT_DIR"""

import os
import runpy
import shutil
import sys

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
from safetensors.torch import save_file

out = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
for script, folder in (("unet_reference.py", "unet"), ("vae_reference.py", "vae")):
    if not os.path.exists(os.path.join(out, folder, "config.json")):
        sys.argv = [script, out]
        runpy.run_path(os.path.join(here, script), run_name="__main__")
pipe_dir = os.path.join(out, "decoder")
os.makedirs(pipe_dir, exist_ok=True)
unet = UNet2DConditionModel.from_pretrained(os.path.join(out, "unet")).eval()
vae = AutoencoderKL.from_pretrained(os.path.join(out, "vae")).eval()
scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   timestep_spacing="leading", steps_offset=1)
unet.save_pretrained(os.path.join(pipe_dir, "unet"))
vae.save_pretrained(os.path.join(pipe_dir, "vae"))
scheduler.save_pretrained(os.path.join(pipe_dir, "scheduler"))

g = torch.Generator().manual_seed(7)
cond = torch.randn(2, 5, 24, generator=g)
uncond = torch.zeros_like(cond)
height = width = 64  # VAE factor 4 -> 16x16 latents
latents = torch.randn(2, 4, 16, 16, generator=g)
init = latents.clone()
guidance = 3.0
time_ids = torch.tensor([[height, width, 0, 0, height, width]] * 2, dtype=torch.float32)
scheduler.set_timesteps(4)
latents = latents * scheduler.init_noise_sigma
with torch.no_grad():
    context = torch.cat([uncond, cond])
    pooled = torch.cat([uncond.mean(1), cond.mean(1)])
    ids = torch.cat([time_ids, time_ids])
    for t in scheduler.timesteps:
        latent_in = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        noise = unet(latent_in, t, encoder_hidden_states=context, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample
        noise_uncond, noise_cond = noise.chunk(2)
        noise = noise_uncond + guidance * (noise_cond - noise_uncond)
        latents = scheduler.step(noise, t, latents).prev_sample
    image = vae.decode(latents / vae.config.scaling_factor).sample
    image = (image / 2 + 0.5).clamp(0, 1)
save_file({"cond": cond, "init_latents": init, "final_latents": latents.contiguous(), "image": image.contiguous()},
          os.path.join(out, "decoder_reference.safetensors"))
print(f"wrote decoder reference to {out}")
