// Installs as an npm user would: packs @pisces/tensor-cuda and @pisces/sdxl-decoder (pnpm pack,
// which rewrites workspace versions), installs the tarballs with npm into an empty folder (the
// addon builds there against the machine's libtorch), and decodes an image from a tiny diffusers
// folder through the public API only. The result must equal the same decode run from source.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as T from "@pisces/tensor-cuda";
import { beforeAll, describe, expect, it } from "vitest";
import { SdxlDecoder } from "../src/index.js";
import { fixtures, referenceFixtures } from "./helpers.js";

const packages = fileURLToPath(new URL("../..", import.meta.url));
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc"); // the workspace's compiler, run on the user's project
const script = `
import * as T from "@pisces/tensor-cuda";
import { SdxlDecoder } from "@pisces/sdxl-decoder";
const decoder = SdxlDecoder.fromPretrained(process.argv[2]);
const cond = T.randn([1, 4, decoder.unet.config.crossAttentionDim], { generator: new T.Generator({ seed: 1 }) });
const { png, images } = await decoder.decode(cond, { steps: 2, height: 32, width: 32, seed: 3 });
console.log(JSON.stringify({ shape: images.shape, pixels: Array.from(images.toArray()), png: png[0].subarray(1, 4).toString() }));
`;

// asynchronous on purpose: the npm install builds the addon (a minute or more on a busy machine),
// and a synchronous wait that long blocks the test worker's event loop past vitest's RPC timeout
const exec = promisify(execFile);
const run = async (file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<string> =>
  (await exec(file, args, { ...options, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 })).stdout;

beforeAll(() => {
  referenceFixtures();
});

describe("packed install (npm)", () => {
  it("installs the tarballs into an empty folder and decodes an image, equal to the source build", async () => {
    const work = mkdtempSync(join(tmpdir(), "pisces-pack-"));
    const packs = join(work, "packs");
    for (const name of ["tensor-cuda", "sdxl-decoder"]) {
      const dir = join(packages, name);
      await run("npx", ["tsup"], { cwd: dir }); // dist/ as published
      await run("pnpm", ["pack", "--pack-destination", packs], { cwd: dir });
    }
    const project = join(work, "project");
    await run("mkdir", ["-p", project], { cwd: work });
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
    const tarballs = readdirSync(packs).map((f) => join(packs, f));
    await run("npm", ["install", "--no-audit", "--no-fund", ...tarballs], { cwd: project, env: { ...process.env, npm_config_loglevel: "error" } });
    const installed = JSON.parse(readFileSync(join(project, "node_modules", "@pisces", "sdxl-decoder", "package.json"), "utf8"));
    expect(installed.peerDependencies["@pisces/tensor-cuda"]).toBe("^0.1.0"); // workspace:^ rewritten
    // a TypeScript consumer (moduleResolution nodenext, strict) type-checks against the shipped .d.ts
    writeFileSync(
      join(project, "check.ts"),
      'import * as T from "@pisces/tensor-cuda";\nimport { SdxlDecoder } from "@pisces/sdxl-decoder";\nconst d: SdxlDecoder = SdxlDecoder.fromPretrained("x");\nconst t: T.Tensor = T.zeros([1]);\nexport { d, t };\n',
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, skipLibCheck: false },
        files: ["check.ts"],
      }),
    );
    await run(process.execPath, [tsc, "-p", project], { cwd: project });
    writeFileSync(join(project, "decode.mjs"), script);
    const out = JSON.parse(await run(process.execPath, ["decode.mjs", join(fixtures, "decoder")], { cwd: project }));
    expect(out.shape).toEqual([1, 3, 32, 32]);
    expect(out.png).toBe("PNG");
    // the same decode from source
    const decoder = SdxlDecoder.fromPretrained(join(fixtures, "decoder"));
    const cond = T.randn([1, 4, decoder.unet.config.crossAttentionDim], { generator: new T.Generator({ seed: 1 }) });
    const { images } = await decoder.decode(cond, { steps: 2, height: 32, width: 32, seed: 3 });
    const ours = Array.from(images.toArray() as Float32Array);
    expect(Math.max(...ours.map((v, i) => Math.abs(v - out.pixels[i])))).toBeLessThanOrEqual(1e-6);
  }, 900_000);
});
