// Reading an image processor's settings from a model folder, as transformers' `from_pretrained`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";

function readJson(path: string): unknown {
  const json = T.readJsonFile(path, "image processor config");
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new T.ConfigError(["the image processor config must be a JSON object"], path);
  return json;
}

/**
 * The image processor settings of a model folder: `preprocessor_config.json`, or the
 * `image_processor` part of `processor_config.json` (as transformers 5 saves a whole processor).
 */
export function readImageProcessorConfig(dir: string): { json: Record<string, unknown>; path: string } {
  const path = join(dir, "preprocessor_config.json");
  if (existsSync(path)) return { json: readJson(path) as Record<string, unknown>, path };
  const combined = join(dir, "processor_config.json");
  const nested = existsSync(combined) ? (readJson(combined) as { image_processor?: Record<string, unknown> }).image_processor : undefined;
  if (!nested) throw new Error(`${dir}: no preprocessor_config.json (nor an image_processor in processor_config.json)`);
  if (typeof nested !== "object" || Array.isArray(nested)) throw new T.ConfigError(["image_processor must be a JSON object"], combined);
  return { json: nested, path: `${combined} (image_processor)` };
}
