// What the fuzz harness does with each mutated file: the public loading path a user would call,
// then a little use of the result (read every tensor, run a forward, render the template), so an
// input that loads but breaks later is caught too. Runs inside the child process (runner.ts).
import { statSync } from "node:fs";
import { loadImage } from "../../packages/image/src/index.js";
import { AutoTokenizer, LlamaForCausalLM, loadGGUF } from "../../packages/llama/src/index.js";
import { ClipImageProcessor, ClipVisionModel } from "../../packages/gen-clip/src/index.js";
import { AutoencoderKL, schedulerFromConfig, UNet2DConditionModel } from "../../packages/sdxl-decoder/src/index.js";
import { SiglipImageProcessor, SiglipVisionModel } from "../../packages/siglip/src/index.js";
import * as T from "../../packages/tensor-cuda/src/index.js";

export type Format = "safetensors" | "gguf" | "config" | "template" | "image";
export const FORMATS: Format[] = ["safetensors", "gguf", "config", "template", "image"];

const messages = [
  { role: "system", content: "be brief" },
  { role: "user", content: "abc" },
];

/** Loads `path` (a file or a model folder) as `kind` says; resolves on success, throws the loader's error. */
export async function load(format: Format, kind: string, path: string): Promise<void> {
  T.scope(() => undefined);
  switch (format) {
    case "safetensors": {
      const r = T.loadSafetensors(path);
      T.scope(() => {
        for (const k of r.keys()) {
          const t = r.get(k);
          if (t.isFloatingPoint()) t.sum().item();
        }
      });
      return;
    }
    case "gguf": {
      const { model, tokenizer } = loadGGUF(path);
      try {
        T.inference(() => model.forward({ inputIds: T.tensor([[1, 2, 3]]) }).logits.sum().item());
        tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
      } finally {
        model.dispose();
      }
      return;
    }
    case "config": {
      let model: T.nn.Module | null = null;
      try {
        if (kind === "llama") {
          const m = LlamaForCausalLM.fromPretrained(path);
          model = m;
          T.inference(() => m.forward({ inputIds: T.tensor([[1, 2]]) }).logits.sum().item());
        } else if (kind === "siglip") {
          const m = SiglipVisionModel.fromPretrained(path);
          model = m;
          const p = SiglipImageProcessor.fromPretrained(path);
          const s = m.config.imageSize;
          T.inference(() => m.forward({ pixelValues: T.zeros([1, 3, s, s]) }).lastHiddenState.sum().item());
          void p;
        } else if (kind === "clip") {
          const m = ClipVisionModel.fromPretrained(path);
          model = m;
          ClipImageProcessor.fromPretrained(path);
          const s = m.config.imageSize;
          T.inference(() => m.forward({ pixelValues: T.zeros([1, 3, s, s]) }).lastHiddenState.sum().item());
        } else if (kind === "unet") {
          const m = UNet2DConditionModel.fromPretrained(path);
          model = m;
          const c = m.config;
          T.inference(() =>
            m
              .forward({
                sample: T.zeros([1, c.inChannels, 8, 8]),
                timestep: T.tensor([10]),
                encoderHiddenStates: T.zeros([1, 2, c.crossAttentionDim]),
                ...(c.textTime ? { addedCondKwargs: { textEmbeds: T.zeros([1, c.textTime.inputDim - 6 * c.textTime.timeEmbedDim]), timeIds: T.zeros([1, 6]) } } : {}),
              })
              .sample.sum()
              .item(),
          );
        } else if (kind === "vae") {
          const m = AutoencoderKL.fromPretrained(path);
          model = m;
          T.inference(() => m.decode(T.zeros([1, m.config.latentChannels, 2, 2])).sum().item());
        } else if (kind === "scheduler") {
          const json = T.readJsonFile(`${path}/scheduler_config.json`, "scheduler config");
          if (json === null || typeof json !== "object") throw new Error(`${path}/scheduler_config.json: not an object`);
          const s = schedulerFromConfig(json as Record<string, unknown>, `${path}/scheduler_config.json`);
          s.setTimesteps(2); // num_train_timesteps is at least 2
        } else throw new Error(`unknown config kind ${kind}`);
      } finally {
        model?.dispose();
      }
      return;
    }
    case "template": {
      const tok = AutoTokenizer.fromPretrained(path);
      tok.applyChatTemplate(messages, { addGenerationPrompt: true });
      tok.encode("abc ab");
      return;
    }
    case "image": {
      if (statSync(path).size > 2 ** 20) throw new Error("fuzz input too large");
      await loadImage(path);
      return;
    }
  }
}
