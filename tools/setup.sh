#!/usr/bin/env bash
# Installs what the project needs on a clean machine: pnpm, the Python reference stack
# (CPU PyTorch 2.13.0, whose libtorch the addon binds), and the workspace (which builds the addon).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "12.4.2" ]; then
  npm install -g pnpm@12.4.2
fi
python3 -m pip install --quiet --disable-pip-version-check -r tools/reference/requirements.txt
pnpm install --frozen-lockfile
