"""Reference outputs for @pisces/sdxl-decoder's AutoencoderKL, made with diffusers: a tiny random
SDXL-style VAE (two resolutions, mid-block attention) saved with save_pretrained, and its
encoder distribution and decoder output for fixed inputs.
Usage: python3 tools/reference/vae_reference.py OUT_DIR"""

import os
import sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                    block_out_channels=[8, 16, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4, scaling_factor=0.13025).eval()
with torch.no_grad():
    for n, p in vae.named_parameters():
        p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in n and n.endswith("weight") else 0.2 * torch.randn_like(p))
vae.save_pretrained(os.path.join(out, "vae"))
g = torch.Generator().manual_seed(1)
pixels = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
latents = torch.randn(2, 4, 8, 8, generator=g)
with torch.no_grad():
    dist = vae.encode(pixels).latent_dist
    decoded = vae.decode(latents).sample
save_file({"pixels": pixels, "latents": latents, "mean": dist.mean.contiguous(), "std": dist.std.contiguous(), "decoded": decoded.contiguous()},
          os.path.join(out, "vae_reference.safetensors"))
print(f"wrote VAE reference to {out}")
