"""Python PyTorch side of `pnpm bench` for @pisces/tensor-cuda. Prints JSON timings (seconds).
Usage: python3 tools/reference/tensor_cuda_bench.py THREADS"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_time  # noqa: E402

torch.set_num_threads(int(sys.argv[1]))


# (a) per-op overhead: 100k adds of a 4-element tensor
x = torch.ones(4)


def adds():
    for _ in range(100_000):
        y = x + x  # noqa: F841


adds()
small_add = best_time(adds, 5) / 100_000

# (b) one training step of a 2-layer MLP, batch 64, width 1024, AdamW
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
inp = torch.randn(64, 1024)
target = torch.randn(64, 1024)


def train_steps(n=20):
    def run():
        for _ in range(n):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(inp), target)
            loss.backward()
            opt.step()

    return run


train_steps(5)()
train_step = best_time(train_steps(), 5) / 20

# (c) 2048 x 2048 float32 matmul
a = torch.randn(2048, 2048)
b = torch.randn(2048, 2048)


def matmuls(n=5):
    def run():
        for _ in range(n):
            torch.matmul(a, b)

    return run


matmuls(2)()
matmul = best_time(matmuls(), 5) / 5

print(json.dumps({"torch": torch.__version__, "small_add": small_add, "train_step": train_step, "matmul": matmul}))
