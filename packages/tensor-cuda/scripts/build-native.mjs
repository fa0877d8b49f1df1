#!/usr/bin/env node
// Builds the libtorch addon with plain CMake. libtorch comes from $LIBTORCH (an unpacked libtorch
// folder) or from the Python install (`pip install torch`); nothing is downloaded.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const output = join(root, "build", "Release", "pisces_tensor.node");
const source = join(root, "native", "addon.cc");
const force = process.argv.includes("--force");

function fail(message) {
  console.error(`\n@pisces/tensor-cuda: ${message}\n`);
  process.exit(1);
}

if (!force && existsSync(output) && statSync(output).mtimeMs > statSync(source).mtimeMs) {
  console.log("@pisces/tensor-cuda: addon is up to date");
  process.exit(0);
}

function findLibtorch() {
  if (process.env.LIBTORCH) {
    const cmakeDir = join(process.env.LIBTORCH, "share", "cmake");
    if (!existsSync(join(cmakeDir, "Torch", "TorchConfig.cmake")))
      fail(`LIBTORCH=${process.env.LIBTORCH} does not hold share/cmake/Torch/TorchConfig.cmake; point it at an unpacked libtorch folder.`);
    return cmakeDir;
  }
  const python = process.env.PYTHON ?? "python3";
  const probe = spawnSync(python, ["-c", "import torch; print(torch.utils.cmake_prefix_path)"], { encoding: "utf8" });
  if (probe.status === 0 && probe.stdout.trim()) return probe.stdout.trim();
  fail(
    "libtorch was not found.\n" +
      "  This package binds libtorch (the C++ core of PyTorch) and builds against it at install time.\n" +
      "  Either install PyTorch for python3:   pip install torch==2.13.0\n" +
      "  or set LIBTORCH to an unpacked libtorch folder (with share/cmake/Torch), then reinstall.\n" +
      `  (probe: ${python} said: ${(probe.stderr || probe.error?.message || "").trim().split("\n").pop()})`,
  );
}

function findNodeApiHeaders() {
  try {
    const require = createRequire(import.meta.url);
    return dirname(require.resolve("node-api-headers/include/node_api.h"));
  } catch {
    fail("the npm package node-api-headers is missing; run the install again.");
  }
}

const prefix = findLibtorch();
const headers = findNodeApiHeaders();
const buildDir = join(root, "build", "cmake");
const run = (args) => execFileSync("cmake", args, { stdio: "inherit", cwd: root });
try {
  run(["-S", root, "-B", buildDir, `-DCMAKE_PREFIX_PATH=${prefix}`, `-DNODE_API_HEADERS=${headers}`, "-DCMAKE_BUILD_TYPE=Release"]);
  run(["--build", buildDir, "-j", String(Math.max(1, Math.min(4, (await import("node:os")).availableParallelism())))]);
} catch (error) {
  fail(`the CMake build failed (${error.message}). Is cmake >= 3.18 and a C++17 compiler installed?`);
}
console.log(`@pisces/tensor-cuda: built ${output}`);
