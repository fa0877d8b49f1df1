// The one loading path of every model package: read config.json (checked), choose the default
// dtype and device, open the weights (single file or shard index), build the model on the `meta`
// device within a tensor budget taken from the checkpoint, and stream the weights in strictly.
// A package keeps only its own config resolver and, in its weights.ts, its unavoidable key renames.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigReader, readJsonFile } from "./config.js";
import type { DType } from "./dtype.js";
import { checkedDir, FileError } from "./files.js";
import type { Module, StateDictSource } from "./nn/module.js";
import { buildWithinBudget } from "./nn/module.js";
import { StateDictError } from "./errors.js";
import { loadSafetensors, type SafetensorsReader, WEIGHT_FILES, weightsFileIn } from "./safetensors.js";
import type { Device } from "./tensor.js";

export interface PretrainedOptions {
  /** Floating-point dtype of the loaded weights; default bfloat16 on CUDA, float32 on CPU. */
  dtype?: DType;
  /** Default "cpu". */
  device?: Device;
}

/** The defaults every `fromPretrained` uses: CPU, float32 there and bfloat16 on CUDA. */
export function resolveLoadOptions(options: PretrainedOptions = {}): { dtype: DType; device: Device } {
  const device = options.device ?? "cpu";
  const dtype = options.dtype ?? (String(device).startsWith("cuda") ? "bfloat16" : "float32");
  return { dtype, device };
}

/** Reads `dir/config.json` (or `file`) after checking the folder and the file. */
export function readConfigJson(dir: string, what = "model", file = "config.json"): { json: unknown; path: string } {
  checkedDir(dir, what);
  const path = join(dir, file);
  if (!existsSync(path)) throw new FileError(dir, `no ${file}; expected a ${what} folder (Hugging Face / diffusers layout)`);
  return { json: readJsonFile(path, "config"), path };
}

/** A ConfigReader over `dir/config.json`, errors naming the file. */
export function configReader(dir: string, what = "model"): ConfigReader {
  const { json, path } = readConfigJson(dir, what);
  return new ConfigReader(json, path);
}

/** Opens the first weights file of `names` that exists in `dir` (a shard index before a single file). */
export function openWeights(dir: string, names: readonly string[] = WEIGHT_FILES): SafetensorsReader {
  const found = weightsFileIn(dir, names);
  if (!found) throw new FileError(dir, `no weights: expected ${names.join(" or ")} (pickled .bin weights are never read)`);
  return loadSafetensors(found);
}

/**
 * A view of `reader` whose keys carry `prefix` whether or not the checkpoint stores them with it
 * (transformers 4 and full two-tower checkpoints write `vision_model.*`, transformers 5 saves a
 * single tower without). Keys outside the prefix are dropped when the checkpoint is prefixed
 * (other towers). A checkpoint that mixes prefixed and unprefixed keys is an error.
 */
export function withOptionalPrefix(reader: SafetensorsReader, prefix: string, ignoredPrefixes: readonly string[] = []): StateDictSource {
  const all = reader.keys();
  const prefixed = all.filter((k) => k.startsWith(prefix));
  const others = all.filter((k) => !k.startsWith(prefix) && !ignoredPrefixes.some((p) => k.startsWith(p)));
  if (prefixed.length && others.length)
    throw new FileError(
      reader.path,
      `the checkpoint mixes keys with and without the '${prefix}' prefix (${prefixed.length} with, e.g. '${prefixed[0]}'; ${others.length} without, e.g. '${others[0]}'): expected all of them one way`,
    );
  const path = reader.path;
  if (prefixed.length) return Object.assign({ keys: () => prefixed, get: (k: string) => reader.get(k), shapeOf: (k: string) => reader.shapeOf(k) }, { path });
  const strip = (k: string) => k.slice(prefix.length);
  return Object.assign(
    { keys: () => others.map((k) => prefix + k), get: (k: string) => reader.get(strip(k)), shapeOf: (k: string) => reader.shapeOf(strip(k)) },
    { path },
  );
}

/** Number of tensors a lazy source lists. */
function countKeys(source: StateDictSource): number {
  if (source instanceof Map) return source.size;
  if (typeof (source as { keys?: unknown }).keys === "function") return [...(source as { keys(): Iterable<string> }).keys()].length;
  return Object.keys(source).length;
}

/**
 * Builds a model on the meta device and loads `weights` into it strictly, converted to the
 * requested dtype and device. The build may create at most a few more tensors than the checkpoint
 * holds (tied weights, non-persistent buffers), so a config that does not fit its weights fails
 * fast with a ConfigError naming `what` instead of building millions of modules.
 */
export function loadPretrained<M extends Module>(spec: {
  /** Named in errors: the config path or the folder. */
  what: string;
  build: (options: { dtype: DType; device: "meta" }) => M;
  weights: StateDictSource;
  options?: PretrainedOptions;
  /** Tensors the build makes beyond the checkpoint's keys (weights it supplies itself, e.g. packed quantized ones). */
  extraTensors?: number;
}): M {
  const { dtype, device } = resolveLoadOptions(spec.options);
  const budget = countKeys(spec.weights) + (spec.extraTensors ?? 0) + 256;
  const model = buildWithinBudget(budget, spec.what, () => spec.build({ dtype, device: "meta" }));
  try {
    model.loadStateDict(spec.weights, { assign: true, dtype, device });
  } catch (e) {
    // name the files: a bare key list does not say which checkpoint it came from
    if (e instanceof StateDictError) {
      const weightsPath = (spec.weights as { path?: unknown }).path;
      e.message = `${spec.what}${typeof weightsPath === "string" ? ` with ${weightsPath}` : ""}: ${e.message}`;
    }
    throw e;
  }
  return model.eval();
}
