// The Pisces reference fixtures (tools/reference/pisces_reference.py): tiny random Pisces folders
// and the PyTorch reference's outputs, shared by the @pisces/model and @pisces/sampler tests; made once per checkout.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateOnce } from "./generate-once.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const piscesFixtures = join(repoRoot, "tools", "reference", "out", "pisces");
export const piscesReferenceScript = join(repoRoot, "tools", "reference", "pisces_reference.py");
export const PISCES_CONFIGS = ["tied_k2", "untied_k4"] as const;

/** The folder of one reference config: model/ (a Pisces folder), images, reference.safetensors and reference.json. */
export function piscesReference(config: (typeof PISCES_CONFIGS)[number] = "tied_k2"): string {
  generateOnce(join(piscesFixtures, "complete"), piscesFixtures, () => {
    execFileSync(process.env.PYTHON ?? "python3", [piscesReferenceScript, piscesFixtures], { stdio: "pipe" });
  });
  return join(piscesFixtures, config);
}
