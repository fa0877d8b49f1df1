"""Reference for @pisces/tensor-cuda's quantized layers: weights quantized to GGML block formats by
gguf-py (the llama.cpp project's Python package), its dequantization, x @ W^T in float64, and
x8 @ W^T with x8 the activations through gguf-py's Q8_0 (what the few-row kernel multiplies, as
llama.cpp's CPU backend does).
Usage: python3 tools/reference/quant_reference.py OUT_DIR   (writes OUT_DIR/quant.safetensors)"""

import os
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType, dequantize, quantize
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
N, K, M = 40, 256, 17
tensors = {}
x = rng.standard_normal((M, K)).astype(np.float32)
bias = rng.standard_normal(N).astype(np.float32)
x8 = dequantize(quantize(x, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0).astype(np.float64)
tensors["x"] = torch.from_numpy(x)
tensors["bias"] = torch.from_numpy(bias)
for name in ["Q4_0", "Q4_1", "Q8_0"]:
    qtype = GGMLQuantizationType[name]
    w = (rng.standard_normal((N, K)) * 0.05).astype(np.float32)
    w[3, :32] = 0.0  # an all-zero block (scale 0)
    packed = quantize(w, qtype)  # (N, row bytes) uint8
    deq = dequantize(packed, qtype).astype(np.float32)  # (N, K)
    tensors[f"{name}.weight"] = torch.from_numpy(w)
    tensors[f"{name}.packed"] = torch.from_numpy(np.ascontiguousarray(packed))
    tensors[f"{name}.dequantized"] = torch.from_numpy(deq)
    tensors[f"{name}.y"] = torch.from_numpy((x.astype(np.float64) @ deq.astype(np.float64).T + bias).astype(np.float32))
    tensors[f"{name}.y8"] = torch.from_numpy((x8 @ deq.astype(np.float64).T + bias).astype(np.float32))
# K-quants: gguf-py dequantizes them but does not quantize, so their blocks are random bytes with
# sane float16 scales (every byte pattern of the rest is a valid block).
for name, block_bytes, scale_offsets in [("Q4_K", 144, [0, 2]), ("Q6_K", 210, [208])]:
    qtype = GGMLQuantizationType[name]
    blocks = rng.integers(0, 256, size=(N, K // 256, block_bytes), dtype=np.uint8)
    for o in scale_offsets:
        scales = (rng.uniform(0.5, 1.5, size=(N, K // 256)) * (1e-3 if name == "Q4_K" else 5e-4)).astype(np.float16)
        blocks[:, :, o:o + 2] = scales.view(np.uint8).reshape(N, K // 256, 2)
    packed = blocks.reshape(N, -1)
    deq = dequantize(packed, qtype).astype(np.float32)
    tensors[f"{name}.packed"] = torch.from_numpy(np.ascontiguousarray(packed))
    tensors[f"{name}.dequantized"] = torch.from_numpy(deq)
    tensors[f"{name}.y"] = torch.from_numpy((x.astype(np.float64) @ deq.astype(np.float64).T + bias).astype(np.float32))
    tensors[f"{name}.y8"] = torch.from_numpy((x8 @ deq.astype(np.float64).T + bias).astype(np.float32))
save_file(tensors, os.path.join(out, "quant.safetensors"))
