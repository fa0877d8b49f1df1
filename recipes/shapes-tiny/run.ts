// The shapes-tiny recipe: every part of a tiny Pisces trained by @pisces/trainer on the shapes
// world, stage by stage, each resumable and each kept in its own folder:
//   data -> gen-CLIP (masked patches + contrastive) -> SigLIP (sigmoid) -> VAE -> decoder UNet
//   -> Pisces assembled from the parts -> stage 1 (short captions) -> stage 2 (detailed captions)
//   -> stage 3 (mixed, with questions).
// Budgets are in steps (this machine's speed varies ~5x): `--scale smoke` takes a few steps per
// stage (seconds, for CI), `--scale mini` a few minutes (CI: it must answer questions above the
// blind baseline), `--scale full` the budgets below. A finished stage (its final/ folder
// exists) is skipped; an interrupted one resumes from its last checkpoint.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/run.ts WORK_DIR [--scale smoke|full] [--only STAGE]
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { writeManifest } from "@pisces/shapes";
import * as T from "@pisces/tensor-cuda";
import {
  latestCheckpoint,
  type RecipeJson,
  readRecipe,
  type TrainEvent,
  trainDecoder,
  trainGenClip,
  trainPisces,
  trainSiglip,
  trainVae,
} from "@pisces/trainer";
import { CAPTIONING_PROMPT, GENERATION_PROMPT, writeParts } from "./parts.js";

export type Scale = "smoke" | "mini" | "full";

/** Scenes per split, and steps / batch per stage, by scale. */
export const BUDGETS = {
  smoke: {
    trainScenes: 64,
    heldoutScenes: 16,
    steps: { gen_clip: 3, siglip: 3, vae: 3, decoder: 3, decoder_more: 1, stage1: 3, stage2: 2, stage3: 2, decoder_adapt: 2 },
    batch: 8,
  },
  // a few minutes on two cores: enough SigLIP and stage 3 to answer questions above the blind
  // baseline (test/mini.test.ts); the generation parts train a few steps only
  mini: {
    trainScenes: 2000,
    heldoutScenes: 100,
    steps: { gen_clip: 3, siglip: 300, vae: 3, decoder: 3, decoder_more: 1, stage1: 3, stage2: 2, stage3: 800, decoder_adapt: 1 },
    batch: 16,
  },
  full: {
    trainScenes: 20_000,
    heldoutScenes: 500,
    // decoder_more: the decoder again from its final weights, a fresh optimizer and a second cosine
    // schedule at a lower peak (its ceiling was still rising at 3,000 steps)
    // decoder_adapt: the decoder once more, half its samples conditioned on the finished LLM's own
    // rolled-out vectors (see ADAPT_ROLLOUT_SHARE)
    steps: { gen_clip: 3000, siglip: 3000, vae: 400, decoder: 3000, decoder_more: 2000, stage1: 2000, stage2: 1000, stage3: 1500, decoder_adapt: 1000 },
    batch: 32,
  },
} as const;
export type Stage = keyof (typeof BUDGETS)["full"]["steps"];
export const STAGES: Stage[] = ["gen_clip", "siglip", "vae", "decoder", "decoder_more", "stage1", "stage2", "stage3", "decoder_adapt"];

/**
 * decoder_adapt: the share of decoder samples conditioned on the LLM's own rollout from the
 * sample's caption (the rest on the image's true gen-CLIP vectors, which keeps the decoder's
 * ceiling). The LLM's rollout drifts from the true vectors and hedges toward their mean; a decoder
 * trained on true vectors only draws that as background (the recipe README's figures).
 */
export const ADAPT_ROLLOUT_SHARE = 0.5;

const json = (path: string, value: unknown) => writeFileSync(path, `${JSON.stringify(value, null, 1)}\n`);

/** Parts trained in an earlier sitting and committed (recipes/shapes-tiny/trained/<stage>/): used instead of training again. */
export const TRAINED = join(dirname(fileURLToPath(import.meta.url)), "trained");

/** Writes the world's manifests (train and held-out) under work/data. */
export async function writeData(work: string, scale: Scale): Promise<void> {
  const dir = join(work, "data");
  if (existsSync(join(dir, "complete"))) return;
  const b = BUDGETS[scale];
  for (const split of ["train", "heldout"] as const) {
    const count = split === "train" ? b.trainScenes : b.heldoutScenes;
    await writeManifest(dir, { split, count, kinds: ["generation"], captions: "short" }, `${split}-gen-short`);
    await writeManifest(dir, { split, count, kinds: ["generation"], captions: "detailed" }, `${split}-gen-detailed`);
    await writeManifest(dir, { split, count, kinds: ["captioning"], captions: "detailed" }, `${split}-caption`);
    await writeManifest(dir, { split, count, kinds: ["chat"] }, `${split}-chat`);
  }
  writeFileSync(join(dir, "complete"), "");
}

/**
 * Stages 2 and 3 train with parallel scheduled sampling: half the teacher-forced input vectors are
 * the model's own predictions of them (a probe from stage 1's step 1,500: free-running error 0.80
 * of the targets' variance after 250 such steps, against 0.82 after 500 plain ones).
 */
const SCHEDULED_SAMPLING = 0.5;

export function recipeFor(work: string, stage: Stage, scale: Scale): RecipeJson {
  const b = BUDGETS[scale];
  const data = (...names: string[]) => names.map((n) => ({ manifest: join(work, "data", `train-${n}.jsonl`) }));
  const common = {
    name: `shapes-tiny-${stage}`,
    output_dir: join(work, "runs", stage),
    global_batch_size: b.batch,
    max_steps: b.steps[stage],
    save_every: Math.max(1, Math.min(250, b.steps[stage])),
    keep_last: 1,
    log_every: scale === "smoke" ? 1 : 10,
    seed: 0,
    schedule: { type: "cosine_with_warmup" as const, warmup_ratio: 0.03 },
    max_grad_norm: 1,
  };
  const parts = join(work, "parts");
  switch (stage) {
    case "gen_clip":
      return {
        ...common,
        kind: "gen_clip",
        model: join(parts, "gen_clip"),
        data: data("gen-short", "gen-detailed"),
        optimizer: { lr: 1e-3, weight_decay: 0.05 },
      };
    case "siglip":
      return { ...common, kind: "siglip", model: join(parts, "siglip"), data: data("gen-short", "gen-detailed"), optimizer: { lr: 1e-3, weight_decay: 0.05 } };
    case "vae":
      return { ...common, kind: "vae", model: join(parts, "vae"), data: data("gen-short"), resolution: 64, optimizer: { lr: 1e-3 } };
    case "decoder":
      return {
        ...common,
        kind: "decoder",
        model: join(work, "decoder-init"),
        data: data("gen-short"),
        resolution: 64,
        conditioning_dropout: 0.1,
        optimizer: { lr: 3e-4 },
      };
    case "decoder_more":
      return {
        ...common,
        kind: "decoder",
        model: join(work, "runs", "decoder", "final"),
        data: data("gen-short"),
        resolution: 64,
        conditioning_dropout: 0.1,
        optimizer: { lr: 1.2e-4 },
      };
    case "stage1":
      return {
        ...common,
        kind: "pisces",
        model: join(work, "pisces-init"),
        data: data("gen-short", "caption"),
        tasks: ["captioning", "generation"],
        optimizer: { lr: 1e-3 },
      };
    case "stage2":
      return {
        ...common,
        kind: "pisces",
        model: join(work, "runs", "stage1", "final"),
        data: data("gen-detailed", "caption"),
        tasks: ["captioning", "generation"],
        optimizer: { lr: 5e-4 },
        generation_scheduled_sampling: SCHEDULED_SAMPLING,
      };
    case "stage3":
      return {
        ...common,
        kind: "pisces",
        model: join(work, "runs", "stage2", "final"),
        data: [...data("gen-short", "gen-detailed", "caption"), { manifest: join(work, "data", "train-chat.jsonl"), weight: 2 }],
        optimizer: { lr: 3e-4 },
        generation_scheduled_sampling: SCHEDULED_SAMPLING,
      };
    case "decoder_adapt":
      return {
        ...common,
        kind: "decoder",
        model: join(work, "adapt-init"),
        data: data("gen-short", "gen-detailed"),
        resolution: 64,
        conditioning_dropout: 0.1,
        rollout_conditioning: ADAPT_ROLLOUT_SHARE,
        optimizer: { lr: 1e-4 },
      };
  }
}

/** The folders a stage needs that earlier stages make: the decoder's start (gen-CLIP + VAE + a fresh UNet), Pisces from its parts. */
function assemble(work: string, stage: Stage, log: (m: string) => void): void {
  const runs = join(work, "runs");
  if (stage === "decoder_adapt" && !existsSync(join(work, "adapt-init", "config.json"))) {
    compose(work, join(work, "adapt-init"), trainedDecoder(work));
    log(`assembled ${join(work, "adapt-init")} (stage 3 + the decoder trained on true vectors)`);
  }
  if (stage === "decoder" && !existsSync(join(work, "decoder-init", "complete"))) {
    const dir = join(work, "decoder-init");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const llm = JSON.parse(readFileSync(join(work, "parts", "llm", "config.json"), "utf8"));
    // what the decoder trainer reads of a Pisces config: the gen-CLIP pooling (8 x 8 grid, kernel 1 = 64 vectors)
    json(join(dir, "config.json"), {
      model_type: "pisces",
      text_config: { ...llm, vocab_size: llm.vocab_size + 2 },
      generation_pool_kernel: 1,
      image_start_token_id: llm.vocab_size,
      image_end_token_id: llm.vocab_size + 1,
    });
    cpSync(join(runs, "gen_clip", "final"), join(dir, "gen_clip"), { recursive: true });
    cpSync(join(work, "parts", "decoder"), join(dir, "decoder"), { recursive: true });
    cpSync(join(runs, "vae", "final"), join(dir, "decoder", "vae"), { recursive: true });
    writeFileSync(join(dir, "complete"), "");
    log(`assembled ${dir}`);
  }
  if (stage === "stage1" && !existsSync(join(work, "pisces-init", "config.json"))) {
    const model = PiscesForConditionalGeneration.fromParts(
      {
        languageModel: join(work, "parts", "llm"),
        siglip: join(runs, "siglip", "final"),
        genClip: join(runs, "gen_clip", "final"),
        decoder: join(runs, "decoder", "final", "decoder"),
      },
      { seed: 0, config: PISCES_CONFIG },
    );
    try {
      model.savePretrained(join(work, "pisces-init"));
    } finally {
      model.dispose();
    }
    log(`assembled ${join(work, "pisces-init")}`);
  }
}

/**
 * The Pisces options of the tiny model: 64 vectors (an 8 x 8 grid, no pooling), the world's prompts,
 * targets normalised per dimension, and Gaussian noise (std 0.5 of a normalised target) on the
 * teacher-forced input vectors, so the LLM leans on the caption rather than copying its previous
 * vector: the feasibility study's free-running rollout drifted far from teacher forcing.
 */
export const PISCES_CONFIG = {
  generation_pool_kernel: 1,
  generation_prompt: GENERATION_PROMPT,
  captioning_prompt: CAPTIONING_PROMPT,
  generation_target_normalization: true,
  generation_input_noise_std: 0.5,
};

const TRAINERS = { gen_clip: trainGenClip, siglip: trainSiglip, vae: trainVae, decoder: trainDecoder, pisces: trainPisces } as const;

/** Runs the recipe (or one stage of it) in `work`; returns the final Pisces folder. */
export async function runRecipe(work: string, options: { scale?: Scale; only?: Stage; log?: (m: string) => void; useTrained?: boolean } = {}): Promise<string> {
  const scale = options.scale ?? "full";
  const log = options.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  mkdirSync(work, { recursive: true });
  if (!existsSync(join(work, "parts", "llm", "model.safetensors"))) writeParts(join(work, "parts"));
  await writeData(work, scale);
  for (const stage of options.only ? [options.only] : STAGES) {
    const out = join(work, "runs", stage);
    if (existsSync(join(out, "final"))) {
      log(`${stage}: done (${join(out, "final")})`);
      continue;
    }
    if (scale === "full" && (options.useTrained ?? true) && existsSync(join(TRAINED, stage, "config.json"))) {
      mkdirSync(out, { recursive: true });
      cpSync(join(TRAINED, stage), join(out, "final"), { recursive: true });
      log(`${stage}: done (the committed part ${join(TRAINED, stage)})`);
      continue;
    }
    assemble(work, stage, log);
    const recipePath = join(work, "recipes", `${stage}.json`);
    mkdirSync(join(work, "recipes"), { recursive: true });
    const recipe = recipeFor(work, stage, scale);
    json(recipePath, recipe);
    const started = performance.now();
    const resume = latestCheckpoint(out) !== null;
    let last: TrainEvent | null = null;
    for await (const e of TRAINERS[recipe.kind ?? "pisces"](readRecipe(recipePath), { resume, warn: (m) => log(`${stage}: warning: ${m}`) })) {
      if (e.type === "step" && (e.step % Math.max(1, recipe.log_every ?? 1) === 0 || e.step === recipe.max_steps))
        log(
          `${stage}: step ${e.step}/${recipe.max_steps} loss ${e.loss.toFixed(4)}${Object.entries(e.parts)
            .map(([k, v]) => ` ${k} ${v.toFixed(4)}`)
            .join("")}`,
        );
      last = e;
    }
    log(`${stage}: finished in ${((performance.now() - started) / 1000).toFixed(0)} s (${last?.type === "done" ? last.dir : "?"})`);
  }
  if (options.only) {
    // one stage: the finished model is assembled once both of its sources exist
    if (existsSync(join(work, "runs", "stage3", "final")) && existsSync(trainedDecoder(work))) finish(work, log);
    return join(work, "runs", options.only, "final");
  }
  return finish(work, log);
}

/** The decoder folder trained on true vectors: decoder_more's if it ran, else decoder's. */
function trainedDecoder(work: string): string {
  const more = join(work, "runs", "decoder_more", "final", "decoder");
  return existsSync(more) ? more : join(work, "runs", "decoder", "final", "decoder");
}

/** Stage 3's Pisces with `decoder` as its decoder/ folder, written aside and renamed to `out`. */
function compose(work: string, out: string, decoder: string): void {
  const stage3 = join(work, "runs", "stage3", "final");
  for (const dir of [stage3, decoder]) if (!existsSync(dir)) throw new Error(`${dir} does not exist: train its stage first (run.ts ${work} --only ...)`);
  const tmp = `${out}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(stage3, tmp, { recursive: true });
  rmSync(join(tmp, "decoder"), { recursive: true, force: true });
  cpSync(decoder, join(tmp, "decoder"), { recursive: true });
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
}

/**
 * The finished model, WORK/model: stage 3's Pisces with the trained decoder (UNet, VAE, scheduler)
 * in its decoder/ folder: decoder_adapt's when it ran (it was adapted to this LLM's rollouts),
 * else the one trained on true vectors. The Pisces stages never run the decoder, so stage 1 may
 * start from a folder whose decoder is still training; this puts the trained one in place either way.
 */
export function finish(work: string, log: (m: string) => void = () => {}): string {
  const adapted = join(work, "runs", "decoder_adapt", "final", "decoder");
  const out = join(work, "model");
  compose(work, out, existsSync(adapted) ? adapted : trainedDecoder(work));
  log(`model: ${out} (stage 3 + the trained decoder${existsSync(adapted) ? ", adapted to its rollouts" : ""})`);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { scale: { type: "string", default: "full" }, only: { type: "string" } } });
  if (positionals.length !== 1 || !["smoke", "mini", "full"].includes(values.scale!) || (values.only !== undefined && !STAGES.includes(values.only as Stage))) {
    process.stderr.write(`usage: run.ts WORK_DIR [--scale smoke|mini|full] [--only ${STAGES.join("|")}]\n`);
    process.exit(2);
  }
  T.setNumThreads(T.getNumThreads());
  runRecipe(resolve(positionals[0]!), { scale: values.scale as Scale, only: values.only as Stage | undefined }).then(
    (dir) => process.stdout.write(`${dir}\n`),
    (e) => {
      process.stderr.write(`shapes-tiny: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
