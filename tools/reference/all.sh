#!/usr/bin/env bash
# `pnpm reference`: regenerates every Python reference fixture the tests compare against (the tests
# also make them on first use, once per checkout). Needs tools/reference/requirements.txt installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
ref=tools/reference
rm -rf packages/*/test/fixtures/generated tools/reference/out
$PY $ref/tensor_cuda_reference.py packages/tensor-cuda/test/fixtures/generated
$PY $ref/llama_reference.py packages/llama/test/fixtures/generated
$PY $ref/smollm2_gguf_reference.py packages/llama/test/fixtures/generated
for s in scheduler unet vae decoder; do $PY $ref/${s}_reference.py packages/sdxl-decoder/test/fixtures/generated; done
touch packages/sdxl-decoder/test/fixtures/generated/complete
$PY $ref/pisces_reference.py tools/reference/out/pisces
$PY $ref/vision_reference.py tools/reference/out/vision
$PY $ref/siglip_text_reference.py tools/reference/out/vision/siglip_text tools/reference/out/vision/images/astronaut.png
$PY $ref/clip_reference.py tools/reference/out/vision/clip
$PY $ref/unet_grid_reference.py tools/reference/out/unet-grid
echo "reference fixtures regenerated"
