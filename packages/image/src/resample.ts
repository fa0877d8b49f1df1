// Resampling exactly as Pillow's Image.resize does for 8-bit images (libImaging/Resample.c):
// separable convolution, horizontal pass then vertical, with the filter widened by the scale when
// shrinking (antialiasing), pixel centres at (i + 0.5) * scale, weights normalised then rounded
// to 22-bit fixed point, and an 8-bit intermediate image. transformers' image processors resize
// with Pillow, so this gives the same pixels they do; libvips (sharp) enlarges differently.
import type { RgbImage } from "./image.js";

export type PilFilter = "nearest" | "bilinear" | "bicubic" | "lanczos";

const PRECISION_BITS = 32 - 8 - 2;

const FILTERS: Record<Exclude<PilFilter, "nearest">, { support: number; fn: (x: number) => number }> = {
  bilinear: { support: 1, fn: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    fn: (x) => {
      const sinc = (v: number) => (v === 0 ? 1 : Math.sin(Math.PI * v) / (Math.PI * v));
      return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

interface Coefficients {
  ksize: number;
  bounds: Int32Array; // per output: [first input index, count]
  weights: Int32Array; // per output: ksize fixed-point weights
}

function precompute(inSize: number, outSize: number, filter: { support: number; fn: (x: number) => number }): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax && ww !== 0 ? k[x]! / ww : 0;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(v: number): number {
  const x = v >> PRECISION_BITS;
  return x < 0 ? 0 : Math.min(x, 255);
}

function horizontal(src: Uint8Array, srcWidth: number, rows: number, firstRow: number, outWidth: number, c: Coefficients): Uint8Array {
  const out = new Uint8Array(outWidth * rows * 3);
  const { ksize, bounds, weights } = c;
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const row = (y + firstRow) * srcWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = bounds[xx * 2]!;
      const n = bounds[xx * 2 + 1]!;
      const kOff = xx * ksize;
      let r = half;
      let g = half;
      let b = half;
      for (let x = 0; x < n; x++) {
        const w = weights[kOff + x]!;
        const p = row + (x + xmin) * 3;
        r = (r + src[p]! * w) | 0; // sums stay below 2^31: 255 * 1.3 * 2^22
        g = (g + src[p + 1]! * w) | 0;
        b = (b + src[p + 2]! * w) | 0;
      }
      const o = (y * outWidth + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

function vertical(src: Uint8Array, width: number, outHeight: number, c: Coefficients, rowOffset: number): Uint8Array {
  const out = new Uint8Array(width * outHeight * 3);
  const { ksize, bounds, weights } = c;
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2]! - rowOffset;
    const n = bounds[yy * 2 + 1]!;
    const kOff = yy * ksize;
    for (let x = 0; x < width; x++) {
      let r = half;
      let g = half;
      let b = half;
      for (let y = 0; y < n; y++) {
        const w = weights[kOff + y]!;
        const p = ((y + ymin) * width + x) * 3;
        r = (r + src[p]! * w) | 0;
        g = (g + src[p + 1]! * w) | 0;
        b = (b + src[p + 2]! * w) | 0;
      }
      const o = (yy * width + x) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

function nearest(image: RgbImage, width: number, height: number): RgbImage {
  // Pillow's nearest: source index floor((i + 0.5) * scale)
  const out = new Uint8Array(width * height * 3);
  const sx = image.width / width;
  const sy = image.height / height;
  for (let y = 0; y < height; y++) {
    const yi = Math.min(image.height - 1, Math.floor((y + 0.5) * sy));
    for (let x = 0; x < width; x++) {
      const xi = Math.min(image.width - 1, Math.floor((x + 0.5) * sx));
      const s = (yi * image.width + xi) * 3;
      const d = (y * width + x) * 3;
      out[d] = image.data[s]!;
      out[d + 1] = image.data[s + 1]!;
      out[d + 2] = image.data[s + 2]!;
    }
  }
  return { data: out, width, height };
}

/** Resizes like Pillow's `Image.resize((width, height), resample)`, pixel for pixel. */
export function resizePil(image: RgbImage, width: number, height: number, filter: PilFilter = "bicubic"): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0)
    throw new RangeError(`resize: target size must be positive integers, got ${width}x${height}`);
  if (width === image.width && height === image.height) return image;
  if (filter === "nearest") return nearest(image, width, height);
  const f = FILTERS[filter];
  const horiz = precompute(image.width, width, f);
  const vert = precompute(image.height, height, f);
  let data = image.data;
  let rowOffset = 0;
  let curWidth = image.width;
  if (width !== image.width) {
    // only the source rows the vertical pass reads
    const first = vert.bounds[0]!;
    const last = vert.bounds[(height - 1) * 2]! + vert.bounds[(height - 1) * 2 + 1]!;
    data = horizontal(data, image.width, last - first, first, width, horiz);
    rowOffset = first;
    curWidth = width;
  }
  if (height !== image.height) data = vertical(data, curWidth, height, vert, rowOffset);
  return { data, width, height };
}

/** Pillow's resample codes, as preprocessor_config.json stores them (`resample`). */
export function pilFilterFromCode(code: number | undefined): PilFilter {
  switch (code ?? 3) {
    case 0:
      return "nearest";
    case 1:
      return "lanczos";
    case 2:
      return "bilinear";
    case 3:
      return "bicubic";
    default:
      throw new RangeError(`resample ${code} is not supported (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic)`);
  }
}
