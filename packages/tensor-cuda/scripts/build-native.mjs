#!/usr/bin/env node
// Builds the libtorch addon with plain CMake. libtorch comes from $LIBTORCH (an unpacked libtorch
// folder) or from the Python install (`pip install torch`); nothing is downloaded. The build
// records what it was built against (build/Release/build-info.json: torch version, CUDA or not,
// libtorch folder); a later run rebuilds when that changed, and at load time a mismatch is a clear
// error naming the command that rebuilds (`npx pisces-tensor-build`, this script).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const output = join(root, "build", "Release", "pisces_tensor.node");
const infoPath = join(root, "build", "Release", "build-info.json");
/** The newest modification time among the native sources (addon.cc and native/kernels/*). */
function sourcesMtime() {
  const dirs = [join(root, "native"), join(root, "native", "kernels")];
  let newest = statSync(join(root, "CMakeLists.txt")).mtimeMs;
  for (const dir of dirs)
    if (existsSync(dir)) for (const f of readdirSync(dir)) if (/\.(cc|h|hpp)$/.test(f)) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  return newest;
}
const force = process.argv.includes("--force");

function fail(message) {
  console.error(`\n@pisces/tensor-cuda: ${message}\n`);
  process.exit(1);
}

const CPU_TORCH_HINT =
  "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu   (CPU only, ~200 MB; a plain `pip install torch` may pull a multi-GB CUDA build)";

/** Where libtorch is and what it is: {cmakePrefix, torchVersion, cuda, libDir}. */
function findLibtorch() {
  if (process.env.LIBTORCH) {
    const cmakeDir = join(process.env.LIBTORCH, "share", "cmake");
    if (!existsSync(join(cmakeDir, "Torch", "TorchConfig.cmake")))
      fail(`LIBTORCH=${process.env.LIBTORCH} does not hold share/cmake/Torch/TorchConfig.cmake; point it at an unpacked libtorch folder.`);
    const versionFile = join(process.env.LIBTORCH, "build-version");
    const torchVersion = existsSync(versionFile) ? readFileSync(versionFile, "utf8").trim() : "unknown";
    return {
      cmakePrefix: cmakeDir,
      torchVersion,
      cuda: /\+cu\d+/.test(torchVersion) ? torchVersion.split("+cu")[1] : null,
      libDir: join(process.env.LIBTORCH, "lib"),
    };
  }
  const python = process.env.PYTHON ?? "python3";
  const probe = spawnSync(
    python,
    [
      "-c",
      "import json, os, torch; print(json.dumps({'cmakePrefix': torch.utils.cmake_prefix_path, 'torchVersion': torch.__version__, 'cuda': torch.version.cuda, 'libDir': os.path.join(os.path.dirname(torch.__file__), 'lib')}))",
    ],
    { encoding: "utf8" },
  );
  if (probe.status === 0 && probe.stdout.trim()) {
    try {
      return JSON.parse(probe.stdout.trim().split("\n").pop());
    } catch {}
  }
  const said = (probe.stderr || probe.error?.message || "").trim().split("\n").pop();
  fail(
    "libtorch was not found.\n" +
      "  This package binds libtorch (the C++ core of PyTorch) and builds against it at install time.\n" +
      `  Either install PyTorch for python3:   ${CPU_TORCH_HINT}\n` +
      "                             (CUDA:  any CUDA build of PyTorch >= 2.11, e.g. pip install torch==2.13.0)\n" +
      "  or set LIBTORCH to an unpacked libtorch folder (with share/cmake/Torch), then rebuild: npx pisces-tensor-build\n" +
      `  (probe: ${python} ${said ? `said: ${said}` : `exited with status ${probe.status ?? "none"} and printed nothing`})`,
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

const torch = findLibtorch();
// c10d's Gloo group needs gloo/ headers (Debian's libgloo-dev): a build made before they were
// installed is redone once they are there.
const glooHeaders = [process.env.GLOO_INCLUDE_DIR, "/usr/include", "/usr/local/include"].some((d) => d && existsSync(join(d, "gloo", "rendezvous", "store.h")));
const wanted = { torchVersion: torch.torchVersion, cuda: torch.cuda ?? null, libDir: torch.libDir, nodeModules: process.versions.modules, gloo: glooHeaders };
const recorded = existsSync(infoPath) ? JSON.parse(readFileSync(infoPath, "utf8")) : null;
const sameTarget = recorded && ["torchVersion", "cuda", "libDir", "nodeModules", "gloo"].every((k) => recorded[k] === wanted[k]);
if (!force && existsSync(output) && statSync(output).mtimeMs > sourcesMtime() && sameTarget) {
  console.log(`@pisces/tensor-cuda: addon is up to date (torch ${wanted.torchVersion}${wanted.cuda ? `, CUDA ${wanted.cuda}` : ", CPU"})`);
  process.exit(0);
}
if (recorded && !sameTarget)
  console.log(
    `@pisces/tensor-cuda: rebuilding: built for torch ${recorded.torchVersion} at ${recorded.libDir}, now torch ${wanted.torchVersion} at ${wanted.libDir}`,
  );

const headers = findNodeApiHeaders();
const buildDir = join(root, "build", "cmake");
const run = (args) => execFileSync("cmake", args, { stdio: "inherit", cwd: root });
try {
  run(["-S", root, "-B", buildDir, `-DCMAKE_PREFIX_PATH=${torch.cmakePrefix}`, `-DNODE_API_HEADERS=${headers}`, "-DCMAKE_BUILD_TYPE=Release"]);
  run(["--build", buildDir, "-j", String(Math.max(1, Math.min(4, (await import("node:os")).availableParallelism())))]);
} catch (error) {
  fail(`the CMake build failed (${error.message}). It needs cmake >= 3.18 and a C++20 compiler (g++ >= 10 or clang >= 12).`);
}
writeFileSync(infoPath, `${JSON.stringify({ ...wanted, builtAt: new Date().toISOString() }, null, 2)}\n`);
console.log(`@pisces/tensor-cuda: built ${output} (torch ${wanted.torchVersion}${wanted.cuda ? `, CUDA ${wanted.cuda}` : ", CPU"})`);
