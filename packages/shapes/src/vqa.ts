// VQA-shapes and captioning scores: exact match per question type on held-out scenes, beside the
// blind baseline (the most frequent training answer to the same question text, without the image).
import { SPLIT_SEED, type Split } from "./data.js";
import { detailedCaption, type QuestionType, questions } from "./text.js";
import { COLORS, DEFAULT_CANVAS, Random, randomScene, type Scene, SHAPES } from "./world.js";

export interface VqaItem {
  seed: number;
  scene: Scene;
  type: QuestionType;
  question: string;
  answer: string;
}

/** Every question of `count` scenes of a split (the held-out split by default). */
export function makeVqaSet(count: number, split: Split = "heldout", canvas = DEFAULT_CANVAS): VqaItem[] {
  const out: VqaItem[] = [];
  for (let i = 0; i < count; i++) {
    const seed = SPLIT_SEED[split] + i;
    const scene = randomScene(seed, { canvas });
    for (const qa of questions(scene, new Random(seed ^ 0x27d4eb2f), { colors: COLORS, shapes: SHAPES })) out.push({ seed, scene, ...qa });
  }
  return out;
}

/** Normalises an answer for exact match: lower case, single spaces, no space before punctuation (word-level decoders put one there), one trailing full stop dropped. */
export function normalizeAnswer(a: string): string {
  return a
    .toLowerCase()
    .replace(/\s+/g, " ")
    .replace(/ ([,.?!:;])/g, "$1")
    .trim()
    .replace(/\.$/, "")
    .trim();
}

export interface VqaScores {
  types: Partial<Record<QuestionType, number>>;
  /** Over all questions. */
  overall: number;
  questions: number;
}

export function scoreVqa(items: readonly VqaItem[], answers: readonly string[]): VqaScores {
  if (answers.length !== items.length) throw new RangeError(`expected ${items.length} answers, got ${answers.length}`);
  const hits: Partial<Record<QuestionType, [number, number]>> = {};
  let right = 0;
  items.forEach((item, i) => {
    const ok = normalizeAnswer(answers[i]!) === item.answer;
    const h = (hits[item.type] ??= [0, 0]);
    h[0] += ok ? 1 : 0;
    h[1]++;
    right += ok ? 1 : 0;
  });
  const types = Object.fromEntries(Object.entries(hits).map(([t, [a, n]]) => [t, a / n])) as Partial<Record<QuestionType, number>>;
  return { types, overall: items.length ? right / items.length : Number.NaN, questions: items.length };
}

/** Answers without looking: the most frequent answer to the same question over `trainScenes` training scenes (else the type's most frequent). */
export function blindAnswers(items: readonly VqaItem[], trainScenes = 5000): string[] {
  const train = makeVqaSet(trainScenes, "train");
  const byQuestion = new Map<string, Map<string, number>>();
  const byType = new Map<string, Map<string, number>>();
  const bump = (m: Map<string, Map<string, number>>, k: string, a: string) => {
    const c = m.get(k) ?? new Map<string, number>();
    c.set(a, (c.get(a) ?? 0) + 1);
    m.set(k, c);
  };
  for (const t of train) {
    bump(byQuestion, t.question, t.answer);
    bump(byType, t.type, t.answer);
  }
  const best = (c: Map<string, number> | undefined) => (c ? [...c.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0] : "");
  return items.map((i) => best(byQuestion.get(i.question) ?? byType.get(i.type)));
}

/** Detailed-caption exact match on held-out scenes (normalised as answers are). */
export function scoreCaptions(scenes: readonly Scene[], captions: readonly string[]): number {
  if (captions.length !== scenes.length) throw new RangeError(`expected ${scenes.length} captions, got ${captions.length}`);
  return scenes.filter((s, i) => normalizeAnswer(captions[i]!) === normalizeAnswer(detailedCaption(s))).length / Math.max(1, scenes.length);
}
