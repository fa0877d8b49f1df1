// One validator for every config.json the model packages read (transformers and diffusers layouts).
// A `ConfigReader` reads typed fields with defaults and bounds, collects every problem with the
// key, its value and the rule it breaks, and reports the keys nobody read, so a config with a
// field we do not implement is never silently loaded into a different model.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { checkedFile } from "./files.js";

/** A config file (or value) is invalid; `problems` lists every finding, each naming its key. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    readonly problems: string[],
    readonly where: string,
  ) {
    super(`${where}: ${problems.length === 1 ? problems[0] : `${problems.length} problems: ${problems.join("; ")}`}`);
  }
}

/**
 * Upper bounds for sizes read from configs: several times the largest published models (Llama
 * 3.1 405B: 126 layers, width 16384, 128 heads), small enough that nothing is built from a value
 * no real checkpoint has. A value past a bound is an error naming the key and the bound.
 */
export const CONFIG_LIMITS = {
  layers: 1024,
  width: 131_072,
  heads: 1024,
  headDim: 4096,
  vocab: 4_194_304,
  positions: 16_777_216,
  imageSize: 16_384,
  channels: 1024,
  blocks: 16,
  layersPerBlock: 64,
} as const;

interface IntRule {
  min?: number;
  max?: number;
}
interface NumberRule {
  /** Strictly greater than. */
  gt?: number;
  min?: number;
  max?: number;
}

const show = (v: unknown): string => {
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === "number") return String(v);
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    return "a value too deeply nested to show";
  }
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 80)}...` : s;
};

/** Configs never nest deeper than a few levels; deeper input is refused before any recursive walk. */
export const MAX_CONFIG_DEPTH = 64;

function depthOf(value: unknown, limit: number): number {
  // iterative, so a value nested 100,000 deep cannot overflow the stack
  const stack: [unknown, number][] = [[value, 1]];
  let max = 0;
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const x of Object.values(v as object)) stack.push([x, d + 1]);
  }
  return max;
}

/**
 * Reads one config object. Every getter records the key as read; problems accumulate and
 * `finish()` throws them all at once (or returns the unread keys, for `unknownKeys`).
 */
export class ConfigReader {
  readonly problems: string[];
  private readonly read = new Set<string>();
  private readonly json: Record<string, unknown>;

  /**
   * @param json the parsed object
   * @param where what to name in errors: the file path, or `path: vision_config`
   * @param prefix key prefix for nested objects (`vision_config.`)
   */
  constructor(
    json: unknown,
    readonly where: string,
    private readonly prefix = "",
    problems?: string[],
  ) {
    this.problems = problems ?? [];
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      this.problems.push(`${prefix ? prefix.slice(0, -1) : "the config"} must be a JSON object (got ${show(json)})`);
      this.json = {};
    } else this.json = json as Record<string, unknown>;
  }

  private get(key: string): unknown {
    this.read.add(key);
    return Object.hasOwn(this.json, key) ? this.json[key] : undefined;
  }
  /** The raw value (or undefined), marking the key read. */
  raw(key: string): unknown {
    return this.get(key);
  }
  has(key: string): boolean {
    return Object.hasOwn(this.json, key) && this.json[key] !== undefined;
  }
  fail(message: string): void {
    this.problems.push(message);
  }
  private name(key: string): string {
    return this.prefix + key;
  }

  /** An integer in [min, max] (min defaults to 1); `null` or absent gives the default. */
  int(key: string, fallback: number | undefined, rule: IntRule = {}): number {
    const v = this.get(key) ?? fallback;
    const min = rule.min ?? 1;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      this.problems.push(`${this.name(key)} must be an integer (got ${show(v)})`);
      return min;
    }
    if (v < min || (rule.max !== undefined && v > rule.max)) {
      this.problems.push(`${this.name(key)} = ${v} is out of range (${min} to ${rule.max ?? "any"})`);
      return min;
    }
    return v;
  }

  /** An optional integer: null/absent gives null. */
  intOrNull(key: string, rule: IntRule = {}): number | null {
    if (this.get(key) === null || !this.has(key)) return null;
    return this.int(key, undefined, rule);
  }

  /** A finite number within the rule. */
  number(key: string, fallback: number | undefined, rule: NumberRule = {}): number {
    const v = this.get(key) ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.problems.push(`${this.name(key)} must be a finite number (got ${show(v)})`);
      return rule.gt !== undefined ? rule.gt + 1 : (rule.min ?? 0);
    }
    const bad = (rule.gt !== undefined && !(v > rule.gt)) || (rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max);
    if (bad) {
      const bounds = [
        rule.gt !== undefined ? `> ${rule.gt}` : "",
        rule.min !== undefined ? `>= ${rule.min}` : "",
        rule.max !== undefined ? `<= ${rule.max}` : "",
      ]
        .filter(Boolean)
        .join(" and ");
      this.problems.push(`${this.name(key)} = ${v} is out of range (must be ${bounds})`);
      return rule.gt !== undefined ? rule.gt + 1 : (rule.min ?? 0);
    }
    return v;
  }

  /** A JSON boolean (a string such as "false" is an error: it would be truthy). */
  bool(key: string, fallback: boolean): boolean {
    const v = this.get(key) ?? fallback;
    if (typeof v !== "boolean") {
      this.problems.push(`${this.name(key)} must be true or false (got ${show(v)})`);
      return fallback;
    }
    return v;
  }

  /** A string, optionally one of `allowed`. */
  string<S extends string>(key: string, fallback: S | undefined, allowed?: readonly S[]): S {
    const v = this.get(key) ?? fallback;
    if (typeof v !== "string") {
      this.problems.push(`${this.name(key)} must be a string (got ${show(v)})`);
      return (fallback ?? allowed?.[0] ?? "") as S;
    }
    if (allowed && !allowed.includes(v as S)) {
      this.problems.push(`${this.name(key)} = ${show(v)} is not supported (supported: ${allowed.join(", ")})`);
      return (fallback ?? allowed[0]!) as S;
    }
    return v as S;
  }

  /** A value that, when present, must equal `expected` (e.g. a feature this implementation lacks). */
  expect(key: string, expected: unknown, why: string): void {
    if (!this.has(key)) return;
    const v = this.get(key);
    if (v !== expected) this.problems.push(`${this.name(key)} = ${show(v)} is not supported (${why})`);
  }

  /** A list of integers (or a single integer repeated `length` times when `broadcast`). */
  intList(key: string, fallback: number | number[] | undefined, rule: IntRule & { length?: number; maxLength?: number; broadcast?: boolean } = {}): number[] {
    const v = this.get(key) ?? fallback;
    const min = rule.min ?? 1;
    const list = typeof v === "number" && rule.broadcast && rule.length !== undefined ? new Array<unknown>(Math.min(rule.length, 1024)).fill(v) : v;
    if (!Array.isArray(list) || list.length > (rule.maxLength ?? 1024)) {
      this.problems.push(`${this.name(key)} must be a list of integers${rule.broadcast ? " or an integer" : ""} (got ${show(v)})`);
      return new Array(Math.min(rule.length ?? 1, 1024)).fill(min);
    }
    if (rule.length !== undefined && list.length !== rule.length) {
      this.problems.push(`${this.name(key)} must have ${rule.length} entries (got ${list.length})`);
      return new Array(Math.min(rule.length, 1024)).fill(min);
    }
    const bad = list.find((x) => typeof x !== "number" || !Number.isSafeInteger(x) || x < min || (rule.max !== undefined && x > rule.max));
    if (bad !== undefined) {
      this.problems.push(`${this.name(key)} holds ${show(bad)}: entries must be integers from ${min} to ${rule.max ?? "any"}`);
      return list.map(() => min);
    }
    return list as number[];
  }

  /** A list of numbers (image_mean / image_std); `length` when given. */
  numberList(key: string, fallback: number[] | undefined, rule: NumberRule & { length?: number } = {}): number[] {
    const v = this.get(key) ?? fallback;
    const ok = Array.isArray(v) && v.length <= 1024 && v.every((x) => typeof x === "number" && Number.isFinite(x));
    if (!ok) {
      this.problems.push(`${this.name(key)} must be a list of finite numbers (got ${show(v)})`);
      return new Array(rule.length ?? 1).fill(rule.gt !== undefined ? rule.gt + 1 : 0);
    }
    const list = v as number[];
    if (rule.length !== undefined && list.length !== rule.length) {
      this.problems.push(`${this.name(key)} must have ${rule.length} entries (got ${list.length})`);
      return new Array(rule.length).fill(rule.gt !== undefined ? rule.gt + 1 : 0);
    }
    const bad = list.find(
      (x) => (rule.gt !== undefined && !(x > rule.gt)) || (rule.min !== undefined && x < rule.min) || (rule.max !== undefined && x > rule.max),
    );
    if (bad !== undefined) this.problems.push(`${this.name(key)} holds ${bad}, out of range`);
    return list;
  }

  /** A list of strings, each one of `allowed` when given. */
  stringList<S extends string>(key: string, fallback: S[] | undefined, allowed?: readonly S[]): S[] {
    const v = this.get(key) ?? fallback;
    if (!Array.isArray(v) || v.length > 1024 || !v.every((x) => typeof x === "string")) {
      this.problems.push(`${this.name(key)} must be a list of strings (got ${show(v)})`);
      return (fallback ?? []) as S[];
    }
    const bad = allowed ? v.find((x) => !allowed.includes(x as S)) : undefined;
    if (bad !== undefined) this.problems.push(`${this.name(key)} holds ${show(bad)}, which is not supported (supported: ${allowed!.join(", ")})`);
    return v as S[];
  }

  /** A nested object read by its own reader that shares this one's problems (null when absent). */
  object(key: string): ConfigReader | null {
    const v = this.get(key);
    if (v === undefined || v === null) return null;
    return new ConfigReader(v, this.where, `${this.prefix}${key}.`, this.problems);
  }

  /** Marks keys as known but without effect here (bookkeeping, training-only fields). */
  ignore(...keys: string[]): this {
    for (const k of keys) this.read.add(k);
    return this;
  }

  /** Keys present in the object that no getter read and `ignore` did not list. */
  unreadKeys(): string[] {
    return Object.keys(this.json)
      .filter((k) => !this.read.has(k))
      .map((k) => this.prefix + k);
  }

  /** Throws a ConfigError with every problem found (this reader's and its nested readers'). */
  finish(): { unknownKeys: string[] } {
    if (this.problems.length) throw new ConfigError(this.problems, this.where);
    return { unknownKeys: this.unreadKeys() };
  }
}

/** Bookkeeping keys every transformers / diffusers config may carry; they do not change a model. */
export const BOOKKEEPING_KEYS = [
  "_name_or_path",
  "_class_name",
  "_diffusers_version",
  "_commit_hash",
  "transformers_version",
  "architectures",
  "torch_dtype",
  "dtype",
  "use_cache",
  "output_attentions",
  "output_hidden_states",
  "return_dict",
  "id2label",
  "label2id",
  "initializer_range",
  "initializer_factor",
  "attention_dropout",
  "dropout",
  "_attn_implementation_autoset",
  "chunk_size_feed_forward",
  "problem_type",
  "tie_encoder_decoder",
  "is_decoder",
  "is_encoder_decoder",
  "add_cross_attention",
  "tokenizer_class",
  "prefix",
  "task_specific_params",
  "finetuning_task",
  "torchscript",
  "pruned_heads",
] as const;

/** The largest JSON config file read (bigger is not a config). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * Reads and parses a JSON file with clear errors: missing, not a regular file (a FIFO or a
 * folder), larger than `maxBytes`, not UTF-8 JSON. `what` names the file's role in messages.
 */
export function readJsonFile(path: string, what = "config", maxBytes = MAX_CONFIG_BYTES): unknown {
  checkedFile(path, what);
  const fd = openSync(path, "r");
  let text: string;
  try {
    const size = fstatSync(fd).size;
    if (size > maxBytes) throw new ConfigError([`the ${what} file is ${size} bytes, more than the ${maxBytes}-byte limit for a JSON ${what}`], path);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    text = buf.subarray(0, got).toString("utf8");
  } finally {
    closeSync(fd);
  }
  let json: unknown;
  try {
    json = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new ConfigError([`not valid JSON (${(e as Error).message.slice(0, 200)})`], path);
  }
  if (depthOf(json, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH) throw new ConfigError([`the JSON nests deeper than ${MAX_CONFIG_DEPTH} levels`], path);
  return json;
}
