// The addon build: without libtorch it stops with one clear message saying how to get it.
import { spawnSync } from "node:child_process";
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
    expect(r.stderr).toMatch(/pip install torch==2\.13\.0/);
    expect(r.stderr).toMatch(/set LIBTORCH/);
  });

  it("rejects a LIBTORCH folder that holds no libtorch", () => {
    const r = run({ LIBTORCH: "/nonexistent/libtorch" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/LIBTORCH=\/nonexistent\/libtorch does not hold share\/cmake\/Torch\/TorchConfig.cmake/);
  });
});
