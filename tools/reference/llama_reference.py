"""Reference outputs for @pisces/llama, made with transformers on tiny random Llama models.

For each model under OUT_DIR/<name>/: `model/` (save_pretrained; one model sharded, one rewritten
with the published `rope_theta` + `rope_scaling` keys) and `reference.safetensors` with inputs,
float32 logits, loss and every parameter gradient for a labelled batch, bfloat16 logits, and
32 greedily generated tokens (`generate.json`). Also `tokenizer/`: a byte-level BPE tokenizer
with Llama-3 special tokens and chat template, and `tokenizer_reference.json` with the ids,
decodings and rendered chat templates of a mixed corpus.
Usage: python3 tools/reference/llama_reference.py OUT_DIR
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

BASE = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
MODELS = {
    # GQA: 2 query heads per KV head.
    "gqa": dict(BASE),
    # llama3 RoPE scaling, written with the published-checkpoint keys rope_theta + rope_scaling.
    "llama3_rope": dict(BASE, rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    # tied embeddings, biases in attention and MLP.
    "tied": dict(BASE, tie_word_embeddings=True, attention_bias=True, mlp_bias=True, num_key_value_heads=4),
    # head_dim different from hidden/heads, a list of EOS ids, saved sharded.
    "head_dim": dict(BASE, head_dim=24, num_key_value_heads=1, eos_token_id=[5, 7]),
}


def make(index, name, kwargs):
    torch.manual_seed(1000 + index)
    config = LlamaConfig(**kwargs)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).eval()
    # Random init has tiny std (0.02): scale weights up so logits are far from ties.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.15)
    d = os.path.join(out, name)
    model.save_pretrained(os.path.join(d, "model"), max_shard_size="20KB" if name == "head_dim" else "5GB")
    if name == "llama3_rope":
        path = os.path.join(d, "model", "config.json")
        cfg = json.load(open(path))
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        cfg["rope_scaling"] = rp
        json.dump(cfg, open(path, "w"), indent=2)

    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, config.vocab_size, (2, 12), generator=g)
    labels = input_ids.clone()
    labels[0, :3] = -100
    labels[1, 7] = -100
    ref = {"input_ids": input_ids, "labels": labels}

    model.zero_grad()
    outp = model(input_ids=input_ids, labels=labels)
    outp.loss.backward()
    ref["logits"] = outp.logits.detach()
    ref["loss"] = outp.loss.detach().reshape(1)
    for n, p in model.named_parameters():
        ref[f"grad.{n}"] = p.grad.detach().clone()

    prompt = torch.randint(3, config.vocab_size, (1, 5), generator=g)
    with torch.no_grad():
        mask = torch.ones_like(prompt)
        # 32 tokens with EOS disabled, and the same prompt with the config's EOS ids (may stop early).
        full = model.generate(prompt, attention_mask=mask, generation_config=GenerationConfig(
            max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0))
        stop = model.generate(prompt, attention_mask=mask, max_new_tokens=32, do_sample=False, pad_token_id=0)
    json.dump({"prompt": prompt[0].tolist(), "output": full[0].tolist(), "output_with_eos": stop[0].tolist()},
              open(os.path.join(d, "generate.json"), "w"))

    with torch.no_grad():
        bf = LlamaForCausalLM.from_pretrained(os.path.join(d, "model"), dtype=torch.bfloat16, attn_implementation="eager").eval()
        ref["logits_bf16"] = bf(input_ids=input_ids).logits.float()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))


for index, (name, kwargs) in enumerate(MODELS.items()):
    make(index, name, kwargs)

# ---- tokenizer ------------------------------------------------------------------------------
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
corpus = [
    "The quick brown fox jumps over the lazy dog. 1234567890",
    "Pisces understands and generates images with decoupled visual encoders.",
    "def forward(self, x):\n    return self.fc2(gelu(self.fc1(x)))\n",
    "日本語のテキストと中文文本，还有한국어。",
    "Emoji: 🐟🐠🎨✨ and accents: café, naïve, Ångström.",
] * 20
tok = Tokenizer(models.BPE(byte_fallback=False))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(corpus, trainer)
bos = tok.token_to_id("<|begin_of_text|>")
tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                                   special_tokens=[("<|begin_of_text|>", bos)])
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
fast.chat_template = CHAT_TEMPLATE
tdir = os.path.join(out, "tokenizer")
fast.save_pretrained(tdir)

texts = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ",
    "日本語のテキスト",
    "中文文本，还有한국어。",
    "🐟🐠 emoji 🎨✨",
    "café naïve Ångström",
    "unseen words: zebra quokka xylophone",
    "<|start_header_id|>user<|end_header_id|> special tokens inside <|eot_id|>",
    "code:\n\tdef f(x):\n\t\treturn x ** 2\n",
]
encodings = [{"text": t, "ids": fast.encode(t), "ids_no_special": fast.encode(t, add_special_tokens=False)} for t in texts]
for e in encodings:
    e["decoded"] = fast.decode(e["ids"])
    e["decoded_skip_special"] = fast.decode(e["ids"], skip_special_tokens=True)
chats = [
    [{"role": "user", "content": "Describe this image, please."}],
    [{"role": "system", "content": "You are Pisces."}, {"role": "user", "content": " 你好 🐟 "},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Draw a fish."}],
]
rendered = [{"messages": c, "add_generation_prompt": g, "text": fast.apply_chat_template(c, tokenize=False, add_generation_prompt=g)}
            for c in chats for g in (False, True)]
json.dump({"encodings": encodings, "chats": rendered}, open(os.path.join(out, "tokenizer_reference.json"), "w"), ensure_ascii=False, indent=1)
print(f"wrote llama reference outputs to {out}")
