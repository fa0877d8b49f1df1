"""transformers side of @pisces/llama's training-memory bench: one training step (forward +
backward) of a SmolLM2-135M-shaped LlamaForCausalLM (random weights, made once in MODEL_DIR and
loaded by both sides), plain or with gradient_checkpointing_enable(), float32, CPU. Measures the
step's time and its peak resident memory above the memory at its start (Linux: VmHWM is reset
through /proc/self/clear_refs after a warm-up step that allocated the gradients).
Usage: python3 tools/reference/llama_train_memory.py MODEL_DIR THREADS BATCH SEQUENCE plain|checkpointing
Prints one JSON line."""

import json
import os
import sys
import time

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_shape import ensure_random_smollm2  # noqa: E402

model_dir, threads, batch, sequence, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)

ensure_random_smollm2(model_dir)


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").train()
if mode == "checkpointing":
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
ids = torch.randint(3, 49152, (batch, sequence), generator=torch.Generator().manual_seed(0))


def step():
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.item()


loss = step()  # warm-up: allocates the gradients
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = status("VmRSS")
t0 = time.perf_counter()
step()
seconds = time.perf_counter() - t0
print(json.dumps({"torch": torch.__version__, "transformers": __import__("transformers").__version__, "step_s": seconds,
                  "peak_above_start_bytes": status("VmHWM") - start, "loss": loss}))
