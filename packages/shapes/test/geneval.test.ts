// GenEval-shapes: GenEval's task sizes and rules; renders made for each prompt score 1.00 on every
// task; random scenes give the chance baseline; the committed prompt file is the one the seed makes.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PROMPTS_PATH, promptsFileText } from "../scripts/make-prompts.js";
import {
  chanceBaseline,
  type Detection,
  evaluate,
  type GenevalPrompt,
  makeGenevalPrompts,
  renderScene,
  sceneForPrompt,
  scoreGeneval,
  TASK_SIZES,
  TASKS,
} from "../src/index.js";

const box = (x: number, y: number, w: number, h = w): Pick<Detection, "box" | "area"> => ({ box: [x, y, x + w, y + h], area: w * h });
const det = (shape: Detection["shape"], color: Detection["color"], x: number, y: number, w = 14): Detection => ({ shape, color, fill: 1, ...box(x, y, w) });

describe("GenEval-shapes", () => {
  it("has GenEval's 553 prompts with its task sizes, and the committed file is the seeded one", () => {
    const prompts = makeGenevalPrompts();
    expect(prompts).toHaveLength(553);
    for (const t of TASKS) expect(prompts.filter((p) => p.tag === t)).toHaveLength(TASK_SIZES[t]);
    expect(readFileSync(PROMPTS_PATH, "utf8")).toBe(promptsFileText());
    expect(prompts.find((p) => p.tag === "counting")!.prompt).toMatch(/^a photo of (two|three|four) (circles|squares|triangles)$/);
    expect(prompts.find((p) => p.tag === "position")!.prompt).toMatch(/^a photo of an? \w+ (left of|right of|above|below) an? \w+$/);
  });

  it("scores 1.00 on every task for renders made to each prompt (4 per prompt), and about 0.19 for random scenes", () => {
    const prompts = makeGenevalPrompts();
    const images = prompts.map((p, i) => [0, 1, 2, 3].map((k) => ({ data: renderScene(sceneForPrompt(p, i * 4 + k)), width: 64, height: 64 })));
    const truth = scoreGeneval(prompts, images);
    expect(truth.images).toBe(2212);
    for (const t of TASKS) expect(truth.tasks[t], t).toBe(1);
    const chance = chanceBaseline(prompts);
    console.log(`GenEval-shapes chance baseline: overall ${chance.overall.toFixed(3)} ${JSON.stringify(chance.tasks)}`);
    expect(chance.overall).toBeGreaterThan(0.12);
    expect(chance.overall).toBeLessThan(0.26);
  });

  it("applies GenEval's rules: N+1 fails counting, colour and position read the largest objects, the 0.1 margin", () => {
    const count: GenevalPrompt = { tag: "counting", prompt: "", include: [{ class: "circle", count: 2 }], exclude: [{ class: "circle", count: 3 }] };
    expect(evaluate([det("circle", "red", 0, 0), det("circle", "blue", 30, 0)], count)).toBe(true);
    expect(evaluate([det("circle", "red", 0, 0), det("circle", "blue", 30, 0), det("circle", "red", 0, 30)], count)).toBe(false);
    const color: GenevalPrompt = { tag: "colors", prompt: "", include: [{ class: "square", count: 1, color: "red" }] };
    expect(evaluate([det("square", "red", 0, 0, 20), det("square", "blue", 30, 30, 12)], color)).toBe(true);
    expect(evaluate([det("square", "red", 0, 0, 12), det("square", "blue", 30, 30, 20)], color)).toBe(false); // the largest is blue
    const left: GenevalPrompt = {
      tag: "position",
      prompt: "",
      include: [
        { class: "square", count: 1 },
        { class: "circle", count: 1, position: ["left of", 0] },
      ],
    };
    expect(evaluate([det("circle", "red", 0, 20), det("square", "blue", 30, 20)], left)).toBe(true);
    expect(evaluate([det("circle", "red", 40, 20), det("square", "blue", 10, 20)], left)).toBe(false);
    // centres 2 px apart with boxes of 14 + 14: inside the 0.1 x 28 = 2.8 px margin, no relation
    expect(evaluate([det("circle", "red", 20, 20), det("square", "blue", 22, 20)], left)).toBe(false);
    // mostly below with a little to the left: dx / |offset| above -0.5, so not "left of"
    expect(evaluate([det("circle", "red", 20, 45), det("square", "blue", 26, 2)], left)).toBe(false);
  });
});
