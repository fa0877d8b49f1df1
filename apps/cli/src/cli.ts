#!/usr/bin/env node
// `pisces`: generate images, caption and question them, inspect a model folder, decode vectors
// with the SDXL decoder alone, train and evaluate. Thin: commander parses, @pisces/sampler,
// @pisces/trainer and @pisces/shapes do the work. Results on stdout, progress on stderr (a line
// redrawn on a terminal; nothing in pipes, in CI or with NO_COLOR set).
// Exit codes: 0 done, 1 runtime error (one line; --verbose for the stack), 2 usage error.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, join, resolve } from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { createInterface } from "node:readline";
import { PiscesForConditionalGeneration, type PiscesMessage } from "@pisces/model";
import { modelPath as shippedModel } from "@pisces/pisces-shapes-tiny";
import { imageToText, type SchedulerName, textToImage } from "@pisces/sampler";
import { SdxlDecoder } from "@pisces/sdxl-decoder";
import * as T from "@pisces/tensor-cuda";
import { evalGeneval, evalVqa } from "./eval.js";

export class CliError extends Error {
  override name = "CliError";
}

const progressEnabled = () => Boolean(process.stderr.isTTY) && !process.env.NO_COLOR && !process.env.CI;

/** One progress line on stderr, redrawn; silent when stderr is not a terminal. */
function progress(label: string, done: number, of: number): void {
  if (!progressEnabled()) return;
  const width = 24;
  const filled = Math.round((width * done) / Math.max(1, of));
  process.stderr.write(`\r\x1b[2K${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${of}${done === of ? "\n" : ""}`);
}

const int =
  (name: string, min = 1, max = 1_000_000) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
const size = (v: string) => {
  const m = /^(\d+)x(\d+)$/.exec(v);
  if (!m) throw new InvalidArgumentError("size must be WIDTHxHEIGHT, e.g. 64x64");
  return { width: Number(m[1]), height: Number(m[2]) };
};

/** The model folder: --model, else $PISCES_MODEL, else the shipped shapes model (@pisces/pisces-shapes-tiny). */
function modelDir(option: string | undefined): string {
  const dir = option ?? process.env.PISCES_MODEL;
  if (dir) {
    if (!existsSync(join(dir, "config.json")))
      throw new CliError(`${dir} is not a Pisces folder (no config.json): pass --model with a folder in the @pisces/model layout`);
    return resolve(dir);
  }
  if (!existsSync(join(shippedModel, "config.json")))
    throw new CliError(`the shipped shapes model is missing (${shippedModel} has no config.json): reinstall @pisces/pisces-shapes-tiny, or pass --model DIR`);
  return shippedModel;
}

function loadModel(option: string | undefined): PiscesForConditionalGeneration {
  return PiscesForConditionalGeneration.fromPretrained(modelDir(option));
}

function checkImage(path: string): string {
  if (!existsSync(path)) throw new CliError(`${path}: no such file`);
  return path;
}

/** out.png -> out.png, or out-1.png ... out-n.png. */
function outputNames(output: string, n: number): string[] {
  if (n === 1) return [output];
  const ext = extname(output) || ".png";
  const stem = output.slice(0, output.length - extname(output).length);
  return Array.from({ length: n }, (_, i) => `${stem}-${i + 1}${ext}`);
}

/** Writes each file beside itself first and renames it into place: never a partial PNG. */
function writeAtomically(files: [string, Buffer][]): void {
  const temps = files.map(([path]) => join(dirname(path), `.${basename(path)}.tmp-${process.pid}`));
  try {
    for (const [i, [, data]] of files.entries()) writeFileSync(temps[i]!, data);
    for (const [i, [path]] of files.entries()) renameSync(temps[i]!, path);
  } finally {
    for (const t of temps) rmSync(t, { force: true });
  }
}

/** Aborts on the first SIGINT (the work stops between steps); a second one exits at once. */
function interruptible(): AbortController {
  const controller = new AbortController();
  process.once("SIGINT", () => {
    controller.abort(new CliError("interrupted"));
    process.once("SIGINT", () => process.exit(1));
  });
  return controller;
}

async function streamText(
  model: PiscesForConditionalGeneration,
  image: string,
  prompt: string | undefined,
  json: boolean,
  maxNewTokens: number,
): Promise<void> {
  const controller = interruptible();
  let text = "";
  for await (const e of imageToText(model, { images: image, prompt, maxNewTokens, signal: controller.signal })) {
    if (e.stage === "text" && !json) process.stdout.write(e.text[0]!);
    if (e.stage === "done") text = e.texts[0]!;
  }
  process.stdout.write(json ? `${JSON.stringify({ text })}\n` : "\n");
}

export function buildProgram(): Command {
  const program = new Command("pisces")
    .description("Pisces: one model that understands and generates images (arXiv 2506.10395), on libtorch")
    .option("--verbose", "print stacks with errors")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const modelOption = () => new Option("-m, --model <dir>", "a Pisces folder (default: $PISCES_MODEL, else the shipped shapes model)");

  program
    .command("generate")
    .description("generate images from a caption")
    .argument("<prompt>", "the caption")
    .addOption(modelOption())
    .option("-o, --output <file>", "PNG to write (numbered when -n > 1)", "out.png")
    .option("-n, --num <n>", "images", int("n", 1, 64), 1)
    .option("--seed <seed>", "base seed (image j uses seed + j)", int("seed", 0, 2 ** 31 - 1))
    .option("--steps <n>", "denoising steps", int("steps", 1, 1000), 30)
    .option("--guidance <g>", "classifier-free guidance scale (1 disables)", num("guidance"), 3)
    .addOption(new Option("--scheduler <name>", "denoising algorithm").choices(["euler", "ddim", "dpm"]))
    .option("--size <WxH>", "image size (default: the decoder's)", size)
    .option("--json", "print the written files as JSON")
    .action(async (prompt: string, o) => {
      const model = loadModel(o.model);
      const controller = interruptible();
      try {
        let images: Buffer[] = [];
        for await (const e of textToImage(model, {
          prompts: prompt,
          numImagesPerPrompt: o.num,
          seed: o.seed,
          steps: o.steps,
          guidanceScale: o.guidance,
          scheduler: o.scheduler as SchedulerName | undefined,
          ...(o.size ?? {}),
          signal: controller.signal,
        })) {
          if (e.stage === "vectors") progress("vectors", e.i + 1, e.of);
          if (e.stage === "denoise") progress("denoise", e.step, e.of);
          if (e.stage === "done") images = e.images;
        }
        const files = outputNames(o.output, images.length);
        writeAtomically(files.map((f, i) => [f, images[i]!]));
        process.stdout.write(o.json ? `${JSON.stringify({ files })}\n` : `${files.join("\n")}\n`);
      } finally {
        model.dispose();
      }
    });

  program
    .command("caption")
    .description("describe an image (the paper's captioning prompt)")
    .argument("<image>")
    .addOption(modelOption())
    .option("--max-tokens <n>", "", int("max-tokens", 1, 4096), 128)
    .option("--json", "print {text}")
    .action(async (image: string, o) => {
      checkImage(image);
      const model = loadModel(o.model);
      try {
        await streamText(model, image, undefined, Boolean(o.json), o.maxTokens);
      } finally {
        model.dispose();
      }
    });

  program
    .command("ask")
    .description("answer a question about an image")
    .argument("<image>")
    .argument("<question>")
    .addOption(modelOption())
    .option("--max-tokens <n>", "", int("max-tokens", 1, 4096), 64)
    .option("--json", "print {text}")
    .action(async (image: string, question: string, o) => {
      checkImage(image);
      const model = loadModel(o.model);
      try {
        await streamText(model, image, question, Boolean(o.json), o.maxTokens);
      } finally {
        model.dispose();
      }
    });

  program
    .command("chat")
    .description("a multi-turn chat: /image PATH attaches an image, /exit (or Ctrl-D) ends, Ctrl-C stops an answer")
    .addOption(modelOption())
    .option("--image <file>", "an image for the first message")
    .option("--max-tokens <n>", "per answer", int("max-tokens", 1, 4096), 128)
    .action(async (o) => {
      const model = loadModel(o.model);
      const tty = Boolean(process.stdin.isTTY);
      const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: tty });
      const messages: PiscesMessage[] = [];
      const images: string[] = [];
      let pending: string[] = o.image ? [checkImage(o.image)] : [];
      let answering: AbortController | null = null;
      rl.on("SIGINT", () => (answering ? answering.abort() : rl.close()));
      const ask = () => tty && rl.prompt();
      rl.setPrompt("> ");
      try {
        ask();
        for await (const raw of rl) {
          const line = raw.trim();
          if (line === "/exit") break;
          if (line.startsWith("/image")) {
            const path = line.slice(6).trim();
            if (!path || !existsSync(path)) process.stderr.write(`pisces: ${path ? `${path}: no such file` : "usage: /image PATH"}\n`);
            else pending.push(path);
            ask();
            continue;
          }
          if (!line) {
            ask();
            continue;
          }
          const content: PiscesMessage["content"] = pending.length
            ? [...pending.map(() => ({ type: "image" as const })), { type: "text" as const, text: line }]
            : line;
          messages.push({ role: "user", content });
          images.push(...pending);
          pending = [];
          answering = new AbortController();
          let text = "";
          try {
            for await (const e of imageToText(model, { messages, images, maxNewTokens: o.maxTokens, signal: answering.signal })) {
              if (e.stage === "text") process.stdout.write(e.text[0]!);
              if (e.stage === "done") text = e.texts[0]!;
            }
          } catch (e) {
            if (!answering.signal.aborted) throw e;
            process.stderr.write(" [stopped]");
          }
          answering = null;
          process.stdout.write("\n");
          messages.push({ role: "assistant", content: text });
          ask();
        }
      } finally {
        rl.close();
        model.dispose();
      }
    });

  program
    .command("info")
    .description("the parts of a Pisces folder: parameters and dtypes")
    .argument("[dir]", "a Pisces folder (default: as --model)")
    .option("--json", "print JSON")
    .action((dir: string | undefined, o) => {
      const root = modelDir(dir);
      const parts: Record<string, string> = {
        "language model + MLPs": "model.safetensors",
        siglip: join("siglip", "model.safetensors"),
        gen_clip: join("gen_clip", "model.safetensors"),
        unet: join("decoder", "unet", "diffusion_pytorch_model.safetensors"),
        vae: join("decoder", "vae", "diffusion_pytorch_model.safetensors"),
      };
      const rows = Object.entries(parts).map(([part, file]) => {
        const path = join(root, file);
        if (!existsSync(path)) return { part, parameters: 0, dtypes: [] as string[], missing: true };
        const w = T.loadSafetensors(path);
        const dtypes = new Set<string>();
        let parameters = 0;
        for (const k of w.keys()) {
          const info = w.info(k);
          dtypes.add(info.dtype);
          parameters += info.shape.reduce((a, b) => a * b, 1);
        }
        return { part, parameters, dtypes: [...dtypes], missing: false };
      });
      const config = JSON.parse(readFileSync(join(root, "config.json"), "utf8"));
      if (o.json) process.stdout.write(`${JSON.stringify({ dir: root, model_type: config.model_type, parts: rows })}\n`);
      else {
        process.stdout.write(`${root} (${config.model_type})\n`);
        for (const r of rows)
          process.stdout.write(
            `  ${r.part.padEnd(22)} ${r.missing ? "missing" : `${r.parameters.toLocaleString("en-US").padStart(14)} parameters  ${r.dtypes.join(", ")}`}\n`,
          );
      }
    });

  program
    .command("decode")
    .description("the SDXL decoder on its own: gen-CLIP vectors in, image out")
    .requiredOption("--decoder <dir>", "a diffusers folder with unet/, vae/, scheduler/")
    .requiredOption("--embeddings <file>", "a .safetensors with one (B, vectors, D) tensor (key 'embeddings', or its only tensor)")
    .option("-o, --output <file>", "PNG to write (numbered when B > 1)", "out.png")
    .option("--steps <n>", "denoising steps", int("steps", 1, 1000), 30)
    .option("--guidance <g>", "guidance scale against zero vectors (1 disables)", num("guidance"), 3)
    .option("--size <WxH>", "image size (default: the UNet's sample_size x the VAE factor)", size)
    .action(async (o) => {
      if (!existsSync(o.embeddings)) throw new CliError(`${o.embeddings}: no such file`);
      const file = T.loadSafetensors(o.embeddings);
      const keys = file.keys();
      const key = keys.includes("embeddings") ? "embeddings" : keys.length === 1 ? keys[0]! : null;
      if (!key) throw new CliError(`${o.embeddings} holds ${keys.length} tensors (${keys.slice(0, 5).join(", ")}): name the vectors 'embeddings'`);
      const decoder = SdxlDecoder.fromPretrained(o.decoder);
      try {
        const cond = file.get(key);
        const { png } = await decoder.decode(cond, { steps: o.steps, guidanceScale: o.guidance, ...(o.size ?? {}) });
        const files = outputNames(o.output, png.length);
        writeAtomically(files.map((f2, i) => [f2, png[i]!]));
        process.stdout.write(`${files.join("\n")}\n`);
      } finally {
        decoder.unet.dispose();
        decoder.vae.dispose();
      }
    });

  program
    .command("eval")
    .description("score a model on GenEval-shapes or VQA-shapes, beside the baselines")
    .addArgument(new Command().createArgument("<benchmark>", "geneval-shapes | vqa-shapes").choices(["geneval-shapes", "vqa-shapes"]))
    .addOption(modelOption())
    .option("--prompts-per-task <n>", "GenEval-shapes: the first n prompts of each task (default all)", int("prompts-per-task"))
    .option("--scenes <n>", "VQA-shapes: held-out scenes", int("scenes"), 100)
    .option("--steps <n>", "denoising steps", int("steps", 1, 1000), 30)
    .option("--rewrite", "GenEval-shapes: rewrite each prompt as the detailed caption of a scene that satisfies it (report such scores apart)")
    .option("-o, --output <file>", "also write the scores as JSON here")
    .option("--json", "print JSON")
    .action(async (benchmark: string, o) => {
      const model = loadModel(o.model);
      try {
        const result =
          benchmark === "geneval-shapes"
            ? await evalGeneval(model, {
                promptsPerTask: o.promptsPerTask,
                steps: o.steps,
                rewrite: Boolean(o.rewrite),
                onPrompt: (d, n) => progress("prompts", d, n),
              })
            : await evalVqa(model, { scenes: o.scenes, onQuestion: (d, n) => progress("questions", d, n) });
        if (o.output) writeAtomically([[o.output, Buffer.from(`${JSON.stringify(result, null, 1)}\n`)]]);
        if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else if ("chance" in result) {
          process.stdout.write(`${"task".padEnd(16)} ${"score".padStart(6)} ${"chance".padStart(6)}\n`);
          for (const [t, v] of Object.entries(result.scores.tasks))
            process.stdout.write(
              `${t.padEnd(16)} ${v.toFixed(3).padStart(6)} ${result.chance.tasks[t as keyof typeof result.chance.tasks].toFixed(3).padStart(6)}\n`,
            );
          process.stdout.write(`${"overall".padEnd(16)} ${result.scores.overall.toFixed(3).padStart(6)} ${result.chance.overall.toFixed(3).padStart(6)}\n`);
        } else {
          process.stdout.write(`${"question type".padEnd(16)} ${"score".padStart(6)} ${"blind".padStart(6)}\n`);
          for (const [t, v] of Object.entries(result.scores.types))
            process.stdout.write(
              `${t.padEnd(16)} ${v!.toFixed(3).padStart(6)} ${(result.blind.types[t as keyof typeof result.blind.types] ?? 0).toFixed(3).padStart(6)}\n`,
            );
          process.stdout.write(`${"overall".padEnd(16)} ${result.scores.overall.toFixed(3).padStart(6)} ${result.blind.overall.toFixed(3).padStart(6)}\n`);
          process.stdout.write(`detailed captions, exact match: ${result.captionExactMatch.toFixed(3)}\n`);
        }
      } finally {
        model.dispose();
      }
    });

  program
    .command("serve")
    .description("the demo server: OpenAI-compatible endpoints and a web page")
    .addOption(modelOption())
    .option("--port <n>", "", int("port", 0, 65535), 8000)
    .option("--host <host>", "listen address", "127.0.0.1")
    .option("--max-queue <n>", "requests waiting beside the running one before 429", int("max-queue", 0, 1000), 4)
    .action(async (o) => {
      const { createServer } = await import("@pisces/server");
      const server = createServer({ model: modelDir(o.model), maxQueue: o.maxQueue });
      await server.app.listen({ port: o.port, host: o.host });
      process.stderr.write(`pisces serve: http://${o.host}:${o.port}/ (loading the model)\n`);
      await server.modelReady;
      process.stderr.write("pisces serve: model ready\n");
      await new Promise<void>((done) => process.once("SIGINT", () => void server.close().then(done)));
    });

  program
    .command("train")
    .description("train from a recipe (@pisces/trainer's pisces-train)")
    .argument("<recipe>")
    .option("--resume", "continue from the output folder's latest checkpoint")
    .option("--nproc-per-node <n>", "local data-parallel ranks", int("nproc-per-node", 1, 1024))
    .action(async (recipe: string, o) => {
      const trainer = dirname(createRequire(import.meta.url).resolve("@pisces/trainer/package.json"));
      const fromSource = import.meta.url.endsWith(".ts");
      const script = join(trainer, fromSource ? "src/cli.ts" : "dist/cli.js");
      const args = [recipe, ...(o.resume ? ["--resume"] : []), ...(o.nprocPerNode ? ["--nproc-per-node", String(o.nprocPerNode)] : [])];
      const code = await new Promise<number>((done) =>
        spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: "inherit" }).on("exit", (c) => done(c ?? 1)),
      );
      if (code !== 0) process.exitCode = code;
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0 ? 0 : 2;
    const verbose = argv.includes("--verbose");
    process.stderr.write(`pisces: ${(e as Error).message.split("\n")[0]}\n${verbose ? `${(e as Error).stack}\n` : ""}`);
    return 1;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) main(process.argv.slice(2)).then((code) => process.exit(code));
