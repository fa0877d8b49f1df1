// The one key rename of Llama checkpoints: a tied lm_head is the embedding itself, so
// save_pretrained (and llama.cpp's converter) omit `lm_head.weight`; some checkpoints keep it.
import type * as T from "@pisces/tensor-cuda";

/** A view of `source` that also lists `lm_head.weight` (read from the embedding) when tied and absent. */
export function withTiedLmHead(source: T.nn.StateDictSource & { keys(): Iterable<string> }, tied: boolean): T.nn.StateDictSource {
  const keys = [...source.keys()];
  const lazy = source as { get(k: string): T.Tensor; shapeOf?(k: string): number[] };
  if (!tied || keys.includes("lm_head.weight")) return source;
  const from = (k: string) => (k === "lm_head.weight" ? "model.embed_tokens.weight" : k);
  return {
    keys: () => [...keys, "lm_head.weight"],
    get: (k) => lazy.get(from(k)),
    shapeOf: (k) => (lazy.shapeOf ? lazy.shapeOf(from(k)) : lazy.get(from(k)).shape),
    path: (source as { path?: string }).path, // named in loading errors
  } as T.nn.StateDictSource;
}

/** Replaces the module at `path` ("model.layers.0.mlp.up_proj") of `root`. */
export function replaceModule(root: T.nn.Module, path: string, module: T.nn.Module): void {
  const parts = path.split(".");
  let parent = root as unknown as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) parent = parent[p] as Record<string, unknown>;
  parent[parts[parts.length - 1]!] = module;
}
