// SigLIP's image preprocessing (transformers' SiglipImageProcessor), driven by
// preprocessor_config.json: resize to a fixed height x width (no crop), rescale, normalize.
import { type ImageInput, type LoadOptions, loadImageResized, type PilFilter, pilFilterFromCode, readImageProcessorConfig, toPixelValues } from "@pisces/image";
import * as T from "@pisces/tensor-cuda";

export interface SiglipImageProcessorConfig {
  do_resize?: boolean;
  size?: { height?: number; width?: number };
  resample?: number;
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: [number, number, number];
  image_std?: [number, number, number];
  do_convert_rgb?: boolean;
  [key: string]: unknown;
}

export class SiglipImageProcessor {
  readonly height: number;
  readonly width: number;
  readonly resample: PilFilter;
  constructor(
    readonly config: SiglipImageProcessorConfig = {},
    where = "SigLIP image processor config",
  ) {
    // validated up front: a bad mean/std or size would give NaN pixels or empty images later
    const r = new T.ConfigReader(config, where);
    const size = r.object("size");
    this.height = size ? size.int("height", 224, { max: T.CONFIG_LIMITS.imageSize }) : 224;
    this.width = size ? size.int("width", 224, { max: T.CONFIG_LIMITS.imageSize }) : 224;
    const resample = r.int("resample", 3, { min: 0, max: 5 });
    for (const k of ["do_resize", "do_rescale", "do_normalize", "do_convert_rgb"]) r.bool(k, true);
    r.number("rescale_factor", 1 / 255, { gt: 0 });
    r.numberList("image_mean", [0.5, 0.5, 0.5], { length: 3 });
    r.numberList("image_std", [0.5, 0.5, 0.5], { length: 3, gt: 0 });
    if (r.problems.length) throw new T.ConfigError(r.problems, where);
    this.resample = pilFilterFromCode(resample);
  }

  /**
   * Reads preprocessor_config.json from a model folder, or the `image_processor` part of
   * processor_config.json (as newer transformers releases save a SiglipProcessor).
   */
  static fromPretrained(dir: string): SiglipImageProcessor {
    const { json, path } = readImageProcessorConfig(dir);
    return new SiglipImageProcessor(json as SiglipImageProcessorConfig, path);
  }

  /** Images (paths, encoded buffers or raw pixels) -> pixelValues (B, 3, height, width) float32. */
  async preprocess(images: ImageInput | readonly ImageInput[], options: LoadOptions & { device?: T.Device } = {}): Promise<{ pixelValues: T.Tensor }> {
    const list = Array.isArray(images) ? images : [images as ImageInput];
    const c = this.config;
    const rgb = await Promise.all(
      list.map((input) => loadImageResized(input, c.do_resize === false ? null : { width: this.width, height: this.height }, this.resample, options)),
    );
    const pixelValues = toPixelValues(rgb, {
      rescaleFactor: c.do_rescale === false ? 1 : (c.rescale_factor ?? 1 / 255),
      mean: c.do_normalize === false ? [0, 0, 0] : (c.image_mean ?? [0.5, 0.5, 0.5]),
      std: c.do_normalize === false ? [1, 1, 1] : (c.image_std ?? [0.5, 0.5, 0.5]),
      device: options.device,
    });
    return { pixelValues };
  }
}
