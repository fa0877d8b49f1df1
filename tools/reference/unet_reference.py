"""Reference outputs for @pisces/sdxl-decoder's UNet, made with diffusers: a tiny random SDXL-style
UNet2DConditionModel (text_time addition embedding, two resolutions, transformer_layers_per_block
[1, 2], linear projection, a cross-attention width unlike SDXL's) saved with save_pretrained, and
its output for fixed inputs.
Usage: python3 tools/reference/unet_reference.py OUT_DIR"""

import os
import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
unet = UNet2DConditionModel(
    sample_size=16, in_channels=4, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(32, 64), layers_per_block=2,
    attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), cross_attention_dim=24, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=24 + 6 * 8,
    norm_num_groups=8, flip_sin_to_cos=True, freq_shift=0).eval()
with torch.no_grad():
    for n, p in unet.named_parameters():
        p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in n and n.endswith("weight") else 0.1 * torch.randn_like(p))
unet.save_pretrained(os.path.join(out, "unet"))
g = torch.Generator().manual_seed(1)
sample = torch.randn(2, 4, 16, 16, generator=g)
context = torch.randn(2, 5, 24, generator=g)
text_embeds = torch.randn(2, 24, generator=g)
time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0], [128.0, 96.0, 8.0, 4.0, 128.0, 96.0]])
with torch.no_grad():
    y = unet(sample, 523, encoder_hidden_states=context, added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
    y2 = unet(sample, torch.tensor([999, 1]), encoder_hidden_states=context, added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids}).sample
save_file({"sample": sample, "context": context, "text_embeds": text_embeds, "time_ids": time_ids, "out_t523": y.contiguous(), "out_t999_1": y2.contiguous()},
          os.path.join(out, "unet_reference.safetensors"))
print(f"wrote UNet reference to {out}")
