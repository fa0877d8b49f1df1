"""Reference for @pisces/siglip's tokenizer and zero-shot classification, made with transformers.

OUT_DIR/tokenizer/: a tiny SentencePiece unigram model trained here (spiece.model) saved through
transformers' SiglipTokenizer.save_pretrained, and tokenizer.json: the ids SiglipTokenizer gives for
a mixed corpus (ASCII with punctuation and case, whitespace runs, CJK, emoji, characters outside
the vocabulary), with and without padding to max_length.
OUT_DIR/zero_shot/: a tiny random SiglipModel whose vocabulary is that tokenizer's, the processor
(SiglipProcessor) saved beside it, and reference.safetensors: the logits of one test image against
a list of labels, computed from the image file and the label strings with transformers end to end.
Usage: python3 tools/reference/siglip_text_reference.py OUT_DIR IMAGE_PATH
"""

import json
import os
import sys

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor, SiglipTokenizer

out, image_path = sys.argv[1], sys.argv[2]
tok_dir = os.path.join(out, "tokenizer")
os.makedirs(tok_dir, exist_ok=True)

# ---- a tiny unigram SentencePiece model, with SigLIP's special pieces ------------------------
sentences = [
    "a photo of a cat", "a photo of a dog", "a picture of an astronaut in space", "the quick brown fox jumps over the lazy dog",
    "two cats sleeping on a red sofa", "a diagram of a neural network", "an oil painting of mountains at sunset",
    "a close-up photo of a coffee cup", "black and white photograph of a camera", "children playing football in the park",
    "a bowl of ramen noodles", "東京の夜景の写真", "一只猫的照片", "a city skyline at night", "a blurry photo of a bird",
] * 20
model_prefix = os.path.join(out, "spm")
spm.SentencePieceTrainer.train(
    sentence_iterator=iter(sentences), model_prefix=model_prefix, vocab_size=160, model_type="unigram",
    pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
    character_coverage=0.98, hard_vocab_limit=False, normalization_rule_name="nmt_nfkc", minloglevel=2,
)
tok = SiglipTokenizer(vocab_file=model_prefix + ".model", model_max_length=16)
tok.save_pretrained(tok_dir)
tok = SiglipTokenizer.from_pretrained(tok_dir)

corpus = [
    "a photo of a cat", "A Photo of a CAT!", "  leading and   inner   spaces\tand\ttabs  ", "What's this? (a dog, maybe...)",
    "東京の夜景", "一只猫", "emoji 🐱 and 🚀 rocket", "ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ", "café naïve Ωmega", "", "!!!", "a\u2581b ▁x",
    "the quick brown fox jumps over the lazy dog and keeps running far beyond the limit of sixteen tokens",
    "</s> inside text", "unknown ZZZQQQ xyzzy",
]
ref = {"corpus": corpus, "vocab_size": tok.vocab_size,
       "ids": [tok(t)["input_ids"] for t in corpus],
       "padded": tok(corpus, padding="max_length", truncation=True, max_length=16)["input_ids"],
       "tokens": [tok.tokenize(t) for t in corpus]}
with open(os.path.join(tok_dir, "reference.json"), "w", encoding="utf-8") as f:
    json.dump(ref, f, ensure_ascii=False, indent=1)

# ---- zero-shot classification end to end --------------------------------------------------------
zs_dir = os.path.join(out, "zero_shot")
torch.manual_seed(5)
cfg = SiglipConfig(text_config=dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=16, projection_size=32, pad_token_id=1, eos_token_id=1),
                   vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
                                      layer_norm_eps=1e-6))
model = SiglipModel(cfg).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in n and n.endswith("weight") else 0.2 * torch.randn_like(p))
    model.logit_scale.fill_(np.log(10.0))
    model.logit_bias.fill_(-2.5)
model.save_pretrained(zs_dir)
processor = SiglipProcessor(image_processor=SiglipImageProcessorPil(size={"height": 32, "width": 32}, resample=3), tokenizer=tok)
processor.save_pretrained(zs_dir)
labels = ["a photo of an astronaut", "a photo of a cat", "a diagram", "東京の夜景"]
inputs = processor(text=labels, images=Image.open(image_path), padding="max_length", max_length=16, return_tensors="pt")
with torch.no_grad():
    o = model(**inputs)
save_file({"input_ids": inputs["input_ids"].contiguous(), "attention_mask": inputs["attention_mask"].contiguous(), "pixel_values": inputs["pixel_values"].contiguous(),
           "logits_per_image": o.logits_per_image.contiguous(), "probs": torch.sigmoid(o.logits_per_image).contiguous()},
          os.path.join(zs_dir, "reference.safetensors"))
with open(os.path.join(zs_dir, "labels.json"), "w", encoding="utf-8") as f:
    json.dump(labels, f, ensure_ascii=False)
