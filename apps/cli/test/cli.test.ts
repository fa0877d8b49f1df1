// The `pisces` command as a subprocess, on the tiny random Pisces of the reference fixtures (and
// once on the shipped shapes model, its default): every command, usage and runtime errors, and an
// interrupted generate that leaves no partial file.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { piscesReference } from "../../../tools/test-support/pisces-fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "..", "src", "cli.ts");
const work = mkdtempSync(join(tmpdir(), "pisces-cli-"));
let model: string;
let image: string;
beforeAll(() => {
  const ref = piscesReference("tied_k2");
  model = join(ref, "model");
  image = join(ref, "image0.png");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function pisces(
  args: string[],
  options: { env?: Record<string, string>; interruptAfterMs?: number; input?: string } = {},
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "--conditions=@pisces/source", cli, ...args], {
      cwd: join(here, ".."),
      env: { ...process.env, PISCES_MODEL: "", ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    if (options.interruptAfterMs) setTimeout(() => child.kill("SIGINT"), options.interruptAfterMs);
    child.on("exit", (code) => resolve({ code, out, err }));
  });
}

describe("pisces", () => {
  it("--help exits 0; a usage error exits 2 with the usage hint", async () => {
    const help = await pisces(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/generate[\s\S]*caption[\s\S]*ask[\s\S]*info[\s\S]*decode[\s\S]*eval[\s\S]*train/);
    const usage = await pisces(["generate"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/missing required argument 'prompt'/);
    const bad = await pisces(["generate", "x", "--steps", "zero", "--model", model]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/steps must be a whole number/);
  });

  it("generate writes numbered PNGs of the decoder's size", async () => {
    const r = await pisces(["generate", "a red circle", "-o", join(work, "gen.png"), "-n", "2", "--steps", "2", "--seed", "1", "--model", model, "--json"]);
    expect(r.code, r.err).toBe(0);
    const { files } = JSON.parse(r.out) as { files: string[] };
    expect(files).toEqual([join(work, "gen-1.png"), join(work, "gen-2.png")]);
    const meta = await sharp(files[0]!).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 32, 32]);
  });

  it("caption and ask print text (--json as {text}); a missing or corrupt image is one line and exit 1", async () => {
    const caption = await pisces(["caption", image, "--model", model, "--max-tokens", "4", "--json"]);
    expect(caption.code, caption.err).toBe(0);
    expect(typeof JSON.parse(caption.out).text).toBe("string");
    const ask = await pisces(["ask", image, "what color is the circle?", "--model", model, "--max-tokens", "3"]);
    expect(ask.code, ask.err).toBe(0);
    const missing = await pisces(["ask", join(work, "nope.png"), "what?", "--model", model]);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(`pisces: ${join(work, "nope.png")}: no such file\n`);
    writeFileSync(join(work, "corrupt.png"), "not an image");
    const corrupt = await pisces(["caption", join(work, "corrupt.png"), "--model", model]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.err.trim().split("\n")).toHaveLength(1);
    expect(corrupt.err).not.toMatch(/\n\s+at /);
  });

  it("chat: lines from stdin are turns, /image attaches an image, a bad path is reported and the chat goes on", async () => {
    const r = await pisces(["chat", "--model", model, "--max-tokens", "3"], {
      input: `/image ${image}\nwhat color is it?\n/image ${join(work, "nope.png")}\nand the shape?\n/exit\n`,
    });
    expect(r.code, r.err).toBe(0);
    expect(r.out.split("\n").slice(0, -1)).toHaveLength(2); // two answers, one line each
    expect(r.err).toMatch(/nope\.png: no such file/);
  });

  it("without --model it runs the shipped shapes model (the README's first command); a folder that is not a Pisces folder is a clear error", async () => {
    const bad = await pisces(["caption", image, "--model", work]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/is not a Pisces folder \(no config\.json\): pass --model/);
    const out = join(work, "shipped.png");
    const r = await pisces(["generate", "a red circle", "-o", out, "--steps", "4", "--seed", "1"]);
    expect(r.code, r.err).toBe(0);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]); // the shapes world's canvas
    const info = await pisces(["info", "--json"]);
    expect(info.code, info.err).toBe(0);
    expect(JSON.parse(info.out).dir).toMatch(/pisces-shapes-tiny[/\\]model$/);
  });

  it("info lists the parts with parameters and dtypes", async () => {
    const r = await pisces(["info", model, "--json"]);
    expect(r.code, r.err).toBe(0);
    const info = JSON.parse(r.out) as { parts: { part: string; parameters: number; dtypes: string[] }[] };
    expect(info.parts.map((p) => p.part)).toEqual(["language model + MLPs", "siglip", "gen_clip", "unet", "vae"]);
    for (const p of info.parts) expect(p.parameters).toBeGreaterThan(0);
    expect(info.parts[0]!.dtypes).toEqual(["float32"]);
  });

  it("decode turns vectors into an image with the decoder alone", async () => {
    const file = join(work, "vectors.safetensors");
    T.saveSafetensors(file, new Map([["embeddings", T.randn([1, 4, 16])]]));
    const r = await pisces(["decode", "--decoder", join(model, "decoder"), "--embeddings", file, "-o", join(work, "decoded.png"), "--steps", "2"]);
    expect(r.code, r.err).toBe(0);
    const meta = await sharp(join(work, "decoded.png")).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 32, 32]); // the UNet's sample_size 8 x the VAE's factor 4
  });

  it("eval vqa-shapes prints the scores beside the blind baseline", async () => {
    const r = await pisces(["eval", "vqa-shapes", "--model", model, "--scenes", "2", "--json"]);
    expect(r.code, r.err).toBe(0);
    const e = JSON.parse(r.out) as { scores: { questions: number }; blind: { questions: number } };
    expect(e.scores.questions).toBeGreaterThan(0);
    expect(e.blind.questions).toBe(e.scores.questions);
  });

  it("eval geneval-shapes --rewrite scores one image per prompt and task on rewritten prompts", async () => {
    const r = await pisces(["eval", "geneval-shapes", "--model", model, "--prompts-per-task", "1", "--steps", "1", "--rewrite", "--json"]);
    expect(r.code, r.err).toBe(0);
    const e = JSON.parse(r.out) as { scores: { images: number; overall: number }; chance: { images: number } };
    expect(e.scores.images).toBe(24); // 6 tasks x 1 prompt x 4 images
    expect(e.chance.images).toBe(24);
  });

  it("an interrupted generate (SIGINT) exits 1 and leaves no file, partial or whole", async () => {
    const dir = join(work, "interrupted");
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const r = await pisces(["generate", "a blue square", "-o", join(dir, "x.png"), "--steps", "1000", "--size", "256x256", "--model", model], {
      interruptAfterMs: 5000,
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/pisces: .*interrupted|aborted/i);
    expect(existsSync(join(dir, "x.png"))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
