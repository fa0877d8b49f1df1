"""Reference outputs for @pisces/siglip, @pisces/gen-clip and @pisces/image, made with transformers.

OUT_DIR/siglip_vision/, siglip/ (vision + text), clip_quick/ (quick_gelu), clip_gelu/: tiny random
models saved with save_pretrained, and reference.safetensors with the inputs, every hidden state,
pooled outputs (and image-text logits), plus the gen-CLIP pooled vectors from torch's avg_pool2d.
OUT_DIR/images/: test images (photos from the scikit-image wheel's data folder, synthetic ones,
with alpha, grey, CMYK, EXIF-rotated) and preprocess.safetensors: pixel_values from transformers'
SigLIP and CLIP image processors (PIL backend).
Usage: python3 tools/reference/vision_reference.py OUT_DIR
"""

import glob
import os
import subprocess
import sys
import zipfile

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, SiglipConfig, SiglipImageProcessorPil,
                          SiglipModel, SiglipVisionConfig, SiglipVisionModel)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def scale_weights(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.2)


def hidden(outputs):
    return {f"hidden_states.{i}": h.contiguous() for i, h in enumerate(outputs.hidden_states)}


def save(tensors, path):
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, path)


VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, layer_norm_eps=1e-6)

# SiglipVisionModel alone
torch.manual_seed(0)
m = SiglipVisionModel(SiglipVisionConfig(**VISION)).eval()
scale_weights(m, 1)
m.save_pretrained(os.path.join(out, "siglip_vision", "model"))
px = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    o = m(pixel_values=px, output_hidden_states=True)
save({"pixel_values": px, "last_hidden_state": o.last_hidden_state, "pooler_output": o.pooler_output, **hidden(o)},
          os.path.join(out, "siglip_vision", "reference.safetensors"))

# SiglipModel: text + vision towers, image-text logits
torch.manual_seed(2)
cfg = SiglipConfig(text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=16, projection_size=24, pad_token_id=1, bos_token_id=2, eos_token_id=3),
                   vision_config=dict(VISION, hidden_size=24, num_attention_heads=3, intermediate_size=40))
sm = SiglipModel(cfg).eval()
scale_weights(sm, 3)
with torch.no_grad():
    sm.logit_scale.fill_(np.log(10.0))
    sm.logit_bias.fill_(-2.5)
sm.save_pretrained(os.path.join(out, "siglip", "model"))
px = torch.randn(3, 3, 32, 32)
ids = torch.randint(4, 64, (2, 16))
with torch.no_grad():
    o = sm(input_ids=ids, pixel_values=px, output_hidden_states=True)
save({"pixel_values": px, "input_ids": ids, "logits_per_image": o.logits_per_image, "logits_per_text": o.logits_per_text,
           "text_embeds": o.text_embeds, "image_embeds": o.image_embeds, "text_last_hidden_state": o.text_model_output.last_hidden_state,
           **{f"text_hidden_states.{i}": h for i, h in enumerate(o.text_model_output.hidden_states)}},
          os.path.join(out, "siglip", "reference.safetensors"))

# CLIPVisionModel, quick_gelu and gelu; and the gen-CLIP pooling of a patch grid
for name, act in (("clip_quick", "quick_gelu"), ("clip_gelu", "gelu")):
    torch.manual_seed(4)
    cm = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=3, num_attention_heads=4, image_size=32,
                                          patch_size=4, hidden_act=act, layer_norm_eps=1e-5, projection_dim=16)).eval()
    scale_weights(cm, 5)
    cm.save_pretrained(os.path.join(out, name, "model"))
    px = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        o = cm(pixel_values=px, output_hidden_states=True)
    ref = {"pixel_values": px, "last_hidden_state": o.last_hidden_state, "pooler_output": o.pooler_output, **hidden(o)}
    # gen-CLIP: patch tokens of the penultimate layer (class token dropped), 8x8 grid, 4x4 average pool -> 4 vectors
    for layer, k in ((-2, 4), (-1, 2), (-1, 1)):
        tokens = o.hidden_states[layer][:, 1:, :]  # (B, 64, D)
        B, N, D = tokens.shape
        grid = tokens.reshape(B, 8, 8, D).permute(0, 3, 1, 2)  # (B, D, 8, 8)
        pooled = torch.nn.functional.avg_pool2d(grid, kernel_size=k, stride=k)  # (B, D, 8/k, 8/k)
        ref[f"pooled.layer{layer}.k{k}"] = pooled.flatten(2).transpose(1, 2).contiguous()
    save(ref, os.path.join(out, name, "reference.safetensors"))

# ---- images and preprocessing ---------------------------------------------------------------
img_dir = os.path.join(out, "images")
os.makedirs(img_dir, exist_ok=True)
if not os.path.exists(os.path.join(img_dir, "astronaut.png")):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "scikit-image==0.26.0", "-d", img_dir], check=True)
    wheel = glob.glob(os.path.join(img_dir, "scikit_image-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        for photo in ("astronaut.png", "chelsea.png", "coffee.png", "camera.png"):
            with z.open(f"skimage/data/{photo}") as src, open(os.path.join(img_dir, photo), "wb") as dst:
                dst.write(src.read())
    os.remove(wheel)

rng = np.random.default_rng(0)
astronaut = Image.open(os.path.join(img_dir, "astronaut.png")).convert("RGB")
chelsea = Image.open(os.path.join(img_dir, "chelsea.png")).convert("RGB")
# photos in other formats and orientations
astronaut.save(os.path.join(img_dir, "astronaut_q90.jpg"), quality=90)
chelsea.resize((300, 200)).save(os.path.join(img_dir, "chelsea_small.jpg"), quality=92)
rot = chelsea.copy()
exif = rot.getexif()
exif[0x0112] = 6  # orientation: rotate 90 CW to display
rot.save(os.path.join(img_dir, "chelsea_exif6.jpg"), quality=92, exif=exif)
# synthetic: gradients, shapes, alpha, grey, CMYK, odd sizes
yy, xx = np.mgrid[0:240, 0:360]
grad = np.stack([xx / 360 * 255, yy / 240 * 255, (xx + yy) / 600 * 255], -1).astype(np.uint8)
Image.fromarray(grad).save(os.path.join(img_dir, "gradient_360x240.png"))
rgba = np.concatenate([grad, (np.clip(xx / 360, 0, 1) * 255).astype(np.uint8)[..., None]], -1)
Image.fromarray(rgba, "RGBA").save(os.path.join(img_dir, "alpha_360x240.png"))
Image.fromarray(grad[..., 0]).save(os.path.join(img_dir, "grey_360x240.png"))
astronaut.convert("L").resize((257, 311)).save(os.path.join(img_dir, "grey_astronaut.jpg"), quality=95)
astronaut.convert("CMYK").save(os.path.join(img_dir, "cmyk_astronaut.jpg"), quality=95)
noise = (rng.random((37, 91, 3)) * 255).astype(np.uint8)
Image.fromarray(noise).save(os.path.join(img_dir, "noise_37x91.png"))
Image.fromarray(grad[:100, :]).resize((500, 120)).save(os.path.join(img_dir, "wide_500x120.png"))

names = sorted(f for f in os.listdir(img_dir) if f.endswith((".png", ".jpg")) and not f.startswith("."))
siglip_proc = SiglipImageProcessorPil(size={"height": 224, "width": 224}, resample=3)
clip_proc = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
siglip_proc.save_pretrained(os.path.join(img_dir, "siglip_processor"))
clip_proc.save_pretrained(os.path.join(img_dir, "clip_processor"))
pre = {}
for f in names:
    im = ImageOps.exif_transpose(Image.open(os.path.join(img_dir, f)))  # as transformers' load_image
    pre[f"siglip.{f}"] = siglip_proc(im, return_tensors="pt")["pixel_values"][0]
    pre[f"clip.{f}"] = clip_proc(im, return_tensors="pt")["pixel_values"][0]
save(pre, os.path.join(img_dir, "preprocess.safetensors"))
with open(os.path.join(img_dir, "names.txt"), "w") as fh:
    fh.write("\n".join(names))
print(f"wrote vision reference outputs to {out}")
