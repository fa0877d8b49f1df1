"""Reference for @pisces/gen-clip's ClipModel (both towers) and @pisces/trainer's gen-CLIP step
with the contrastive term, made with transformers' CLIPModel.

OUT_DIR/model/: a tiny random CLIPModel (text and vision towers, projections, logit_scale) saved by
save_pretrained, with a word-level tokenizer.json (made with the tokenizers library: whitespace
words, "<|startoftext|> $A <|endoftext|>" around every text) and preprocessor_config.json.
OUT_DIR/reference.safetensors: for a batch of captions (right-padded) and random pixels: input_ids,
attention_mask, pixel_values, the text tower's last hidden state and pooled output, text and image
embeddings, logits per image and the contrastive loss.
OUT_DIR/step.safetensors: one training step of gen-CLIP as @pisces/trainer takes it: SimMIM's masked
patch loss (mask token, pixel head) plus contrastive_weight x CLIP's contrastive loss on the
unmasked images and their captions; torch.optim.AdamW (lr 1e-4, weight decay 0.01), clipping at 1.
Usage: python3 tools/reference/clip_reference.py OUT_DIR
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from pisces_reference import adamw, simmim_loss, simmim_start  # the same SimMIM step and AdamW as the vision-only reference

out = sys.argv[1]
model_dir = os.path.join(out, "model")
os.makedirs(model_dir, exist_ok=True)

words = "a an the red green blue yellow purple orange circle square triangle circles squares triangles one two three four and of to left right above below".split()
vocab = {"<pad>": 0, "<unk>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}
for w in words:
    vocab[w] = len(vocab)
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.post_processor = processors.TemplateProcessing(single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 2), ("<|endoftext|>", 3)])
tok.save(os.path.join(model_dir, "tokenizer.json"))
with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
    json.dump({"model_max_length": 16, "pad_token": "<pad>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<unk>"}, f)

torch.manual_seed(11)
# eos 3: pooled at the first eos (transformers' rule for any eos but the legacy 2, which pools at the largest id)
cfg = CLIPConfig(
    text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=16,
                     pad_token_id=0, bos_token_id=2, eos_token_id=3),
    vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
    projection_dim=24,
)
model = CLIPModel(cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        if n == "logit_scale":
            continue
        p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in n and n.endswith("weight") else 0.2 * torch.randn_like(p))
model.save_pretrained(model_dir)
CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(model_dir)

captions = ["a red circle", "two blue squares and a yellow triangle", "a green triangle to the left of a purple circle", "three orange circles"]
enc = [tok.encode(c).ids for c in captions]
L = max(len(e) for e in enc)
input_ids = torch.tensor([e + [0] * (L - len(e)) for e in enc])
attention_mask = torch.tensor([[1] * len(e) + [0] * (L - len(e)) for e in enc])
g = torch.Generator().manual_seed(3)
pixels = torch.randn(len(captions), 3, 32, 32, generator=g)
model.eval()
with torch.no_grad():
    t = model.text_model(input_ids=input_ids, attention_mask=attention_mask)
    o = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixels, return_loss=True)
save_file({"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixels,
           "text_last_hidden_state": t.last_hidden_state.contiguous(), "text_pooler_output": t.pooler_output.contiguous(),
           "text_embeds": o.text_embeds.contiguous(), "image_embeds": o.image_embeds.contiguous(),
           "logits_per_image": o.logits_per_image.contiguous(), "loss": o.loss.reshape([])},
          os.path.join(out, "reference.safetensors"))
with open(os.path.join(out, "captions.json"), "w") as f:
    json.dump({"captions": captions, "ids": enc}, f)

# ---- one gen-CLIP training step: masked patches + contrastive ----------------------------------
contrastive_weight = 0.5
model = CLIPModel.from_pretrained(model_dir)
c = model.config.vision_config
G, p, D = c.image_size // c.patch_size, c.patch_size, c.hidden_size
g = torch.Generator().manual_seed(99)
mask = torch.rand(len(captions), G * G, generator=g) < 0.75
mask_token, head, start = simmim_start(D, p, g)
params = list(model.parameters()) + [mask_token] + list(head.parameters())
opt = adamw(params, lr=1e-4, weight_decay=0.01)
model.train()
mim = simmim_loss(model.vision_model, pixels, mask, mask_token, head)
contrastive = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixels, return_loss=True).loss
loss = mim + contrastive_weight * contrastive
loss.backward()
torch.nn.utils.clip_grad_norm_(params, 1.0)
opt.step()
tensors = {"mask": mask, "loss": loss.detach(), "mim": mim.detach(), "contrastive": contrastive.detach(), **{"start." + k: v for k, v in start.items()}}
tensors.update({"clip." + k: v for k, v in model.state_dict().items()})
tensors.update({"mask_token": mask_token.detach(), "pixel_head.weight": head.weight.detach(), "pixel_head.bias": head.bias.detach()})
save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, os.path.join(out, "step.safetensors"))
print(f"wrote the CLIP reference to {out}")
