"""transformers side of the @pisces/siglip and @pisces/gen-clip benchmarks: images/s of a
ViT-B/16-shaped SigLIP or CLIP vision tower (random weights, float32, CPU, eager attention) at
batch 1 and 8, and images/s of the transformers image processor (Pillow backend) on files.
Usage: python3 vision_bench.py siglip|clip THREADS IMAGE_DIR"""

import json
import os
import sys

import torch
from PIL import Image, ImageOps
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, SiglipImageProcessorPil, SiglipVisionConfig,
                          SiglipVisionModel)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_time  # noqa: E402

kind, threads, image_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
torch.manual_seed(0)
if kind == "siglip":  # google/siglip-base-patch16-224
    model = SiglipVisionModel(SiglipVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                                 image_size=224, patch_size=16)).eval()
    processor = SiglipImageProcessorPil(size={"height": 224, "width": 224}, resample=3)
else:  # openai/clip-vit-base-patch16
    model = CLIPVisionModel(CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                             image_size=224, patch_size=16, hidden_act="quick_gelu")).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
model.set_attn_implementation("eager")


result = {"transformers": __import__("transformers").__version__}
with torch.no_grad():
    for batch in (1, 8):
        px = torch.randn(batch, 3, 224, 224)
        model(pixel_values=px)
        result[f"b{batch}_s"] = best_time(lambda: model(pixel_values=px), 3 if batch == 8 else 5)

files = sorted(os.path.join(image_dir, f) for f in os.listdir(image_dir) if f.endswith((".png", ".jpg")))


def preprocess():
    for f in files:
        processor(ImageOps.exif_transpose(Image.open(f)), return_tensors="pt")


preprocess()
result["preprocess_s_per_image"] = best_time(preprocess, 3) / len(files)
result["images"] = len(files)
print(json.dumps(result))
