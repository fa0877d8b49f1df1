"""transformers side of `pnpm bench` for @pisces/llama. Makes a SmolLM2-135M-shaped model with
random weights (saved once to MODEL_DIR, which the TypeScript side loads too), then times prefill
of a 512-token prompt and greedy decoding at batch 1 and 8 (eager attention, float32, CPU).
Usage: python3 tools/reference/llama_bench.py MODEL_DIR THREADS NEW_TOKENS [decode1]
(decode1: only batch-1 decoding, for the rows measured under load)"""

import json
import os
import sys

import torch
from transformers import GenerationConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_shape import ensure_random_smollm2  # noqa: E402
from timing import best_time  # noqa: E402

model_dir, threads, new_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
only_decode1 = len(sys.argv) > 4 and sys.argv[4] == "decode1"
torch.set_num_threads(threads)

ensure_random_smollm2(model_dir)

model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
g = torch.Generator().manual_seed(0)


result = {"transformers": __import__("transformers").__version__}
with torch.no_grad():
    prompt = torch.randint(3, 49152, (1, 512), generator=g)
    if not only_decode1:
        model(input_ids=prompt)  # warm-up
        result["prefill_s"] = best_time(lambda: model(input_ids=prompt), 3)
    for batch in (1,) if only_decode1 else (1, 8):
        ids = torch.randint(3, 49152, (batch, 16), generator=g)
        cfg = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        short = GenerationConfig(max_new_tokens=1, do_sample=False, eos_token_id=None, pad_token_id=0)
        model.generate(ids, generation_config=cfg)  # warm-up
        total = best_time(lambda: model.generate(ids, generation_config=cfg), 3)
        first = best_time(lambda: model.generate(ids, generation_config=short), 3)
        # decode time: everything after the first token (prefill + first sample)
        result[f"decode_b{batch}_s"] = (total - first) / (new_tokens - 1)
print(json.dumps(result))
