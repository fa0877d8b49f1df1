// The vision reference fixtures (tools/reference/vision_reference.py), shared by the @pisces/image,
// @pisces/siglip and @pisces/gen-clip tests: made once per checkout.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateOnce } from "./generate-once.js";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const visionFixtures = join(repoRoot, "tools", "reference", "out", "vision");

export function visionReferenceFixtures(): string {
  generateOnce(join(visionFixtures, "images", "preprocess.safetensors"), visionFixtures, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "vision_reference.py"), visionFixtures], { stdio: "pipe" });
  });
  return visionFixtures;
}
