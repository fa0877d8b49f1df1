"""diffusers side of `pnpm bench` for @pisces/sdxl-decoder: a small SDXL-shaped UNet forward at
batch 2 (classifier-free guidance) and a VAE decode, 256x256 pixels (32x32 latents), float32, CPU,
random weights. Configs come as JSON on argv so both sides build the same shapes.
Usage: python3 sdxl_bench.py THREADS UNET_JSON VAE_JSON"""

import json
import os
import sys

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_time  # noqa: E402

torch.set_num_threads(int(sys.argv[1]))
unet_cfg, vae_cfg = json.loads(sys.argv[2]), json.loads(sys.argv[3])
torch.manual_seed(0)
unet = UNet2DConditionModel(**unet_cfg).eval()
vae = AutoencoderKL(**vae_cfg).eval()


with torch.no_grad():
    sample = torch.randn(2, 4, 32, 32)
    context = torch.randn(2, 64, unet_cfg["cross_attention_dim"])
    cond = {"text_embeds": torch.randn(2, unet_cfg["cross_attention_dim"]), "time_ids": torch.tensor([[256.0, 256, 0, 0, 256, 256]] * 2)}
    run_unet = lambda: unet(sample, 500, encoder_hidden_states=context, added_cond_kwargs=cond)
    latents = torch.randn(1, 4, 32, 32)
    run_vae = lambda: vae.decode(latents)
    run_unet()
    run_vae()
    print(json.dumps({"diffusers": __import__("diffusers").__version__, "unet_s": best_time(run_unet, 5), "vae_s": best_time(run_vae, 3)}))
