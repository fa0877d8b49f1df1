// Reads shapes back from pixels (a render, or an image a model generated): every pixel takes the
// nearest palette colour or the background, each colour's 4-connected components are objects, and
// a component's shape follows from how much of its bounding box it fills (square about 1, circle
// about pi/4, triangle about 1/2). Exact on renders (tested on thousands of scenes); on generated
// images, specks smaller than a third of the smallest object are ignored.
import { BACKGROUND, COLORS, type Color, DEFAULT_CANVAS, PALETTE, type Scene, type Shape, sizeRange } from "./world.js";

export interface Detection {
  shape: Shape;
  color: Color;
  /** [x0, y0, x1, y1], x1 and y1 exclusive. */
  box: [number, number, number, number];
  /** Pixels in the component. */
  area: number;
  /** area / box area. */
  fill: number;
}

/** RGB pixels, row-major, 3 bytes each (what renderScene returns and a decoded PNG gives). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

const LABELS: readonly (readonly [number, number, number])[] = [BACKGROUND, ...COLORS.map((c) => PALETTE[c])];

export function shapeFromFill(fill: number): Shape {
  return fill >= 0.9 ? "square" : fill >= 0.65 ? "circle" : "triangle";
}

export function detect(image: RgbImage, options: { minArea?: number } = {}): Detection[] {
  const { data, width: W, height: H } = image;
  if (data.length !== W * H * 3) throw new RangeError(`expected ${W}x${H}x3 = ${W * H * 3} bytes of RGB, got ${data.length}`);
  // the smallest triangle covers about half its box: a third of that is noise
  const smallest = sizeRange(W)[0];
  const minArea = options.minArea ?? Math.max(4, Math.round((smallest * smallest) / 6));
  const label = new Uint8Array(W * H);
  for (let i = 0; i < W * H; i++) {
    const r = data[i * 3]!;
    const g = data[i * 3 + 1]!;
    const b = data[i * 3 + 2]!;
    let best = 0;
    let bestD = Number.POSITIVE_INFINITY;
    for (let k = 0; k < LABELS.length; k++) {
      const c = LABELS[k]!;
      const d = (r - c[0]) ** 2 + (g - c[1]) ** 2 + (b - c[2]) ** 2;
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    label[i] = best;
  }
  const seen = new Uint8Array(W * H);
  const stack = new Int32Array(W * H);
  const out: Detection[] = [];
  for (let start = 0; start < W * H; start++) {
    const k = label[start]!;
    if (k === 0 || seen[start]) continue;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    let area = 0;
    let x0 = W;
    let y0 = H;
    let x1 = 0;
    let y1 = 0;
    while (top > 0) {
      const p = stack[--top]!;
      const x = p % W;
      const y = (p - x) / W;
      area++;
      if (x < x0) x0 = x;
      if (y < y0) y0 = y;
      if (x + 1 > x1) x1 = x + 1;
      if (y + 1 > y1) y1 = y + 1;
      const push = (q: number) => {
        if (!seen[q] && label[q] === k) {
          seen[q] = 1;
          stack[top++] = q;
        }
      };
      if (x > 0) push(p - 1);
      if (x < W - 1) push(p + 1);
      if (y > 0) push(p - W);
      if (y < H - 1) push(p + W);
    }
    if (area < minArea) continue;
    const fill = area / ((x1 - x0) * (y1 - y0));
    out.push({ shape: shapeFromFill(fill), color: COLORS[k - 1]!, box: [x0, y0, x1, y1], area, fill });
  }
  return out;
}

/** Box centre of a detection. */
export function detectionCentre(d: Detection): [number, number] {
  return [(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2];
}

/**
 * Whether the detections are exactly the scene: the same objects (shape and colour), one for one,
 * each within `tolerance` pixels of its box centre (default 2 on 64 px, scaled with the canvas).
 */
export function sceneMatches(detections: readonly Detection[], scene: Scene, tolerance?: number): boolean {
  if (detections.length !== scene.objects.length) return false;
  const tol = tolerance ?? (2 * scene.canvas) / DEFAULT_CANVAS;
  const free = [...detections];
  for (const o of scene.objects) {
    const cx = o.x + o.size / 2;
    const cy = o.y + o.size / 2;
    const i = free.findIndex((d) => {
      const [dx, dy] = detectionCentre(d);
      return d.shape === o.shape && d.color === o.color && Math.hypot(dx - cx, dy - cy) <= tol;
    });
    if (i < 0) return false;
    free.splice(i, 1);
  }
  return true;
}
