// `pnpm fuzz`: mutates valid safetensors, GGUF, config.json, tokenizer/chat-template and image
// files, loads each through the public API in a child process with a memory and time cap, and
// classifies the outcome: clear error (names the file), vague error, crash, hang, slow (> 5 s),
// over-memory (> 1 GiB RSS) or accepted (the mutation loaded; often harmless, e.g. a changed
// weight value). Not part of `pnpm test`: the fixed regression corpus lives in each package's
// test/untrusted.test.ts.
//   tsx --conditions=@pisces/source tools/fuzz/fuzz.ts [--cases 5000] [--formats gguf,image] [--seed 1] [--keep-accepted]
import { type ChildProcess, fork } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LlamaForCausalLM, resolveLlamaConfig } from "../../packages/llama/src/index.js";
import { ClipVisionModel, resolveClipVisionConfig } from "../../packages/gen-clip/src/index.js";
import { AutoencoderKL, resolveAutoencoderKLConfig, resolveUNetConfig, UNet2DConditionModel } from "../../packages/sdxl-decoder/src/index.js";
import { resolveSiglipVisionConfig, SiglipVisionModel } from "../../packages/siglip/src/index.js";
import * as T from "../../packages/tensor-cuda/src/index.js";
import { tinyLlamaGguf } from "../test-support/gguf-writer.js";
import { type Format, FORMATS } from "./loaders.js";

const here = dirname(fileURLToPath(import.meta.url));
// tools/ has no dependencies of its own: sharp (to write the seed images) comes from @pisces/image
const sharp = createRequire(join(here, "..", "..", "packages", "image", "package.json"))("sharp") as typeof import("sharp");
const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const CASES = Number(arg("cases", "5000"));
const formats = arg("formats", FORMATS.join(",")).split(",") as Format[];
const MEMORY_CAP = 1024 ** 3;
const TIME_CAP_MS = 20_000;
const SLOW_MS = 5_000;
const WORKERS = Math.max(1, Math.min(2, availableParallelism()));

// ----- deterministic randomness --------------------------------------------------------------
let state = Number(arg("seed", "1")) >>> 0 || 1;
const rnd = () => {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
};
const int = (n: number) => Math.floor(rnd() * n);
const pick = <X>(xs: readonly X[]): X => xs[int(xs.length)]!;

// ----- mutators --------------------------------------------------------------------------------
const INTERESTING_NUMBERS: unknown[] = [0, -1, 1, 2, 3, 7, 255, 65535, 1e6, 1e9, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1.5, 1e-30, 1e308, -0.5, "1", "x", "false", "", true, false, null, [], {}, [0.5], [1, 2], [[[[1]]]]];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

function mutateBytes(buf: Buffer, focus = buf.length): Buffer {
  const b = Buffer.from(buf);
  const at = () => int(Math.max(1, Math.min(focus, b.length)));
  switch (int(7)) {
    case 0: // flip bits
      for (let k = 1 + int(8); k > 0; k--) b[at()]! ^= 1 << int(8);
      return b;
    case 1: // interesting bytes
      for (let k = 1 + int(4); k > 0; k--) b[at()] = pick(INTERESTING_BYTES);
      return b;
    case 2: // truncate
      return b.subarray(0, int(b.length));
    case 3: {
      // insert random bytes
      const i = at();
      return Buffer.concat([b.subarray(0, i), Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256))), b.subarray(i)]);
    }
    case 4: {
      // overwrite a little-endian integer with an interesting value
      const i = at() & ~3;
      const v = pick([0n, 1n, 3n, 0xffffffffn, 2n ** 31n, 2n ** 32n, 2n ** 63n, 10n ** 9n, 2n ** 64n - 1n]);
      const w = Buffer.alloc(8);
      w.writeBigUInt64LE(v & (2n ** 64n - 1n));
      w.copy(b, i, 0, Math.min(8, b.length - i));
      return b;
    }
    case 5: {
      // duplicate a slice
      const i = at();
      const j = Math.min(b.length, i + 1 + int(64));
      return Buffer.concat([b.subarray(0, j), b.subarray(i, j), b.subarray(j)]);
    }
    default:
      return Buffer.concat([b, Buffer.alloc(1 + int(64), pick(INTERESTING_BYTES))]);
  }
}

const DEEP = "__deeply_nested__";

/** Mutates a parsed JSON value at a random path: replace, delete, add an unknown key, nest deeply. */
function mutateJson(value: unknown): unknown {
  const root = structuredClone(value);
  const containers: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 6 || v === null || typeof v !== "object") return;
    for (const k of Object.keys(v)) {
      containers.push([v as Record<string, unknown>, Array.isArray(v) ? Number(k) : k]);
      walk((v as Record<string, unknown>)[k], depth + 1);
    }
  };
  walk(root, 0);
  for (let n = 1 + int(3); n > 0 && containers.length; n--) {
    const [c, k] = pick(containers);
    const r = int(6);
    if (r === 0 && !Array.isArray(c)) delete (c as Record<string, unknown>)[k as string];
    else if (r === 1 && !Array.isArray(c)) (c as Record<string, unknown>)[pick(["new_feature", "__proto__", "constructor", "rope_scaling", "mid_block_type"])] = pick(INTERESTING_NUMBERS);
    else if (r === 2) (c as Record<string | number, unknown>)[k] = DEEP; // nested 20,000 deep in the text
    else if (r === 3) {
      const v = (c as Record<string | number, unknown>)[k];
      (c as Record<string | number, unknown>)[k] = typeof v === "number" ? v * pick([2, 10, 1000, 1e6, -1, 0.5]) : typeof v === "string" ? v + v : v;
    } else (c as Record<string | number, unknown>)[k] = pick(INTERESTING_NUMBERS);
  }
  return root;
}

/** JSON text: mostly structured mutations, sometimes byte-level ones of the text. */
function mutateJsonText(text: string): string {
  if (int(5) === 0) return mutateBytes(Buffer.from(text)).toString("latin1");
  let out = JSON.stringify(mutateJson(JSON.parse(text))).replaceAll(`"${DEEP}"`, `${"[".repeat(20000)}1${"]".repeat(20000)}`);
  if (int(8) === 0) out = `\ufeff${out}`;
  if (int(8) === 0) out = out.replace(/^\{("[^"]+":[^,]+),/, "{$1,$1,"); // a duplicate key
  return out;
}

const TEMPLATE_ATTACKS = [
  "{% for i in range(10**9) %}x{% endfor %}",
  "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
  "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
  "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
  "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
  "{{ 'x' * 1000000000 }}",
  "{{ messages[0]['content'] | indent(1000000000) }}",
  "{{ range(2**53) | length }}",
  "{{ raise_exception('x') }}",
  "{% for %}",
  "{{ }}",
  "{% if %}{% endif",
  "{{ messages.__class__ }}",
  "{{ ''.__class__.__mro__ }}",
  "{{ cycler }}{{ joiner }}{{ lipsum(10**9) }}",
  "{{ strftime_now('%d' * 100000) }}",
];
const BASE_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";

function mutateTemplate(): string {
  const r = int(4);
  if (r === 0) return pick(TEMPLATE_ATTACKS);
  if (r === 1) return BASE_TEMPLATE + pick(TEMPLATE_ATTACKS);
  if (r === 2) {
    const t = BASE_TEMPLATE.split("");
    for (let k = 1 + int(4); k > 0; k--) t.splice(int(t.length), int(3), pick(["{%", "%}", "{{", "}}", "(", ")", "[", "]", "'", "|", "*", "**", "range(", " for ", " in ", "9999999999"]));
    return t.join("");
  }
  return mutateBytes(Buffer.from(BASE_TEMPLATE)).toString("utf8");
}

// ----- seeds -------------------------------------------------------------------------------------
interface Seed {
  format: Format;
  kind: string;
  /** A folder (copied for each case) or a file. */
  path: string;
  /** For folders: the file inside that mutations target. */
  target?: string;
  mutate: (bytes: Buffer) => Buffer;
}

function saveModel(dir: string, file: string, model: T.nn.Module, config: object, extra: Record<string, object> = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  for (const [name, json] of Object.entries(extra)) writeFileSync(join(dir, name), JSON.stringify(json));
  T.saveSafetensors(join(dir, file), model.stateDict());
  model.dispose();
}

async function makeSeeds(root: string): Promise<Seed[]> {
  mkdirSync(root, { recursive: true });
  const seeds: Seed[] = [];
  const json = (b: Buffer) => Buffer.from(mutateJsonText(b.toString("utf8")));
  // safetensors
  const st = join(root, "seed.safetensors");
  T.saveSafetensors(
    st,
    {
      w: T.randn([4, 3]),
      h: T.randn([5]).to("float16"),
      b: T.randn([2, 2]).to("bfloat16"),
      i: T.tensor([1n, 2n, 3n]),
      m: T.tensor([true, false]),
      u: T.tensor(new Uint8Array([1, 2, 3])),
    },
    { format: "pt" },
  );
  const stMutate = (b: Buffer): Buffer => {
    const n = Number(b.readBigUInt64LE(0));
    if (int(3) === 0) return mutateBytes(b);
    if (int(4) === 0) return mutateBytes(b, 8 + n);
    const header = Buffer.from(mutateJsonText(b.subarray(8, 8 + n).toString("utf8")));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(int(6) === 0 ? header.length + int(64) - 32 : header.length) & (2n ** 64n - 1n));
    return Buffer.concat([len, header, b.subarray(8 + n)]);
  };
  seeds.push({ format: "safetensors", kind: "file", path: st, mutate: stMutate });
  // gguf
  const gg = join(root, "seed.gguf");
  writeFileSync(gg, tinyLlamaGguf());
  const headerEnd = tinyLlamaGguf().length - 2000; // mostly the metadata and tensor directory
  seeds.push({ format: "gguf", kind: "file", path: gg, mutate: (b) => (int(4) === 0 ? mutateBytes(b) : mutateBytes(b, Math.max(64, headerEnd))) });
  // configs: one tiny folder per model type
  const llamaJson = { model_type: "llama", vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, rms_norm_eps: 1e-5, tie_word_embeddings: false, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } };
  saveModel(join(root, "llama"), "model.safetensors", new LlamaForCausalLM(resolveLlamaConfig(llamaJson).config), llamaJson);
  const visionJson = { hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, image_size: 8, patch_size: 4 };
  const siglipJson = { model_type: "siglip_vision_model", ...visionJson };
  const pre = { preprocessor_config: { size: { height: 8, width: 8 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 3 } };
  saveModel(join(root, "siglip"), "model.safetensors", new SiglipVisionModel(resolveSiglipVisionConfig(siglipJson)), siglipJson, { "preprocessor_config.json": pre.preprocessor_config });
  const clipJson = { model_type: "clip_vision_model", ...visionJson, hidden_act: "quick_gelu" };
  saveModel(join(root, "clip"), "model.safetensors", new ClipVisionModel(resolveClipVisionConfig(clipJson)), clipJson, {
    "preprocessor_config.json": { size: { shortest_edge: 8 }, crop_size: { height: 8, width: 8 }, do_center_crop: true },
  });
  const unetJson = { block_out_channels: [8, 16], down_block_types: ["DownBlock2D", "CrossAttnDownBlock2D"], up_block_types: ["CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block: 1, attention_head_dim: 2, cross_attention_dim: 8, norm_num_groups: 4, addition_embed_type: "text_time", addition_time_embed_dim: 4, projection_class_embeddings_input_dim: 32 };
  saveModel(join(root, "unet"), "diffusion_pytorch_model.safetensors", new UNet2DConditionModel(resolveUNetConfig(unetJson)), unetJson);
  const vaeJson = { block_out_channels: [8, 8], down_block_types: ["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types: ["UpDecoderBlock2D", "UpDecoderBlock2D"], layers_per_block: 1, norm_num_groups: 4, latent_channels: 4 };
  saveModel(join(root, "vae"), "diffusion_pytorch_model.safetensors", new AutoencoderKL(resolveAutoencoderKLConfig(vaeJson)), vaeJson);
  mkdirSync(join(root, "scheduler"));
  writeFileSync(join(root, "scheduler", "scheduler_config.json"), JSON.stringify({ _class_name: "EulerDiscreteScheduler", num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear", prediction_type: "epsilon", timestep_spacing: "leading", steps_offset: 1 }));
  for (const kind of ["llama", "siglip", "clip", "unet", "vae"]) seeds.push({ format: "config", kind, path: join(root, kind), target: "config.json", mutate: json });
  for (const kind of ["siglip", "clip"]) seeds.push({ format: "config", kind, path: join(root, kind), target: "preprocessor_config.json", mutate: json });
  seeds.push({ format: "config", kind: "scheduler", path: join(root, "scheduler"), target: "scheduler_config.json", mutate: json });
  // tokenizer + chat template
  const tok = join(root, "tokenizer");
  mkdirSync(tok);
  const vocab = Object.fromEntries(["a", "b", "c", "ab", " ", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "Ġ"].map((t, i) => [t, i]));
  writeFileSync(
    join(tok, "tokenizer.json"),
    JSON.stringify({
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [{ id: 5, content: "<s>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
      normalizer: null,
      pre_tokenizer: { type: "Whitespace" },
      post_processor: null,
      decoder: null,
      model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [["a", "b"]] },
    }),
  );
  writeFileSync(join(tok, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", chat_template: BASE_TEMPLATE }));
  seeds.push({
    format: "template",
    kind: "template",
    path: tok,
    target: "tokenizer_config.json",
    mutate: (b) => {
      const cfg = JSON.parse(b.toString("utf8"));
      cfg.chat_template = mutateTemplate();
      return Buffer.from(int(6) === 0 ? mutateJsonText(JSON.stringify(cfg)) : JSON.stringify(cfg));
    },
  });
  seeds.push({ format: "template", kind: "tokenizer", path: tok, target: "tokenizer.json", mutate: json });
  // images
  const base = sharp({ create: { width: 24, height: 16, channels: 4, background: { r: 200, g: 30, b: 90, alpha: 0.5 } } });
  for (const [ext, make] of [
    ["png", () => base.clone().png()],
    ["jpg", () => base.clone().jpeg()],
    ["webp", () => base.clone().webp()],
    ["gif", () => base.clone().gif()],
    ["tiff", () => base.clone().tiff()],
  ] as const) {
    const path = join(root, `seed.${ext}`);
    await make().toFile(path);
    seeds.push({ format: "image", kind: ext, path, mutate: (b) => mutateBytes(b, int(2) === 0 ? 64 : b.length) });
  }
  const svg = join(root, "seed.svg");
  writeFileSync(svg, `<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image href="${join(root, "seed.png")}" width="8" height="8"/></svg>`);
  seeds.push({ format: "image", kind: "svg", path: svg, mutate: (b) => (int(2) === 0 ? b : mutateBytes(b)) });
  return seeds;
}

// ----- running --------------------------------------------------------------------------------
type Outcome = "clear" | "vague" | "accepted" | "crash" | "hang" | "slow" | "over-memory";
interface Result {
  id: number;
  format: Format;
  kind: string;
  outcome: Outcome;
  message: string;
  ms: number;
  path: string;
}

/** JS-internal failures: vague unless one of our messages explains them (EXPLAINED). */
const VAGUE = /Cannot read propert|is not a function|is not iterable|undefined is not|Invalid typed array length|Invalid array length|Received NaN|Maximum call stack|^\s*$/;
const EXPLAINED = /: not valid JSON \(|the chat template is invalid \(|the chat template failed to render \(|the tokenizer cannot be built \(/;

class Worker {
  child: ChildProcess | null = null;
  ready: Promise<void> = Promise.resolve();
  served = 0;
  start(): void {
    this.served = 0;
    const child = fork(join(here, "runner.ts"), [], { execArgv: ["--conditions=@pisces/source", "--import", "tsx"], stdio: ["ignore", "ignore", "ignore", "ipc"] });
    this.child = child;
    this.ready = new Promise((resolve) => child.once("message", () => resolve()));
  }
  stop(): void {
    this.child?.kill("SIGKILL");
    this.child = null;
  }
  async run(c: { id: number; format: Format; kind: string; path: string }): Promise<Omit<Result, "format" | "kind" | "path">> {
    if (!this.child || this.served >= 250) {
      this.stop();
      this.start();
    }
    await this.ready;
    this.served++;
    const child = this.child!;
    return new Promise((resolve) => {
      const t0 = Date.now();
      let peak = 0;
      const poll = setInterval(() => {
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
          const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
          peak = Math.max(peak, kb * 1024);
          if (peak > MEMORY_CAP) done({ id: c.id, outcome: "over-memory", message: `RSS ${Math.round(peak / 2 ** 20)} MiB`, ms: Date.now() - t0 }, true);
        } catch {}
      }, 20);
      const timer = setTimeout(() => done({ id: c.id, outcome: "hang", message: `no answer in ${TIME_CAP_MS} ms`, ms: TIME_CAP_MS }, true), TIME_CAP_MS);
      const onMessage = (m: { id: number; ok: boolean; name?: string; message?: string; ms: number; rss: number }) => {
        if (m.id !== c.id) return;
        const named = !m.ok && (m.message!.includes(c.path) || m.message!.includes(basename(c.path)));
        const clear = named && (!VAGUE.test(m.message!) || EXPLAINED.test(m.message!));
        const outcome: Outcome = Math.max(peak, m.rss) > MEMORY_CAP ? "over-memory" : m.ms > SLOW_MS ? "slow" : m.ok ? "accepted" : clear ? "clear" : "vague";
        done({ id: c.id, outcome, message: m.ok ? "" : `${m.name}: ${m.message}`, ms: m.ms }, false);
      };
      const onExit = (code: number | null, signal: string | null) => done({ id: c.id, outcome: "crash", message: `child exited (code ${code}, signal ${signal})`, ms: Date.now() - t0 }, true);
      let finished = false;
      const done = (r: Omit<Result, "format" | "kind" | "path">, kill: boolean) => {
        if (finished) return;
        finished = true;
        clearInterval(poll);
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        if (kill) {
          if (child.exitCode === null) child.kill("SIGKILL");
          this.child = null;
        }
        resolve(r);
      };
      child.on("message", onMessage);
      child.on("exit", onExit);
      child.send(c);
    });
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "pisces-fuzz-"));
  const seeds = (await makeSeeds(join(root, "seeds"))).filter((s) => formats.includes(s.format));
  const cases = join(root, "cases");
  mkdirSync(cases);
  const results: Result[] = [];
  const workers = Array.from({ length: WORKERS }, () => new Worker());
  const queue: { id: number; seed: Seed }[] = [];
  let id = 0;
  for (const format of formats) {
    const mine = seeds.filter((s) => s.format === format);
    for (let i = 0; i < CASES; i++) queue.push({ id: id++, seed: mine[i % mine.length]! });
  }
  const total = queue.length;
  const t0 = Date.now();
  const prepare = ({ id, seed }: { id: number; seed: Seed }): string => {
    if (!seed.target) {
      const path = join(cases, `${id}-${basename(seed.path)}`);
      writeFileSync(path, seed.mutate(readFileSync(seed.path)));
      return path;
    }
    const dir = join(cases, `${id}-${seed.kind}`);
    cpSync(seed.path, dir, { recursive: true });
    writeFileSync(join(dir, seed.target), seed.mutate(readFileSync(join(seed.path, seed.target))));
    return dir;
  };
  await Promise.all(
    workers.map(async (w) => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const path = prepare(next);
        const r = await w.run({ id: next.id, format: next.seed.format, kind: next.seed.kind, path });
        const result: Result = { ...r, format: next.seed.format, kind: next.seed.kind, path };
        results.push(result);
        if (result.outcome === "clear" || (result.outcome === "accepted" && !args.includes("--keep-accepted"))) rmSync(path, { recursive: true, force: true });
        if (results.length % 500 === 0) process.stderr.write(`${results.length}/${total} cases, ${Math.round((Date.now() - t0) / 1000)} s\n`);
      }
      w.stop();
    }),
  );
  // report
  const outcomes: Outcome[] = ["clear", "vague", "accepted", "crash", "hang", "slow", "over-memory"];
  const lines = [
    `# Fuzz results (${new Date().toISOString().slice(0, 10)}, seed ${arg("seed", "1")}, ${CASES} cases per format)`,
    "",
    "Each case is one mutated file loaded through the public API in a child process (1 GiB RSS and 20 s caps). " +
      "clear: an error naming the file and the problem; vague: an error that does not; accepted: the file loaded and was used " +
      "(mutations that leave a valid file: changed tensor bytes, string values, values still in range, trailing bytes, reformatted JSON); " +
      "slow: over 5 s.",
    "",
    `| format | ${outcomes.join(" | ")} |`,
    `|---|${outcomes.map(() => "---:").join("|")}|`,
  ];
  for (const f of formats) {
    const mine = results.filter((r) => r.format === f);
    lines.push(`| ${f} | ${outcomes.map((o) => mine.filter((r) => r.outcome === o).length).join(" | ")} |`);
  }
  const bad = results.filter((r) => r.outcome !== "clear" && r.outcome !== "accepted");
  lines.push("", `${bad.length} cases need a look (kept under ${cases}):`, "");
  const seen = new Set<string>();
  for (const r of bad) {
    const key = `${r.format}/${r.outcome}/${r.message.replace(/\/tmp\/\S+/g, "PATH").replace(/\d+/g, "N").slice(0, 120)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    lines.push(`- ${r.format} (${r.kind}) ${r.outcome}: ${r.message.replaceAll(root, "ROOT").slice(0, 300)}`);
    if (seen.size > 40) break;
  }
  const report = lines.join("\n");
  console.log(report);
  writeFileSync(join(here, "RESULTS.md"), `${report}\n`);
  process.exit(bad.some((r) => r.outcome !== "vague") ? 1 : 0);
}

await main();
