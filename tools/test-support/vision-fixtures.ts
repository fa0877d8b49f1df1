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

/** What `pixelDifferences` needs of @pisces/tensor-cuda (structural, so tools/ needs no dependency). */
interface Tensorish<X> {
  select(dim: number, index: number): X;
  sub(other: X): X;
  abs(): X;
  max(): X;
  mean(): X;
  item(): number;
}

/**
 * Max and mean abs difference of each image in `pixelValues` (B, 3, H, W) from the reference
 * processor's values for `names[i]` (`reference(name)`), printed with PISCES_VERBOSE set.
 */
export function pixelDifferences<X extends Tensorish<X>>(
  scope: <R>(fn: () => R) => R,
  pixelValues: X,
  names: readonly string[],
  reference: (name: string) => X,
): { name: string; max: number; mean: number }[] {
  const rows = names.map((name, i) =>
    scope(() => {
      const d = pixelValues.select(0, i).sub(reference(name)).abs();
      return { name, max: d.max().item(), mean: d.mean().item() };
    }),
  );
  if (process.env.PISCES_VERBOSE) console.log(rows.map((r) => `${r.name}: max ${r.max.toFixed(4)} mean ${r.mean.toFixed(5)}`).join("\n"));
  return rows;
}

/** The CLIP (both towers) fixtures: model, batch outputs and one gen-CLIP training step (tools/reference/clip_reference.py). */
export function clipFixtures(): string {
  const out = join(visionFixtures, "clip");
  generateOnce(join(out, "step.safetensors"), out, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "clip_reference.py"), out], { stdio: "pipe" });
  });
  return out;
}

/** The grid-conditioned UNet fixture (tools/reference/unet_grid_reference.py). */
export function unetGridFixtures(): string {
  const out = join(repoRoot, "tools", "reference", "out", "unet-grid");
  generateOnce(join(out, "reference.safetensors"), out, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "unet_grid_reference.py"), out], { stdio: "pipe" });
  });
  return out;
}
