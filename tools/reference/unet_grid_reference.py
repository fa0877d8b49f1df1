"""Reference for @pisces/sdxl-decoder's pisces_vector_grid_channels (a documented deviation from
SDXL's UNet): the cross-attention vectors, read as a square grid, pass a 1x1 convolution, are
nearest-upsampled to the latents' size and concatenated to them before conv_in. Built here from
diffusers' own UNet2DConditionModel (with in_channels = latents + grid channels) and torch's Conv2d
and interpolate, so the JS UNet must equal diffusers on everything else.

OUT_DIR/unet/: config.json (in_channels 4 and pisces_vector_grid_channels 3) and the weights:
diffusers' UNet keys plus vector_grid_proj.{weight,bias}.
OUT_DIR/reference.safetensors: inputs and the predicted noise.
Usage: python3 tools/reference/unet_grid_reference.py OUT_DIR
"""

import json
import os
import sys

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(os.path.join(out, "unet"), exist_ok=True)
torch.manual_seed(0)
g, D, n = 3, 16, 4
cfg = dict(sample_size=16, in_channels=4 + g, out_channels=4, block_out_channels=[32, 64], down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
           up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=1, transformer_layers_per_block=[1, 1], attention_head_dim=[2, 4],
           cross_attention_dim=D, norm_num_groups=8, use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
           projection_class_embeddings_input_dim=D + 48)
unet = UNet2DConditionModel(**cfg).eval()
proj = torch.nn.Conv2d(D, g, 1)
with torch.no_grad():
    for p in list(unet.parameters()) + list(proj.parameters()):
        p.copy_(torch.randn_like(p) * 0.1)
B = 2
sample = torch.randn(B, 4, 16, 16)
context = torch.randn(B, n * n, D)
t = torch.tensor([10.0, 700.0])
text_embeds = context.mean(1)
time_ids = torch.tensor([[64, 64, 0, 0, 64, 64]] * B, dtype=torch.float32)
with torch.no_grad():
    grid = context.transpose(1, 2).reshape(B, D, n, n)
    extra = F.interpolate(proj(grid), size=(16, 16), mode="nearest")
    pred = unet(torch.cat([sample, extra], 1), t, encoder_hidden_states=context,
                added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
weights = {k: v.contiguous() for k, v in unet.state_dict().items()}
weights["vector_grid_proj.weight"] = proj.weight.detach().contiguous()
weights["vector_grid_proj.bias"] = proj.bias.detach().contiguous()
save_file(weights, os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"))
with open(os.path.join(out, "unet", "config.json"), "w") as f:
    json.dump({"_class_name": "UNet2DConditionModel", **cfg, "in_channels": 4, "pisces_vector_grid_channels": g}, f, indent=1)
save_file({"sample": sample, "context": context, "timestep": t, "text_embeds": text_embeds, "time_ids": time_ids, "pred": pred.contiguous()},
          os.path.join(out, "reference.safetensors"))
print(f"wrote the grid-conditioned UNet reference to {out}")
