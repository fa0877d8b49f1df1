#!/usr/bin/env node
// pisces-train RECIPE [--resume]: trains a Pisces stage; progress on stderr, one line per step.
import { parseArgs } from "node:util";
import { readRecipe } from "./recipe.js";
import { trainDecoder } from "./decoder-trainer.js";
import { trainGenClip } from "./gen-clip-trainer.js";
import { trainPisces } from "./pisces-trainer.js";
import { trainSiglip } from "./siglip-trainer.js";
import { trainVae } from "./vae-trainer.js";

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = () => parseArgs({ allowPositionals: true, options: { resume: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
  try {
    parsed = parse();
  } catch (e) {
    process.stderr.write(`pisces-train: ${(e as Error).message}\nusage: pisces-train RECIPE.json [--resume]\n`);
    return 2;
  }
  if (parsed.values.help || parsed.positionals.length !== 1) {
    process.stderr.write("usage: pisces-train RECIPE.json [--resume]\n");
    return parsed.values.help ? 0 : 2;
  }
  try {
    const recipe = readRecipe(parsed.positionals[0]!);
    const train = { pisces: trainPisces, decoder: trainDecoder, vae: trainVae, siglip: trainSiglip, gen_clip: trainGenClip }[recipe.kind];
    for await (const e of train(recipe, { resume: parsed.values.resume, warn: (m) => process.stderr.write(`warning: ${m}\n`) })) {
      if (e.type === "start")
        process.stderr.write(
          `${recipe.name}: ${e.resumedFrom ? `resuming from ${e.resumedFrom}` : "starting"} at step ${e.step} of ${e.maxSteps} (${e.parameters} trained parameters)\n`,
        );
      if (e.type === "step")
        process.stderr.write(
          `step ${e.step}/${recipe.maxSteps} loss ${e.loss.toFixed(4)}${Object.entries(e.parts)
            .map(([k, v]) => ` ${k} ${v.toFixed(4)}`)
            .join("")} lr ${e.lr.toExponential(2)} ${e.recordsPerSecond.toFixed(1)} records/s\n`,
        );
      if (e.type === "checkpoint") process.stderr.write(`checkpoint ${e.dir}\n`);
      if (e.type === "done") process.stdout.write(`${e.dir}\n`);
    }
    return 0;
  } catch (e) {
    process.stderr.write(`pisces-train: ${(e as Error).message}\n`);
    return 1;
  }
}

main().then((code) => process.exit(code));
