// The addon build: without libtorch it stops with one clear message saying how to get it.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../scripts/build-native.mjs", import.meta.url));
const run = (env: Record<string, string | undefined>) => {
  const { LIBTORCH: _, ...rest } = process.env;
  return spawnSync(process.execPath, [script, "--force"], { env: { ...rest, ...env } as NodeJS.ProcessEnv, encoding: "utf8" });
};

describe("building the addon", () => {
  it("explains how to get libtorch when Python has no torch", () => {
    const r = run({ PYTHON: "/nonexistent/python3" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/libtorch was not found/);
    expect(r.stderr).toMatch(/pip install torch==2\.13\.0 --index-url https:\/\/download.pytorch.org\/whl\/cpu/);
    expect(r.stderr).toMatch(/exited with status|said:/);
    expect(r.stderr).toMatch(/set LIBTORCH/);
  });

  it("rejects a LIBTORCH folder that holds no libtorch", () => {
    const r = run({ LIBTORCH: "/nonexistent/libtorch" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/LIBTORCH=\/nonexistent\/libtorch does not hold share\/cmake\/Torch\/TorchConfig.cmake/);
  });
});

describe("loading the addon says what to do", () => {
  const pkg = fileURLToPath(new URL("..", import.meta.url));
  const load = (dir: string) =>
    spawnSync(process.execPath, ["--import", "tsx", "-e", `import(${JSON.stringify(join(dir, "src", "native.ts"))}).then(() => console.log("loaded"))`], {
      encoding: "utf8",
      cwd: pkg,
    });
  const copy = (info: object | null, withAddon = true) => {
    const dir = mkdtempSync(join(tmpdir(), "pisces-addon-"));
    cpSync(join(pkg, "src"), join(dir, "src"), { recursive: true });
    mkdirSync(join(dir, "build", "Release"), { recursive: true });
    if (withAddon) cpSync(join(pkg, "build", "Release", "pisces_tensor.node"), join(dir, "build", "Release", "pisces_tensor.node"));
    if (info) writeFileSync(join(dir, "build", "Release", "build-info.json"), JSON.stringify(info));
    return dir;
  };
  const real = JSON.parse(readFileSync(join(pkg, "build", "Release", "build-info.json"), "utf8"));

  it("records what the addon was built against", () => {
    expect(real.torchVersion).toMatch(/^\d+\.\d+/);
    expect(real).toHaveProperty("libDir");
    expect(real).toHaveProperty("cuda");
  });
  it("loads when the record matches", () => {
    expect(load(copy(real)).stdout).toContain("loaded");
  });
  it("a torch upgrade is a clear error with the rebuild command", () => {
    const r = load(copy({ ...real, torchVersion: "2.9.0+cpu" }));
    expect(r.stderr).toMatch(/built for torch 2\.9\.0\+cpu but libtorch \d+\.\d+\.\d+ is loaded \(torch was upgraded\)\. Rebuild: npx pisces-tensor-build/);
  });
  it("a removed libtorch is a clear error", () => {
    expect(load(copy({ ...real, libDir: "/nonexistent/torch/lib" })).stderr).toMatch(
      /built against libtorch in \/nonexistent\/torch\/lib, which no longer exists/,
    );
  });
  it("a missing addon explains blocked install scripts (pnpm 10+, npm 11)", () => {
    const r = load(copy(null, false));
    expect(r.stderr).toMatch(/the libtorch addon is not built/);
    expect(r.stderr).toMatch(/pnpm approve-builds/);
    expect(r.stderr).toMatch(/onlyBuiltDependencies/);
    expect(r.stderr).toMatch(/npx pisces-tensor-build/);
  });
});
