// The diffusers reference fixtures (tools/reference/*_reference.py), generated once per checkout
// even though vitest runs the test files in parallel processes.
import { execFileSync } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateOnce } from "../../../tools/test-support/generate-once.js";

const here = dirname(fileURLToPath(import.meta.url));
export const fixtures = join(here, "fixtures", "generated");
const scripts = ["scheduler_reference.py", "unet_reference.py", "vae_reference.py", "decoder_reference.py"];

export function referenceFixtures(): string {
  generateOnce(join(fixtures, "complete"), fixtures, () => {
    for (const script of scripts)
      execFileSync(process.env.PYTHON ?? "python3", [join(here, "..", "..", "..", "tools", "reference", script), fixtures], { stdio: "pipe" });
    closeSync(openSync(join(fixtures, "complete"), "w"));
  });
  return fixtures;
}

export { generateOnce };
