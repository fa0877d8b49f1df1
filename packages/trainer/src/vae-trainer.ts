// Trains an AutoencoderKL (the decoder's VAE) on images: reconstruction (MSE or L1) of a posterior
// sample plus kl_weight x the KL divergence to N(0, I), as Stable Diffusion's VAE is trained
// (without its perceptual and adversarial terms, which need pretrained networks). The model is a
// diffusers vae/ folder; without weights in it the VAE starts from its config (from scratch).
// The final folder is a diffusers vae/ folder (config.json + diffusion_pytorch_model.safetensors).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadImageResized, toPixelValues } from "@pisces/image";
import { AutoencoderKL, type AutoencoderKLConfigJson, resolveAutoencoderKLConfig } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { DataError, isImage } from "./data.js";
import { writeFinalFolder } from "./checkpoint.js";
import { runTraining, type TrainEvent, type TrainOptions } from "./loop.js";
import type { Recipe } from "./recipe.js";

/** Reconstruction + KL of a batch; `noise` draws the posterior sample (reparameterization). */
export function vaeLoss(
  vae: AutoencoderKL,
  pixels: T.Tensor,
  noise: T.Tensor,
  options: { klWeight: number; reconstruction?: "mse" | "l1" },
): { loss: T.Tensor; reconstruction: T.Tensor; kl: T.Tensor } {
  return T.scope(() => {
    const posterior = vae.encode(pixels);
    const z = posterior.mean.add(posterior.std.mul(noise));
    const recon = vae.decode(z).to("float32");
    const target = pixels.to("float32");
    const reconstruction = options.reconstruction === "l1" ? recon.sub(target).abs().mean() : T.mseLoss(recon, target);
    // KL(N(mean, var) || N(0, 1)) summed over latent elements, averaged over the batch (diffusers' DiagonalGaussianDistribution.kl)
    const kl = posterior.mean.pow(2).add(posterior.std.pow(2)).sub(1).sub(posterior.logvar).sum([1, 2, 3]).mul(0.5).mean();
    return { loss: reconstruction.add(kl.mul(options.klWeight)), reconstruction, kl };
  });
}

/** The VAE of a vae/ folder: its weights if present, else a fresh one from config.json, initialised from `seed`. */
function loadOrCreate(dir: string, seed: number): AutoencoderKL {
  if (existsSync(join(dir, "diffusion_pytorch_model.safetensors")) || existsSync(join(dir, "diffusion_pytorch_model.safetensors.index.json")))
    return AutoencoderKL.fromPretrained(dir);
  const { json, path } = T.readConfigJson(dir, "diffusers AutoencoderKL");
  const config = resolveAutoencoderKLConfig(json as AutoencoderKLConfigJson, path);
  T.manualSeed(seed); // the same recipe starts from the same weights
  return new AutoencoderKL(config);
}

export async function* trainVae(recipe: Recipe, options: TrainOptions = {}): AsyncGenerator<TrainEvent> {
  const vae = loadOrCreate(recipe.model, recipe.seed);
  const size = recipe.resolution;
  try {
    if (size % vae.downsampleFactor) throw new DataError(`resolution ${size} is not a multiple of ${vae.downsampleFactor} (the VAE's down-sampling)`);
    yield* runTraining<T.Tensor>(
      recipe,
      {
        module: vae,
        async prepare(record, source) {
          const image = (record as { image?: unknown }).image;
          if (!isImage(image)) return `${source}: no image`;
          const rgb = await loadImageResized(image, { width: size, height: size }, "bicubic");
          return toPixelValues([rgb], { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }); // [-1, 1]
        },
        disposeExample: (t) => t.dispose(),
        loss(list, generator) {
          const pixels = T.cat(list, 0);
          const f = vae.downsampleFactor;
          const noise = T.randn([pixels.size(0), vae.config.latentChannels, size / f, size / f], { generator });
          const r = vaeLoss(vae, pixels, noise, { klWeight: recipe.klWeight, reconstruction: recipe.reconstructionLoss });
          return { loss: r.loss, parts: { reconstruction: r.reconstruction, kl: r.kl } };
        },
        finish: () => writeFinalFolder(recipe.model, recipe.outputDir, "diffusion_pytorch_model.safetensors", vae.stateDict()),
      },
      options,
    );
  } finally {
    vae.dispose();
  }
}
