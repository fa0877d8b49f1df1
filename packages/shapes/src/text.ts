// Words about scenes: short GenEval-style captions, detailed captions that fix every object, and
// question-answer pairs. All read the scene, so they are true of its render by construction.
import { centre, type Color, type Random, type Scene, type SceneObject, type Shape, sizeWord } from "./world.js";

export const NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six"] as const;
export const PLURAL: Record<Shape, string> = { circle: "circles", square: "squares", triangle: "triangles" };

/** "a red circle", "an orange square", "a circle", "a large red circle". */
export function phrase(shape: Shape, adjectives?: string): string {
  const words = adjectives ? `${adjectives} ${shape}` : shape;
  return `${/^[aeiou]/.test(words) ? "an" : "a"} ${words}`;
}

/** "three yellow triangles", "two circles". */
export function counted(n: number, shape: Shape, color?: string): string {
  if (n === 1) return phrase(shape, color);
  return `${NUMBER_WORDS[n]} ${color ? `${color} ` : ""}${PLURAL[shape]}`;
}

/** GenEval's relation of A to B (box centres, with its 0.1 x (size A + size B) margin); [] when none. */
export function relations(
  a: { box: [number, number, number, number] },
  b: { box: [number, number, number, number] },
): ("left of" | "right of" | "above" | "below")[] {
  const ca = [(a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2];
  const cb = [(b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2];
  const dims = [a.box[2] - a.box[0] + (b.box[2] - b.box[0]), a.box[3] - a.box[1] + (b.box[3] - b.box[1])];
  const offset = [ca[0]! - cb[0]!, ca[1]! - cb[1]!];
  const revised = offset.map((o, i) => Math.max(Math.abs(o) - 0.1 * dims[i]!, 0) * Math.sign(o));
  if (revised.every((r) => Math.abs(r) < 1e-3)) return [];
  const norm = Math.hypot(offset[0]!, offset[1]!);
  const [dx, dy] = [revised[0]! / norm, revised[1]! / norm];
  const out: ("left of" | "right of" | "above" | "below")[] = [];
  if (dx < -0.5) out.push("left of");
  if (dx > 0.5) out.push("right of");
  if (dy < -0.5) out.push("above");
  if (dy > 0.5) out.push("below");
  return out;
}

const boxOf = (o: SceneObject): [number, number, number, number] => [o.x, o.y, o.x + o.size, o.y + o.size];

/**
 * A short GenEval-style caption, chosen by `rng` among what is true of the scene: "a red circle",
 * "three yellow triangles", "a red circle and a blue square", "a circle to the left of a square".
 */
export function shortCaption(scene: Scene, rng: Random): string {
  const objs = scene.objects;
  const same = objs.every((o) => o.shape === objs[0]!.shape);
  const sameColor = same && objs.every((o) => o.color === objs[0]!.color);
  if (objs.length === 1) return rng.next() < 0.7 ? phrase(objs[0]!.shape, objs[0]!.color) : phrase(objs[0]!.shape);
  if (same) return counted(objs.length, objs[0]!.shape, sameColor && rng.next() < 0.6 ? objs[0]!.color : undefined);
  if (objs.length === 2) {
    const [a, b] = rng.next() < 0.5 ? [objs[0]!, objs[1]!] : [objs[1]!, objs[0]!];
    const rel = relations({ box: boxOf(a) }, { box: boxOf(b) });
    const u = rng.next();
    if (rel.length && u < 0.35) {
      const r = rng.pick(rel);
      return `${phrase(a.shape, a.color)} ${r === "left of" || r === "right of" ? `to the ${r}` : r} ${phrase(b.shape, b.color)}`;
    }
    return u < 0.7 ? `${phrase(a.shape, a.color)} and ${phrase(b.shape, b.color)}` : `${phrase(a.shape)} and ${phrase(b.shape)}`;
  }
  // three or four mixed objects: group by shape
  const groups = new Map<Shape, SceneObject[]>();
  for (const o of objs) groups.set(o.shape, [...(groups.get(o.shape) ?? []), o]);
  return [...groups.entries()]
    .map(([shape, list]) => counted(list.length, shape, list.every((o) => o.color === list[0]!.color) ? list[0]!.color : undefined))
    .join(" and ");
}

const ROWS = ["top", "middle", "bottom"] as const;
const COLS = ["left", "center", "right"] as const;

/** "top left", "center", "bottom right"... : the 3x3 cell of the object's centre. */
export function cellName(o: SceneObject, canvas: number): string {
  const [cx, cy] = centre(o);
  const row = ROWS[Math.min(2, Math.floor((3 * cy) / canvas))]!;
  const col = COLS[Math.min(2, Math.floor((3 * cx) / canvas))]!;
  if (row === "middle" && col === "center") return "center";
  if (row === "middle") return col;
  if (col === "center") return row;
  return `${row} ${col}`;
}

/** Every object's size, colour, shape and 3x3 cell, in reading order: "a large red circle at the top left, a small blue square at the center". */
export function detailedCaption(scene: Scene): string {
  const ordered = [...scene.objects].sort((a, b) => {
    const [ax, ay] = centre(a);
    const [bx, by] = centre(b);
    const ra = Math.floor((3 * ay) / scene.canvas);
    const rb = Math.floor((3 * by) / scene.canvas);
    return ra - rb || ax - bx;
  });
  return ordered.map((o) => `${phrase(o.shape, `${sizeWord(o.size, scene.canvas)} ${o.color}`)} at the ${cellName(o, scene.canvas)}`).join(", ");
}

export type QuestionType = "count" | "color" | "shape" | "exist" | "position";
export interface QuestionAnswer {
  type: QuestionType;
  question: string;
  answer: string;
}

/** Question-answer pairs true of the scene: counts, colours and shapes of unique objects, existence (yes/no), relative position (yes/no). */
export function questions(scene: Scene, rng: Random, options: { colors: readonly Color[]; shapes: readonly Shape[] }): QuestionAnswer[] {
  const objs = scene.objects;
  const out: QuestionAnswer[] = [];
  out.push({ type: "count", question: "how many objects are there?", answer: NUMBER_WORDS[objs.length]! });
  const shape = rng.pick(options.shapes);
  out.push({ type: "count", question: `how many ${PLURAL[shape]} are there?`, answer: NUMBER_WORDS[objs.filter((o) => o.shape === shape).length]! });
  const uniqueShape = options.shapes.filter((s) => objs.filter((o) => o.shape === s).length === 1);
  if (uniqueShape.length) {
    const s = rng.pick(uniqueShape);
    out.push({ type: "color", question: `what color is the ${s}?`, answer: objs.find((o) => o.shape === s)!.color });
  }
  const uniqueColor = options.colors.filter((c) => objs.filter((o) => o.color === c).length === 1);
  if (uniqueColor.length) {
    const c = rng.pick(uniqueColor);
    out.push({ type: "shape", question: `what shape is the ${c} object?`, answer: objs.find((o) => o.color === c)!.shape });
  }
  // existence: half the time of an object that is there
  const present = rng.next() < 0.5;
  const [es, ec] = present ? [objs[0]!.shape, objs[0]!.color] : [rng.pick(options.shapes), rng.pick(options.colors)];
  const exists = objs.some((o) => o.shape === es && o.color === ec);
  out.push({ type: "exist", question: `is there ${phrase(es, ec)}?`, answer: exists ? "yes" : "no" });
  // position between two objects with a unique (colour, shape)
  const unique = objs.filter((o) => objs.filter((p) => p.shape === o.shape && p.color === o.color).length === 1);
  if (unique.length >= 2) {
    const a = rng.pick(unique);
    const b = rng.pick(unique.filter((o) => o !== a));
    const r = rng.pick(["left of", "right of", "above", "below"] as const);
    const holds = relations({ box: boxOf(a) }, { box: boxOf(b) }).includes(r);
    const words = r === "left of" || r === "right of" ? `to the ${r}` : r;
    out.push({ type: "position", question: `is the ${a.color} ${a.shape} ${words} the ${b.color} ${b.shape}?`, answer: holds ? "yes" : "no" });
  }
  return out;
}
