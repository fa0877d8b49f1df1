// Reading a diffusers component folder (config.json + diffusion_pytorch_model.safetensors, or its
// shards) through tensor-cuda's one loading path. Pickled .bin weights are never read. diffusers'
// keys equal the module paths here, so there is no rename.
import * as T from "@pisces/tensor-cuda";

/** config.json of a diffusers component folder, checked (folder, file type, size, JSON). */
export function readDiffusersConfig(dir: string, component: string): { json: unknown; path: string } {
  return T.readConfigJson(dir, `diffusers ${component}`);
}

/** Builds the model on the meta device (within the checkpoint's tensor budget) and streams the folder's weights in, strictly. */
export function loadDiffusersModel<M extends T.nn.Module>(
  dir: string,
  what: string,
  build: (options: { dtype: T.DType; device: "meta" }) => M,
  options: T.PretrainedOptions,
): M {
  const weights = T.openWeights(dir, ["diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors"]);
  return T.loadPretrained({ what, weights, build, options });
}
