"""Reference outputs for @pisces/tensor-cuda, made with Python PyTorch.

Writes into the folder given as the first argument:
  mlp_init.safetensors      initial weights of a 2-layer MLP and its data (x, y)
  mlp_adamw.safetensors     weights after 5 AdamW steps, and the 5 losses
  mlp_sgd.safetensors       weights after 5 SGD (momentum, nesterov, weight decay) steps with
                            gradient clipping, and the 5 losses
  schedules.json            learning rates of the two warm-up schedules
  dtypes.safetensors        one tensor per dtype, written by the `safetensors` package
Usage: python3 tools/reference/tensor_cuda_reference.py OUT_DIR
"""

import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


model = mlp()
x = torch.randn(32, 8)
y = torch.randn(32, 4)
init = {f"fc1.{k.split('.')[1]}" if k.startswith("0.") else f"fc2.{k.split('.')[1]}": v.clone() for k, v in model.state_dict().items()}
save_file({**init, "x": x, "y": y}, os.path.join(out, "mlp_init.safetensors"))


def train(opt_factory, clip=None):
    m = mlp()
    m.load_state_dict({k.replace("fc1.", "0.").replace("fc2.", "2."): v for k, v in init.items()})
    opt = opt_factory(m.parameters())
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(x), y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(m.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    weights = {k.replace("0.", "fc1.", 1) if k.startswith("0.") else k.replace("2.", "fc2.", 1): v.detach().clone() for k, v in m.state_dict().items()}
    return weights, losses


w, losses = train(lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1))
save_file({**w, "losses": torch.tensor(losses, dtype=torch.float64)}, os.path.join(out, "mlp_adamw.safetensors"))

w, losses = train(lambda p: torch.optim.SGD(p, lr=5e-2, momentum=0.9, nesterov=True, weight_decay=1e-3), clip=0.5)
save_file({**w, "losses": torch.tensor(losses, dtype=torch.float64)}, os.path.join(out, "mlp_sgd.safetensors"))

# Learning-rate schedules, computed as transformers does (constant / cosine with warm-up).
def constant(step, warmup):
    return step / max(1, warmup) if step < warmup else 1.0


def cosine(step, warmup, total, cycles=0.5):
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))


p = torch.nn.Parameter(torch.zeros(1))
opt = torch.optim.SGD([p], lr=0.1)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(s, 3, 10))
cos_lrs = []
for _ in range(12):
    cos_lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
opt = torch.optim.SGD([p], lr=0.1)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: constant(s, 4))
const_lrs = []
for _ in range(8):
    const_lrs.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
with open(os.path.join(out, "schedules.json"), "w") as f:
    json.dump({"cosine": cos_lrs, "constant": const_lrs}, f)

# Every dtype, written by the reference safetensors implementation.
g = torch.Generator().manual_seed(1)
base = torch.randn(3, 5, generator=g) * 10
dtypes = {
    "float32": base.float(),
    "float64": base.double(),
    "float16": base.half(),
    "bfloat16": base.bfloat16(),
    "int64": base.long(),
    "int32": base.int(),
    "int16": base.short(),
    "int8": base.clamp(-100, 100).to(torch.int8),
    "uint8": base.abs().clamp(0, 255).to(torch.uint8),
    "bool": base > 0,
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 4),
}
save_file(dtypes, os.path.join(out, "dtypes.safetensors"), metadata={"format": "pt", "note": "reference"})
print(f"wrote reference outputs to {out}")
