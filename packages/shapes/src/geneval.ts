// GenEval-shapes: GenEval's six tasks, its prompt metadata and its scoring rules, on the shapes
// world's three classes and six colours, scored by the exact detector instead of Mask2Former and
// CLIP. The rules follow GenEval's evaluator: per class the detections sorted by size (GenEval:
// by score) and only the top `count` looked at for colour and position; include clauses ANDed,
// exclude clauses ORed; counting fails at N+1; position by box centres with the 0.1 x (size A +
// size B) margin; overall = the unweighted mean of the six task accuracies.
import { type Detection, detect, type RgbImage } from "./detect.js";
import { counted, phrase, relations } from "./text.js";
import { COLORS, type Color, DEFAULT_CANVAS, placeObjects, Random, renderScene, type Scene, SHAPES, type Shape } from "./world.js";

export const TASKS = ["single_object", "two_object", "counting", "colors", "position", "color_attr"] as const;
export type Task = (typeof TASKS)[number];
/** GenEval's prompt counts per task (553 in all). */
export const TASK_SIZES: Record<Task, number> = { single_object: 80, two_object: 99, counting: 80, colors: 94, position: 100, color_attr: 100 };
export type Relation = "left of" | "right of" | "above" | "below";
const RELATIONS: readonly Relation[] = ["left of", "right of", "above", "below"];

export interface Clause {
  class: Shape;
  count: number;
  color?: Color;
  /** [relation, index of the include clause it is relative to]. */
  position?: [Relation, number];
}

export interface GenevalPrompt {
  tag: Task;
  prompt: string;
  include: Clause[];
  exclude?: { class: Shape; count: number }[];
}

/** Every distinct prompt of a task, in a fixed order. */
function candidates(task: Task): GenevalPrompt[] {
  const out: GenevalPrompt[] = [];
  const pairs = SHAPES.flatMap((a) => SHAPES.filter((b) => b !== a).map((b) => [a, b] as const));
  if (task === "single_object") for (const s of SHAPES) out.push({ tag: task, prompt: `a photo of ${phrase(s)}`, include: [{ class: s, count: 1 }] });
  if (task === "two_object")
    for (const [a, b] of pairs)
      out.push({
        tag: task,
        prompt: `a photo of ${phrase(a)} and ${phrase(b)}`,
        include: [
          { class: a, count: 1 },
          { class: b, count: 1 },
        ],
      });
  if (task === "counting")
    for (const s of SHAPES)
      for (const n of [2, 3, 4])
        out.push({ tag: task, prompt: `a photo of ${counted(n, s)}`, include: [{ class: s, count: n }], exclude: [{ class: s, count: n + 1 }] });
  if (task === "colors")
    for (const s of SHAPES) for (const c of COLORS) out.push({ tag: task, prompt: `a photo of ${phrase(s, c)}`, include: [{ class: s, count: 1, color: c }] });
  if (task === "position")
    for (const [a, b] of pairs)
      for (const r of RELATIONS)
        out.push({
          tag: task,
          prompt: `a photo of ${phrase(a)} ${r} ${phrase(b)}`,
          include: [
            { class: b, count: 1 },
            { class: a, count: 1, position: [r, 0] },
          ],
        });
  if (task === "color_attr")
    for (const [a, b] of pairs)
      for (const ca of COLORS)
        for (const cb of COLORS.filter((c) => c !== ca))
          out.push({
            tag: task,
            prompt: `a photo of ${phrase(a, ca)} and ${phrase(b, cb)}`,
            include: [
              { class: a, count: 1, color: ca },
              { class: b, count: 1, color: cb },
            ],
          });
  return out;
}

/**
 * The prompt set: per task GenEval's number of prompts, cycling through the task's distinct
 * prompts in a seeded order (the world has 3 classes, so single-object prompts repeat; each
 * repetition is sampled with its own seeds).
 */
export function makeGenevalPrompts(seed = 43): GenevalPrompt[] {
  const rng = new Random(seed);
  const out: GenevalPrompt[] = [];
  for (const task of TASKS) {
    const all = candidates(task);
    for (let j = all.length - 1; j > 0; j--) {
      const k = Math.floor(rng.next() * (j + 1));
      [all[j], all[k]] = [all[k]!, all[j]!];
    }
    for (let i = 0; i < TASK_SIZES[task]; i++) out.push(all[i % all.length]!);
  }
  return out;
}

/** Whether the detections satisfy the prompt, by GenEval's rules. */
export function evaluate(detections: readonly Detection[], prompt: GenevalPrompt): boolean {
  const byClass = (s: Shape) => detections.filter((d) => d.shape === s).sort((a, b) => b.area - a.area);
  const groups: Detection[][] = [];
  for (const clause of prompt.include) {
    const found = byClass(clause.class);
    if (found.length < clause.count) return false;
    const top = found.slice(0, clause.count);
    if (clause.color && top.some((d) => d.color !== clause.color)) return false;
    if (clause.position) {
      const [relation, index] = clause.position;
      const targets = groups[index]!;
      for (const a of top) for (const b of targets) if (!relations(a, b).includes(relation)) return false;
    }
    groups.push(top);
  }
  for (const clause of prompt.exclude ?? []) if (byClass(clause.class).length >= clause.count) return false;
  return true;
}

/** A scene that satisfies the prompt (exactly the objects it names; colours drawn where it names none). */
export function sceneForPrompt(prompt: GenevalPrompt, seed: number, canvas = DEFAULT_CANVAS): Scene {
  const rng = new Random(seed);
  for (let attempt = 0; ; attempt++) {
    const specs = prompt.include.flatMap((c) => Array.from({ length: c.count }, () => ({ shape: c.class, color: c.color ?? rng.pick(COLORS) })));
    const objects = placeObjects(rng, specs, canvas);
    if (!objects) continue;
    const scene = { canvas, objects };
    // position prompts: keep scenes whose rendered boxes stand in the relation (GenEval's rule on the detections)
    if (prompt.include.some((c) => c.position) && !evaluate(detect({ data: renderScene(scene), width: canvas, height: canvas }), prompt)) {
      if (attempt > 10_000) throw new Error(`no scene found for "${prompt.prompt}"`);
      continue;
    }
    return scene;
  }
}

export interface GenevalScores {
  /** Accuracy per task over its images. */
  tasks: Record<Task, number>;
  /** Unweighted mean of the six. */
  overall: number;
  images: number;
}

/** Scores images (one list per prompt, same order) with GenEval's rules. */
export function scoreGeneval(prompts: readonly GenevalPrompt[], images: readonly (readonly RgbImage[])[]): GenevalScores {
  if (images.length !== prompts.length) throw new RangeError(`expected images for ${prompts.length} prompts, got ${images.length}`);
  const hits: Record<string, [number, number]> = {};
  prompts.forEach((p, i) => {
    for (const image of images[i]!) {
      const h = (hits[p.tag] ??= [0, 0]);
      h[0] += evaluate(detect(image), p) ? 1 : 0;
      h[1]++;
    }
  });
  const tasks = Object.fromEntries(TASKS.map((t) => [t, hits[t] ? hits[t]![0] / hits[t]![1] : Number.NaN])) as Record<Task, number>;
  const present = TASKS.filter((t) => hits[t]);
  return { tasks, overall: present.reduce((s, t) => s + tasks[t], 0) / present.length, images: images.reduce((s, l) => s + l.length, 0) };
}

/** The chance baseline: random scenes of the world (1-4 random objects) scored against the prompts, `perPrompt` each. */
export function chanceBaseline(prompts: readonly GenevalPrompt[], perPrompt = 4, seed = 7, canvas = DEFAULT_CANVAS): GenevalScores {
  const rng = new Random(seed);
  return scoreGeneval(
    prompts,
    prompts.map(() =>
      Array.from({ length: perPrompt }, () => {
        const objects =
          placeObjects(
            rng,
            Array.from({ length: rng.int(1, 4) }, () => ({ shape: rng.pick(SHAPES), color: rng.pick(COLORS) })),
            canvas,
          ) ?? [];
        return { data: renderScene({ canvas, objects }), width: canvas, height: canvas };
      }),
    ),
  );
}
