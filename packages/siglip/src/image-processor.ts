// SigLIP's image preprocessing (transformers' SiglipImageProcessor), driven by
// preprocessor_config.json: resize to a fixed height x width (no crop), rescale, normalize.
import { type ImageInput, type LoadOptions, loadImageResized, type PilFilter, pilFilterFromCode, readImageProcessorConfig, toPixelValues } from "@pisces/image";
import type * as T from "@pisces/tensor-cuda";

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
  constructor(readonly config: SiglipImageProcessorConfig = {}) {
    this.height = config.size?.height ?? 224;
    this.width = config.size?.width ?? 224;
    this.resample = pilFilterFromCode(config.resample ?? 3);
    if (!(this.height > 0 && this.width > 0)) throw new RangeError(`size must be positive, got ${this.height}x${this.width}`);
  }

  /**
   * Reads preprocessor_config.json from a model folder, or the `image_processor` part of
   * processor_config.json (as newer transformers releases save a SiglipProcessor).
   */
  static fromPretrained(dir: string): SiglipImageProcessor {
    return new SiglipImageProcessor(readImageProcessorConfig(dir) as SiglipImageProcessorConfig);
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
