"""Reads a safetensors file written by @pisces/tensor-cuda with the reference `safetensors`
package and prints a JSON summary (dtype, shape, sum as float64) so the test can compare."""

import json
import sys

from safetensors import safe_open

with safe_open(sys.argv[1], framework="pt") as f:
    out = {"metadata": f.metadata(), "tensors": {}}
    for k in f.keys():
        t = f.get_tensor(k)
        out["tensors"][k] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "sum": float(t.double().sum())}
print(json.dumps(out))
