// Reading a diffusers component folder (config.json + diffusion_pytorch_model.safetensors, or its
// shards) into a model built on the meta device. Pickled .bin weights are never read.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";

export function readDiffusersConfig<J>(dir: string, component: string): J {
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new Error(`${dir}: no config.json; expected a diffusers ${component} folder`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as J;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Streams the folder's weights into `model` (strict), converting to dtype and device. */
export function loadDiffusersWeights<M extends T.nn.Module>(model: M, dir: string, options: { dtype: T.DType; device: T.Device }): M {
  const file = ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json"].map((f) => join(dir, f)).find(existsSync);
  if (!file) throw new Error(`${dir}: no diffusion_pytorch_model.safetensors (pickled .bin weights are not read)`);
  model.loadStateDict(T.loadSafetensors(file), { assign: true, ...options });
  return model.eval();
}
