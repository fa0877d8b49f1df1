"""PyTorch side of `pnpm bench` for @pisces/model / @pisces/sampler: a small Pisces (an LLM of
SmolLM2-135M's shape, ViT-B/16-shaped SigLIP and gen-CLIP, the small SDXL-shaped UNet and VAE of
sdxl-decoder's bench), random weights, float32, CPU. Makes the folder once (both sides load it),
then times the reference implementation (tools/reference/pisces_reference.py) on it:
  vectors_s    the 64 vectors of one caption with classifier-free guidance (2 rows, KV cache)
  step_s       one guided denoising step (UNet at batch 2 + Euler step), 256x256 pixels
  t2i_s        text to image end to end: vectors + 20 guided steps + VAE decode, 256x256
  i2t_tok_s    image to text: SigLIP + prompt prefill + 32 greedy tokens (transformers' generate), tokens/s
Usage: python3 pisces_bench.py THREADS FOLDER"""

import json
import os
import sys
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import pisces_reference as ref  # noqa: E402
from timing import best_time  # noqa: E402
from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel  # noqa: E402
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel, PreTrainedTokenizerFast, SiglipImageProcessorPil,  # noqa: E402
                          SiglipVisionConfig, SiglipVisionModel)

torch.set_num_threads(int(sys.argv[1]))
folder = sys.argv[2]


def make(folder):
    os.makedirs(folder, exist_ok=True)
    tok = ref.make_tokenizer(folder)
    siglip = SiglipVisionModel(SiglipVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                                  image_size=224, patch_size=16)).eval()
    gen_clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                                image_size=512, patch_size=16, hidden_act="gelu", projection_dim=512)).eval()  # 32x32 grid
    text = dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, hidden_act="silu")  # SmolLM2-135M's shape
    config = {"model_type": "pisces", "architectures": ["PiscesForConditionalGeneration"], "text_config": text, "understanding_feature_layer": -1,
              "generation_feature_layer": -1, "generation_pool_kernel": 4, "image_start_token_id": tok.convert_tokens_to_ids(ref.IMG),
              "image_end_token_id": tok.convert_tokens_to_ids(ref.END_IMG), "projector_hidden_act": "gelu"}
    torch.manual_seed(0)
    model = Pisces(config, siglip, gen_clip)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
    model.language_model.tie_weights()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "language_model.lm_head.weight"}
    from safetensors.torch import save_file
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    json.dump(config, open(os.path.join(folder, "config.json"), "w"), indent=1)
    siglip.save_pretrained(os.path.join(folder, "siglip"))
    SiglipImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(os.path.join(folder, "siglip"))
    gen_clip.save_pretrained(os.path.join(folder, "gen_clip"))
    CLIPImageProcessorPil(size={"shortest_edge": 512}, crop_size={"height": 512, "width": 512}).save_pretrained(os.path.join(folder, "gen_clip"))
    dec = os.path.join(folder, "decoder")
    UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], block_out_channels=[64, 128, 256], layers_per_block=2,
        attention_head_dim=[1, 2, 4], transformer_layers_per_block=[1, 2, 2], cross_attention_dim=768, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=768 + 6 * 256, norm_num_groups=32,
    ).save_pretrained(os.path.join(dec, "unet"))
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                  block_out_channels=[32, 64, 128, 128], layers_per_block=2, latent_channels=4, norm_num_groups=32).save_pretrained(os.path.join(dec, "vae"))
    EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading",
                           steps_offset=1).save_pretrained(os.path.join(dec, "scheduler"))
    json.dump({"_class_name": "PiscesDecoderPipeline", "_diffusers_version": "0.42.1", "scheduler": ["diffusers", "EulerDiscreteScheduler"],
               "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}, open(os.path.join(dec, "model_index.json"), "w"))
    from PIL import Image
    import numpy as np
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(os.path.join(folder, "..", "bench-image.png"))
    open(os.path.join(folder, "complete"), "w").close()


Pisces = ref.Pisces
if not os.path.exists(os.path.join(folder, "complete")):
    make(folder)

model = ref.load_pisces(folder)
tok = PreTrainedTokenizerFast.from_pretrained(folder)
unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "decoder", "unet")).eval()
vae = AutoencoderKL.from_pretrained(os.path.join(folder, "decoder", "vae")).eval()
scheduler = EulerDiscreteScheduler.from_pretrained(os.path.join(folder, "decoder", "scheduler"))
caption = "a red circle to the left of a blue square"
H = W = 256


def decode(cond, uncond, steps, latents):
    return ref.guided_decode(unet, scheduler, cond, uncond, steps, latents, H, W, 3.0)


def t2i():
    vectors, _, _ = model.generate_vectors(tok, [caption])
    latents = decode(vectors[:1], vectors[1:], 20, torch.randn(1, 4, H // 8, W // 8, generator=torch.Generator().manual_seed(0)))
    return (vae.decode(latents / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)


sp = SiglipImageProcessorPil.from_pretrained(os.path.join(folder, "siglip"))
from PIL import Image  # noqa: E402
pixels = sp(images=[Image.open(os.path.join(folder, "..", "bench-image.png")).convert("RGB")], return_tensors="pt").pixel_values
N_TOKENS = 32


def i2t():
    ids = ref.captioning_prompt_ids(tok, model.num_understanding_tokens)
    x = torch.tensor([ids])
    und = x == -1
    start = ids.index(model.config["image_start_token_id"]) + 1
    und[0, start:start + model.num_understanding_tokens] = True
    e, _ = model.embed(x, und, None, pixels, None)
    out = model.language_model.generate(inputs_embeds=e, attention_mask=torch.ones_like(x), max_new_tokens=N_TOKENS, min_new_tokens=N_TOKENS,
                                         do_sample=False, pad_token_id=0)
    assert out.shape[1] == N_TOKENS, out.shape


with torch.no_grad():
    c, u = torch.randn(1, 64, 768), torch.randn(1, 64, 768)
    lat = torch.randn(1, 4, H // 8, W // 8)
    model.generate_vectors(tok, [caption])
    t2i()
    i2t()
    result = {
        "torch": torch.__version__,
        "vectors_s": best_time(lambda: model.generate_vectors(tok, [caption]), 3),
        "step_s": best_time(lambda: decode(c, u, 1, lat), 3),
        "t2i_s": best_time(t2i, 2),
        "i2t_tok_s": N_TOKENS / best_time(i2t, 3),
    }
print(json.dumps(result))
