// Reading an image processor's settings from a model folder, as transformers' `from_pretrained`.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: cannot read JSON (${(e as Error).message})`);
  }
}

/**
 * The image processor settings of a model folder: `preprocessor_config.json`, or the
 * `image_processor` part of `processor_config.json` (as transformers 5 saves a whole processor).
 */
export function readImageProcessorConfig(dir: string): Record<string, unknown> {
  const path = join(dir, "preprocessor_config.json");
  if (existsSync(path)) return readJson(path) as Record<string, unknown>;
  const combined = join(dir, "processor_config.json");
  const nested = existsSync(combined) ? (readJson(combined) as { image_processor?: Record<string, unknown> }).image_processor : undefined;
  if (!nested) throw new Error(`${dir}: no preprocessor_config.json (nor an image_processor in processor_config.json)`);
  return nested;
}
