// `pnpm bench` for @pisces/gen-clip: images/s of a ViT-B/16-shaped CLIP vision tower (random
// weights, float32, CPU) at batch 1 and 8, and preprocessing images/s on the test images, against
// transformers in the same run (tools/reference/vision_bench.py). Writes bench/RESULTS.md.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { ClipImageProcessor, ClipVisionModel, clipVitB16, resolveClipVisionConfig } from "../src/index.js";
import { runVisionBench } from "../../../tools/bench/vision-bench.js";

const here = dirname(fileURLToPath(import.meta.url));
await runVisionBench(T, {
  kind: "clip",
  title: "CLIP vision tower, ViT-B/16 shape (clip-vit-base-patch16), float32",
  makeModel: () => {
    T.manualSeed(0);
    const model = new ClipVisionModel(resolveClipVisionConfig(clipVitB16())).eval();
    return (px: T.Tensor) => void model.forward({ pixelValues: px }).poolerOutput;
  },
  makeProcessor: () => {
    const p = new ClipImageProcessor({ size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 }, resample: 3 });
    return (files: string[], resampling: "exact" | "fast") => p.preprocess(files, { resampling });
  },
  resultsPath: join(here, "RESULTS.md"),
});
