// The shapes world, in one place: the canvas, the palette, the shapes and their sizes, scenes
// drawn from a seed, and the renderer. Everything is deterministic: the same seed gives the same
// scene and the same pixels on every machine (integer geometry on pixel centres, no anti-aliasing),
// which is what lets the detector (detect.ts) read a render back exactly.

export const SHAPES = ["circle", "square", "triangle"] as const;
export type Shape = (typeof SHAPES)[number];

/** The six colours and their RGB values: far apart, and far from the background. */
export const PALETTE = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [240, 210, 40],
  purple: [140, 60, 180],
  orange: [245, 140, 30],
} as const satisfies Record<string, readonly [number, number, number]>;
export type Color = keyof typeof PALETTE;
export const COLORS = Object.keys(PALETTE) as Color[];

/** Light, plain background. */
export const BACKGROUND: readonly [number, number, number] = [245, 245, 240];

/** Object sizes in pixels (the side of the shape's bounding box) on a 64 px canvas, with their words. */
export const SIZES = { small: [12, 15], medium: [16, 18], large: [19, 22] } as const;
export type SizeWord = keyof typeof SIZES;

export const DEFAULT_CANVAS = 64;

export interface SceneObject {
  shape: Shape;
  color: Color;
  /** Bounding-box side in pixels. */
  size: number;
  /** Top-left corner of the bounding box (integers). */
  x: number;
  y: number;
}

export interface Scene {
  canvas: number;
  objects: SceneObject[];
}

/** Sizes scale with the canvas (64 px is the reference): a 128 px world has objects of 24-44 px. */
export function sizeRange(canvas: number, word?: SizeWord): [number, number] {
  const scale = canvas / DEFAULT_CANVAS;
  const [lo, hi] = word ? SIZES[word] : [SIZES.small[0], SIZES.large[1]];
  return [Math.round(lo * scale), Math.round(hi * scale)];
}

export function sizeWord(size: number, canvas = DEFAULT_CANVAS): SizeWord {
  const s = (size * DEFAULT_CANVAS) / canvas;
  return s <= SIZES.small[1] ? "small" : s <= SIZES.medium[1] ? "medium" : "large";
}

/** mulberry32: a small seeded generator (32-bit state), the same sequence everywhere. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** Boxes at least `gap` pixels apart (so rendered shapes never touch). */
export function separated(a: SceneObject, b: SceneObject, gap = 2): boolean {
  return a.x + a.size + gap <= b.x || b.x + b.size + gap <= a.x || a.y + a.size + gap <= b.y || b.y + b.size + gap <= a.y;
}

/**
 * Places objects with the given attributes (size drawn when absent) at random non-overlapping
 * spots; returns null when `tries` placements all collide (rare for 4 objects on 64 px).
 */
export function placeObjects(
  rng: Random,
  specs: readonly { shape: Shape; color: Color; size?: number }[],
  canvas = DEFAULT_CANVAS,
  tries = 200,
): SceneObject[] | null {
  const [lo, hi] = sizeRange(canvas);
  const placed: SceneObject[] = [];
  for (const spec of specs) {
    let ok = false;
    for (let t = 0; t < tries && !ok; t++) {
      const size = spec.size ?? rng.int(lo, hi);
      const o: SceneObject = { shape: spec.shape, color: spec.color, size, x: rng.int(1, canvas - size - 1), y: rng.int(1, canvas - size - 1) };
      if (placed.every((p) => separated(p, o))) {
        placed.push(o);
        ok = true;
      }
    }
    if (!ok) return null;
  }
  return placed;
}

/** A random scene of 1-4 objects (shapes and colours uniform), from `seed`. */
export function randomScene(seed: number, options: { canvas?: number; minObjects?: number; maxObjects?: number } = {}): Scene {
  const canvas = options.canvas ?? DEFAULT_CANVAS;
  const rng = new Random(seed);
  for (;;) {
    const n = rng.int(options.minObjects ?? 1, options.maxObjects ?? 4);
    const objects = placeObjects(
      rng,
      Array.from({ length: n }, () => ({ shape: rng.pick(SHAPES), color: rng.pick(COLORS) })),
      canvas,
    );
    if (objects) return { canvas, objects };
  }
}

/** Whether pixel (px, py) (its centre at +0.5) is inside the object. */
export function covers(o: SceneObject, px: number, py: number): boolean {
  const cx = px + 0.5 - o.x;
  const cy = py + 0.5 - o.y;
  const s = o.size;
  if (cx < 0 || cy < 0 || cx > s || cy > s) return false;
  if (o.shape === "square") return true;
  if (o.shape === "circle") return (cx - s / 2) ** 2 + (cy - s / 2) ** 2 <= (s / 2) ** 2;
  // triangle: apex at the top centre, base along the bottom edge
  return Math.abs(cx - s / 2) <= (cy / s) * (s / 2);
}

/** RGB pixels of the scene (canvas x canvas x 3, row-major). */
export function renderScene(scene: Scene): Uint8Array {
  const W = scene.canvas;
  const out = new Uint8Array(W * W * 3);
  for (let i = 0; i < W * W; i++) out.set(BACKGROUND, i * 3);
  for (const o of scene.objects) {
    const rgb = PALETTE[o.color];
    for (let y = Math.max(0, o.y); y < Math.min(W, o.y + o.size + 1); y++)
      for (let x = Math.max(0, o.x); x < Math.min(W, o.x + o.size + 1); x++) if (covers(o, x, y)) out.set(rgb, (y * W + x) * 3);
  }
  return out;
}

/** The object's box centre, in pixels (what GenEval's position rule compares). */
export function centre(o: { x: number; y: number; size: number }): [number, number] {
  return [o.x + o.size / 2, o.y + o.size / 2];
}
