// `pnpm bench` for @pisces/siglip: images/s of a ViT-B/16-shaped SigLIP vision tower (random
// weights, float32, CPU) at batch 1 and 8, and preprocessing images/s on the test images, against
// transformers in the same run (tools/reference/vision_bench.py). Writes bench/RESULTS.md.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as T from "@pisces/tensor-cuda";
import { resolveSiglipVisionConfig, SiglipImageProcessor, SiglipVisionModel, siglipBase224 } from "../src/index.js";
import { runVisionBench } from "../../../tools/bench/vision-bench.js";

const here = dirname(fileURLToPath(import.meta.url));
await runVisionBench(T, {
  kind: "siglip",
  title: "SigLIP vision tower, ViT-B/16 shape (siglip-base-patch16-224), float32",
  makeModel: () => {
    T.manualSeed(0);
    const model = new SiglipVisionModel(resolveSiglipVisionConfig(siglipBase224())).eval();
    return (px: T.Tensor) => void model.forward({ pixelValues: px }).poolerOutput;
  },
  makeProcessor: () => {
    const p = new SiglipImageProcessor({ size: { height: 224, width: 224 }, resample: 3 });
    return (files: string[], resampling: "exact" | "fast") => p.preprocess(files, { resampling });
  },
  resultsPath: join(here, "RESULTS.md"),
});
