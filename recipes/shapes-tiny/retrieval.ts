// Image -> text retrieval on held-out scenes for a trained SigLIP part: each of n images against
// the n captions of the same scenes, top-1 by the model's logits; a hit where the chosen caption is
// the image's own or an identical string (short captions repeat). Chance: about 1 / n.
//   npx tsx --conditions=@pisces/source recipes/shapes-tiny/retrieval.ts SIGLIP_DIR DATA_DIR [n]
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { SiglipModel, SiglipProcessor } from "@pisces/siglip";
import * as T from "@pisces/tensor-cuda";

export async function siglipRetrieval(modelDir: string, dataDir: string, n = 64): Promise<Record<"detailed" | "short", number>> {
  const model = SiglipModel.fromPretrained(modelDir);
  const processor = SiglipProcessor.fromPretrained(modelDir);
  const result = { detailed: 0, short: 0 };
  try {
    for (const kind of ["detailed", "short"] as const) {
      const records = readFileSync(join(dataDir, `heldout-gen-${kind}.jsonl`), "utf8")
        .trim()
        .split("\n")
        .slice(0, n)
        .map((l) => JSON.parse(l) as { caption: string; image: string });
      const inputs = await processor.call({ text: records.map((r) => r.caption), images: records.map((r) => join(dataDir, r.image)) });
      const chosen = T.noGrad(() => T.scope(() => model.forward(inputs).logitsPerImage.argmax(-1).tolist() as number[]));
      result[kind] = chosen.filter((j, i) => records[j]!.caption === records[i]!.caption).length;
      inputs.inputIds.dispose();
      inputs.pixelValues.dispose();
    }
  } finally {
    model.dispose();
  }
  return result;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const [dir, data, n] = process.argv.slice(2);
  if (!dir || !data) {
    process.stderr.write("usage: retrieval.ts SIGLIP_DIR DATA_DIR [n]\n");
    process.exit(2);
  }
  const count = Number(n ?? 64);
  siglipRetrieval(resolve(dir), resolve(data), count).then((r) =>
    process.stdout.write(`image -> text top-1 among ${count}: detailed ${r.detailed}/${count}, short ${r.short}/${count}\n`),
  );
}
