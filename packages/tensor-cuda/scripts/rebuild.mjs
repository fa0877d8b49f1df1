#!/usr/bin/env node
// `npx pisces-tensor-build`: rebuilds the libtorch addon inside node_modules (after installing or
// upgrading PyTorch, switching CPU and CUDA builds, or when install scripts were blocked).
process.argv.push("--force");
await import("./build-native.mjs");
