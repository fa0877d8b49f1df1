// Writes geneval-shapes/prompts.jsonl: the fixed GenEval-shapes prompt set (seed 43, GenEval's 553
// prompts: 80 / 99 / 80 / 94 / 100 / 100 per task), one GenEval metadata object per line.
// test/geneval.test.ts checks that the committed file equals what this makes.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeGenevalPrompts } from "../src/geneval.js";

export const PROMPTS_PATH = join(dirname(fileURLToPath(import.meta.url)), "..", "geneval-shapes", "prompts.jsonl");

export function promptsFileText(): string {
  return `${makeGenevalPrompts(43)
    .map((p) => JSON.stringify(p))
    .join("\n")}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(PROMPTS_PATH, promptsFileText());
  console.log(`wrote ${PROMPTS_PATH}`);
}
