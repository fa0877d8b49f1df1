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

/** The SigLIP tokenizer and zero-shot fixtures (tools/reference/siglip_text_reference.py). */
export function siglipTextFixtures(): string {
  const images = join(visionReferenceFixtures(), "images");
  const out = join(visionFixtures, "siglip_text");
  generateOnce(join(out, "zero_shot", "reference.safetensors"), out, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "siglip_text_reference.py"), out, join(images, "astronaut.png")], {
      stdio: "pipe",
    });
  });
  return out;
}
