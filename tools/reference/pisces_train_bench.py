"""PyTorch side of `pnpm bench` for @pisces/trainer: training steps on the small Pisces folder of
pisces_bench.py (made there first), float32, CPU, random weights.
  pisces_step_s   one Pisces stage step: a captioning and a generation sample (the paper's prompts,
                  196 SigLIP tokens and 64 gen-CLIP vectors), encoders under no-grad, forward +
                  backward + clipping + AdamW over the LLM and the three MLPs
  decoder_step_s  one decoder step: UNet at batch 2 on 32x32 latents (256 px) conditioned on 64
                  vectors, forward + backward + clipping + AdamW
Usage: python3 pisces_train_bench.py THREADS FOLDER"""

import json
import os
import sys

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import pisces_reference as ref  # noqa: E402
from timing import best_time  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import CLIPImageProcessorPil, PreTrainedTokenizerFast, SiglipImageProcessorPil  # noqa: E402

torch.set_num_threads(int(sys.argv[1]))
folder = sys.argv[2]
model = ref.load_pisces(folder)
tok = PreTrainedTokenizerFast.from_pretrained(folder)
image = Image.open(os.path.join(folder, "..", "bench-image.png")).convert("RGB")
und = SiglipImageProcessorPil.from_pretrained(os.path.join(folder, "siglip"))(images=[image], return_tensors="pt").pixel_values
gen = CLIPImageProcessorPil.from_pretrained(os.path.join(folder, "gen_clip"))(images=[image], return_tensors="pt").pixel_values
records = [{"task": "captioning", "caption": "a red circle to the left of a blue square"}, {"task": "generation", "caption": "a red circle to the left of a blue square"}]
batch = ref.build_batch(tok, model, records, und, gen)
params = [p for p in model.parameters()]
opt = torch.optim.AdamW(params, lr=2e-5)
model.train()


def pisces_step():
    opt.zero_grad(set_to_none=True)
    model(batch)["loss"].backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "decoder", "unet"))
unet.train()
uparams = list(unet.parameters())
uopt = torch.optim.AdamW(uparams, lr=1e-4)
g = torch.Generator().manual_seed(0)
latents, noise = torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 4, 32, 32, generator=g)
vectors = torch.randn(2, 64, 768, generator=g)
timesteps = torch.tensor([100, 700])
ids = torch.tensor([[256.0, 256, 0, 0, 256, 256]] * 2)


def decoder_step():
    uopt.zero_grad(set_to_none=True)
    pred = unet(latents + noise, timesteps, encoder_hidden_states=vectors, added_cond_kwargs={"text_embeds": vectors.mean(1), "time_ids": ids}).sample
    F.mse_loss(pred, noise).backward()
    torch.nn.utils.clip_grad_norm_(uparams, 1.0)
    uopt.step()


pisces_step()
decoder_step()
print(json.dumps({"torch": torch.__version__, "sequence": int(batch["input_ids"].shape[1]), "pisces_step_s": best_time(pisces_step, 3), "decoder_step_s": best_time(decoder_step, 3)}))
