// Captions and questions say what is true of the scene: checked on a hand-made scene word for
// word, and against the detector's reading of renders of random scenes.
import { describe, expect, it } from "vitest";
import {
  blindAnswers,
  COLORS,
  detailedCaption,
  detect,
  makeVqaSet,
  questions,
  Random,
  randomScene,
  renderScene,
  type Scene,
  SHAPES,
  scoreCaptions,
  scoreVqa,
  shortCaption,
  NUMBER_WORDS,
} from "../src/index.js";

const scene: Scene = {
  canvas: 64,
  objects: [
    { shape: "circle", color: "red", size: 20, x: 2, y: 2 }, // large, top left
    { shape: "square", color: "orange", size: 13, x: 26, y: 26 }, // small, center
    { shape: "triangle", color: "blue", size: 17, x: 44, y: 44 }, // medium, bottom right
  ],
};

describe("captions", () => {
  it("detailed captions fix every object's size, colour, shape and cell, in reading order", () => {
    expect(detailedCaption(scene)).toBe("a large red circle at the top left, a small orange square at the center, a medium blue triangle at the bottom right");
  });

  it("short captions are GenEval-style and true of the scene", () => {
    const seen = new Set<string>();
    const rng = new Random(1);
    for (let i = 0; i < 200; i++) seen.add(shortCaption(scene, rng));
    for (const c of seen)
      expect(c).toMatch(/^(a|an) (red |orange |blue )?(circle|square|triangle)( and (a|an) (red |orange |blue )?(circle|square|triangle))*$/);
    expect(shortCaption({ canvas: 64, objects: [scene.objects[0]!] }, new Random(3))).toMatch(/^a (red )?circle$/);
    const three = { canvas: 64, objects: [0, 1, 2].map((i) => ({ shape: "triangle" as const, color: "yellow" as const, size: 14, x: 2 + 20 * i, y: 20 })) };
    expect(new Set(Array.from({ length: 50 }, (_, i) => shortCaption(three, new Random(i))))).toEqual(new Set(["three yellow triangles", "three triangles"]));
    const two = { canvas: 64, objects: [scene.objects[0]!, { ...scene.objects[1]!, x: 44, y: 4 }] };
    const positional = Array.from({ length: 200 }, (_, i) => shortCaption(two, new Random(i))).filter((c) => / (to the|above|below) /.test(c));
    expect(positional.length).toBeGreaterThan(0);
    for (const c of positional) expect(["a red circle to the left of an orange square", "an orange square to the right of a red circle"]).toContain(c);
  });
});

describe("questions", () => {
  it("answers match the detector's reading of the render, on 500 random scenes", () => {
    for (let seed = 0; seed < 500; seed++) {
      const s = randomScene(seed);
      const found = detect({ data: renderScene(s), width: 64, height: 64 });
      for (const qa of questions(s, new Random(seed), { colors: COLORS, shapes: SHAPES })) {
        if (qa.question === "how many objects are there?") expect(qa.answer).toBe(NUMBER_WORDS[found.length]);
        const m = /^how many (\w+)s are there\?$/.exec(qa.question);
        if (m && m[1] !== "object") expect(qa.answer).toBe(NUMBER_WORDS[found.filter((d) => d.shape === m[1]).length]);
        const color = /^what color is the (\w+)\?$/.exec(qa.question);
        if (color) expect(found.filter((d) => d.shape === color[1]).map((d) => d.color)).toEqual([qa.answer]);
        const exist = /^is there an? (\w+) (\w+)\?$/.exec(qa.question);
        if (exist) expect(qa.answer).toBe(found.some((d) => d.color === exist[1] && d.shape === exist[2]) ? "yes" : "no");
      }
    }
  });

  it("VQA-shapes: exact match per type, the blind baseline beside it, captions by exact match", () => {
    const items = makeVqaSet(300);
    expect(new Set(items.map((i) => i.type))).toEqual(new Set(["count", "color", "shape", "exist", "position"]));
    expect(
      scoreVqa(
        items,
        items.map((i) => `${i.answer.toUpperCase()}.`),
      ).overall,
    ).toBe(1); // normalised
    const blind = scoreVqa(items, blindAnswers(items, 2000));
    console.log(`VQA-shapes blind baseline: overall ${blind.overall.toFixed(3)} ${JSON.stringify(blind.types)}`);
    expect(blind.overall).toBeGreaterThan(0.2);
    expect(blind.overall).toBeLessThan(0.7);
    const scenes = [0, 1, 2].map((s) => randomScene(1_000_000_000 + s));
    expect(scoreCaptions(scenes, scenes.map(detailedCaption))).toBe(1);
    expect(scoreCaptions(scenes, ["a red circle", "", "x"])).toBe(0);
  });
});
