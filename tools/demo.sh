#!/usr/bin/env bash
# pnpm demo ["caption"]: Pisces's two jobs on the shipped shapes model (@pisces/pisces-shapes-tiny):
# it draws the caption (64 autoregressive gen-CLIP vectors -> SDXL-shaped decoder), then looks at
# its own picture and describes it and answers a question about it (SigLIP -> LLM).
set -euo pipefail
cd "$(dirname "$0")/.."
caption="${1:-a red circle to the left of a blue square}"
out="${DEMO_OUTPUT:-demo.png}"
pisces() { node --import tsx --conditions=@pisces/source apps/cli/src/cli.ts "$@"; }
echo "> pisces generate \"$caption\" -o $out"
pisces generate "$caption" -o "$out" --seed 0
echo "> pisces caption $out"
pisces caption "$out"
echo "> pisces ask $out \"how many objects are there?\""
pisces ask "$out" "how many objects are there?"
