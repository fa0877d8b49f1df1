// Bad folders and bad batches: each a clear error naming the problem; nothing crashes, nothing is half-written.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PiscesConfigError, PiscesForConditionalGeneration, resolvePiscesConfig } from "../src/index.js";
import { referenceDir } from "./helpers.js";

let source: string;
let work: string;
let model: PiscesForConditionalGeneration;
beforeAll(() => {
  source = join(referenceDir("tied_k2"), "model");
  work = mkdtempSync(join(tmpdir(), "pisces-untrusted-"));
  model = PiscesForConditionalGeneration.fromPretrained(source);
});
afterAll(() => {
  model?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** A copy of the reference folder with `edit` applied. */
function variant(name: string, edit: (dir: string) => void): string {
  const dir = join(work, name);
  cpSync(source, dir, { recursive: true });
  edit(dir);
  return dir;
}
function editJson(path: string, change: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(readFileSync(path, "utf8"));
  change(json);
  writeFileSync(path, JSON.stringify(json));
}

describe("a Pisces folder that does not fit", () => {
  it("a missing part names the folder", () => {
    for (const part of ["siglip", "gen_clip", "decoder"]) {
      const dir = variant(`no-${part}`, (d) => rmSync(join(d, part), { recursive: true }));
      expect(() => PiscesForConditionalGeneration.fromPretrained(dir)).toThrow(new RegExp(`the '${part}' folder is missing`));
    }
    const dir = variant("no-decoder-ok", (d) => rmSync(join(d, "decoder"), { recursive: true }));
    const m = PiscesForConditionalGeneration.fromPretrained(dir, { decoder: false }); // understanding only
    expect(m.decoder).toBeNull();
    m.dispose();
  });

  it("widths across parts: one error naming both sides", () => {
    // the other reference config's decoder was trained for 24-wide gen-CLIP vectors
    const clip = variant("clip-width", (d) => {
      rmSync(join(d, "decoder"), { recursive: true });
      cpSync(join(referenceDir("untied_k4"), "model", "decoder"), join(d, "decoder"), { recursive: true });
    });
    expect(() => PiscesForConditionalGeneration.fromPretrained(clip)).toThrow(
      /cross_attention_dim is 24 but the gen-CLIP width \(gen_clip\/config.json hidden_size\) is 16/,
    );
    expect(() => PiscesForConditionalGeneration.fromPretrained(clip)).toThrow(/leaves 24 values for the pooled vector/);
    const siglip = variant("siglip-width", (d) => {
      const m = PiscesForConditionalGeneration.fromPretrained(source, { decoder: false });
      const state = m.stateDict();
      state.set("understanding_projector.linear_1.weight", T.zeros([32, 20]));
      state.delete("language_model.lm_head.weight");
      T.saveSafetensors(join(d, "model.safetensors"), state);
      m.dispose();
    });
    expect(() => PiscesForConditionalGeneration.fromPretrained(siglip)).toThrow(
      /understanding_projector.linear_1.weight has input width 20 but siglip\/config.json hidden_size is 24/,
    );
  });

  it("config.json problems are reported together, naming keys", () => {
    const base = JSON.parse(readFileSync(join(source, "config.json"), "utf8"));
    const bad = (change: object, message: RegExp) => expect(() => resolvePiscesConfig({ ...base, ...change }, "config.json")).toThrow(message);
    bad({ model_type: "llava" }, /model_type/);
    bad({ image_start_token_id: 10_000 }, /image_start_token_id = 10000 is outside the LLM's vocabulary/);
    bad({ image_end_token_id: base.image_start_token_id }, /must differ/);
    bad({ understanding_feature_layer: 0 }, /understanding_feature_layer = 0 would take the patch embeddings/);
    bad({ generation_pool_kernel: 0 }, /generation_pool_kernel/);
    bad({ image_loss_weight: -1 }, /image_loss_weight/);
    bad({ generation_prompt: "no caption here" }, /must contain \{caption\}/);
    bad({ captioning_prompt: "[IMG] x" }, /must not contain \[IMG\]/);
    bad({ text_config: { ...base.text_config, hidden_size: 0 } }, /text_config.hidden_size/);
    bad({ text_config: "llama" }, /text_config must be a Llama config object/);
    expect(() => resolvePiscesConfig({ ...base, understanding_feature_layer: 0, image_loss_weight: -1 }, "config.json")).toThrow(/2 problems/);
    expect(resolvePiscesConfig({ ...base, brand_new_option: 1 }, "config.json").unknownKeys).toEqual(["brand_new_option"]);
    const kernel = variant("kernel", (d) => editJson(join(d, "config.json"), (j) => (j.generation_pool_kernel = 3)));
    expect(() => PiscesForConditionalGeneration.fromPretrained(kernel)).toThrow(PiscesConfigError);
    expect(() => PiscesForConditionalGeneration.fromPretrained(kernel)).toThrow(/generation_pool_kernel = 3: .*8x8 patch grid is not a multiple of kernel 3/);
  });

  it("a tokenizer without [IMG] / [/IMG] at the config's ids", () => {
    const dir = variant("tokenizer", (d) =>
      editJson(join(d, "config.json"), (j) => {
        j.image_start_token_id = 3;
      }),
    );
    expect(() => PiscesForConditionalGeneration.fromPretrained(dir)).toThrow(
      /the tokenizer maps \[IMG\] \/ \[\/IMG\] to .* but config.json says image_start_token_id 3/,
    );
  });
});

describe("bad batches", () => {
  const image = () => join(referenceDir("tied_k2"), "image0.png");
  it("records the processor refuses", async () => {
    const p = model.processor!;
    await expect(p.call([])).rejects.toThrow(/the batch has no records/);
    await expect(p.call([{ task: "captioning", image: image(), caption: "  " }])).rejects.toThrow(/record 0: the caption is empty/);
    await expect(p.call([{ task: "captioning", caption: "x" } as never])).rejects.toThrow(/record 0: a captioning record needs an image/);
    await expect(p.call([{ task: "painting" } as never])).rejects.toThrow(/record 0: unknown task "painting"/);
    await expect(p.call([{ task: "generation", caption: "a [/IMG] b" }])).rejects.toThrow(/must not contain/);
    await expect(p.call([{ task: "generation", caption: "word ".repeat(300) }])).rejects.toThrow(
      /record 0 is \d+ tokens long, more than the LLM's 256 positions/,
    );
    await expect(p.call([{ task: "captioning", image: join(work, "missing.png"), caption: "x" }])).rejects.toThrow(/record 0: .*missing.png/);
    writeFileSync(join(work, "corrupt.png"), "not an image at all");
    await expect(p.call([{ task: "generation", image: join(work, "corrupt.png"), caption: "x" }])).rejects.toThrow(/record 0: /);
  });

  it("placeholder counts that do not match the images", async () => {
    const batch = await model.processor!.call([{ task: "captioning", image: image(), caption: "a red circle" }]);
    const twoImages = T.cat([batch.understandingPixelValues!, batch.understandingPixelValues!], 0);
    expect(() => model.forward({ ...batch, understandingPixelValues: twoImages })).toThrow(
      /marks 16 understanding places, but 2 image\(s\) x 16 vectors = 32 were given/,
    );
    expect(() => model.forward({ ...batch, understandingPixelValues: null })).toThrow(/marks 16 understanding places but gives no understanding pixel values/);
    const gen = await model.processor!.call([{ task: "generation", caption: "a red circle" }]); // no target image
    expect(() => model.forward(gen)).toThrow(/marks 16 generation places but gives no generation pixel values or targets/);
    expect(() => model.forward({ ...batch, understandingMask: T.zeros([1, 3]) })).toThrow(/understandingMask must be \[1, \d+\] like inputIds/);
  });

  it("guidance and captions for the vectors", () => {
    expect(() => model.generateImageEmbeddings({ captions: [] })).toThrow(/captions must be a non-empty list/);
    expect(() => model.generateImageEmbeddings({ captions: ["x"], guidanceScale: 0 })).toThrow(/guidanceScale must be a positive number/);
    expect(() => model.generateImageEmbeddings({ captions: ["x ".repeat(300)] })).toThrow(/exceeds the LLM's 256 positions: shorten the caption/);
  });

  it("savePretrained never leaves a half-written folder", () => {
    const target = join(work, "saved");
    model.savePretrained(target);
    const before = readdirSync(work).filter((n) => n.startsWith(".saved.tmp-"));
    expect(before).toEqual([]);
    // a failing save (a disposed weight) leaves the old folder as it was, and no temporary
    const m = PiscesForConditionalGeneration.fromPretrained(target);
    const stamp = readFileSync(join(target, "model.safetensors"));
    m.generation_head.linear_1.weight.dispose();
    expect(() => m.savePretrained(target)).toThrow(/disposed/);
    expect(Buffer.compare(readFileSync(join(target, "model.safetensors")), stamp)).toBe(0);
    expect(readdirSync(work).filter((n) => n.startsWith(".saved.tmp-"))).toEqual([]);
    expect(existsSync(join(target, "decoder", "unet", "diffusion_pytorch_model.safetensors"))).toBe(true);
  });
});
