// CLIP's image preprocessing (transformers' CLIPImageProcessor), driven by preprocessor_config.json:
// resize the shortest side, centre crop, rescale, normalize with CLIP's mean and std.
import {
  centerCrop,
  type ImageInput,
  type LoadOptions,
  loadImageResized,
  type PilFilter,
  pilFilterFromCode,
  readImageProcessorConfig,
  toPixelValues,
} from "@pisces/image";
import * as T from "@pisces/tensor-cuda";

export interface ClipImageProcessorConfig {
  do_resize?: boolean;
  size?: { shortest_edge?: number; height?: number; width?: number };
  resample?: number;
  do_center_crop?: boolean;
  crop_size?: { height?: number; width?: number };
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: [number, number, number];
  image_std?: [number, number, number];
  [key: string]: unknown;
}

export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export class ClipImageProcessor {
  readonly resample: PilFilter;
  constructor(
    readonly config: ClipImageProcessorConfig = {},
    where = "CLIP image processor config",
  ) {
    // validated up front: a bad mean/std or crop size would give NaN pixels or empty images later
    const r = new T.ConfigReader(config, where);
    const max = T.CONFIG_LIMITS.imageSize;
    const size = r.object("size");
    if (size) {
      if (size.has("shortest_edge")) size.int("shortest_edge", undefined, { max });
      else {
        size.int("height", undefined, { max });
        size.int("width", undefined, { max });
      }
    }
    const crop = r.object("crop_size");
    if (crop) for (const k of ["height", "width"]) crop.int(k, 224, { max });
    const resample = r.int("resample", 3, { min: 0, max: 5 });
    for (const k of ["do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"]) r.bool(k, true);
    r.number("rescale_factor", 1 / 255, { gt: 0 });
    r.numberList("image_mean", CLIP_MEAN, { length: 3 });
    r.numberList("image_std", CLIP_STD, { length: 3, gt: 0 });
    if (r.problems.length) throw new T.ConfigError(r.problems, where);
    this.resample = pilFilterFromCode(resample);
  }

  /** Reads preprocessor_config.json from a model folder, or the `image_processor` part of processor_config.json. */
  static fromPretrained(dir: string): ClipImageProcessor {
    const { json, path } = readImageProcessorConfig(dir);
    return new ClipImageProcessor(json as ClipImageProcessorConfig, path);
  }

  /** The size after resizing, as transformers computes it (shortest edge kept, long side truncated). */
  outputSize(width: number, height: number): { width: number; height: number } {
    const size = this.config.size ?? { shortest_edge: 224 };
    if (size.shortest_edge !== undefined) {
      const s = size.shortest_edge;
      return width <= height ? { width: s, height: Math.trunc((s * height) / width) } : { width: Math.trunc((s * width) / height), height: s };
    }
    if (size.height && size.width) return { width: size.width, height: size.height };
    throw new RangeError("size needs shortest_edge, or height and width");
  }

  async preprocess(images: ImageInput | readonly ImageInput[], options: LoadOptions & { device?: T.Device } = {}): Promise<{ pixelValues: T.Tensor }> {
    const list = Array.isArray(images) ? images : [images as ImageInput];
    const c = this.config;
    const crop = { height: c.crop_size?.height ?? 224, width: c.crop_size?.width ?? 224 };
    const rgb = await Promise.all(
      list.map(async (input) => {
        const im = await loadImageResized(input, c.do_resize === false ? null : (w, h) => this.outputSize(w, h), this.resample, options);
        return c.do_center_crop === false ? im : centerCrop(im, crop.height, crop.width);
      }),
    );
    const pixelValues = toPixelValues(rgb, {
      rescaleFactor: c.do_rescale === false ? 1 : (c.rescale_factor ?? 1 / 255),
      mean: c.do_normalize === false ? [0, 0, 0] : (c.image_mean ?? CLIP_MEAN),
      std: c.do_normalize === false ? [1, 1, 1] : (c.image_std ?? CLIP_STD),
      device: options.device,
    });
    return { pixelValues };
  }
}
