#!/usr/bin/env bash
# Installs what the project needs on a clean machine: pnpm, the Python reference stack
# (CPU PyTorch 2.13.0, whose libtorch the addon binds), and the workspace (which builds the addon).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "12.4.2" ]; then
  npm install -g pnpm@12.4.2
fi
# gloo/ headers for c10d's Gloo process group (the torch wheel exports Gloo but ships no headers;
# only the headers are used). Optional: without them the addon builds without distributed training.
if [ ! -f /usr/include/gloo/rendezvous/store.h ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libgloo-dev) >/dev/null 2>&1 ||
    echo "setup: libgloo-dev could not be installed; @pisces/tensor-cuda builds without Gloo (no multi-process training)" >&2
fi
# Debian's chromium for the demo page's browser test (playwright-core drives it; it downloads nothing).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 ||
    echo "setup: chromium could not be installed; the demo page's browser test will say so" >&2
fi
python3 -m pip install --quiet --disable-pip-version-check -r tools/reference/requirements.txt
pnpm install --frozen-lockfile
