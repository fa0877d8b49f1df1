// The whole recipe at minimal size: every stage trains a few steps through @pisces/trainer, the
// parts assemble into a Pisces folder, and the evaluation (GenEval-shapes, VQA-shapes, captions)
// runs on it. A smoke model this small scores at chance: this checks the pipeline, not the scores
// (the model card reports those of the full run).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PiscesForConditionalGeneration } from "@pisces/model";
import * as T from "@pisces/tensor-cuda";
import { afterAll, describe, expect, it } from "vitest";
import { runArm, table } from "../ablate.js";
import { evaluate } from "../evaluate.js";
import { runRecipe, STAGES } from "../run.js";

const work = mkdtempSync(join(tmpdir(), "shapes-tiny-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("shapes-tiny recipe (smoke scale)", () => {
  it("trains every stage, assembles a Pisces folder that loads, evaluates it, and skips finished stages when run again", async () => {
    const lines: string[] = [];
    const final = await runRecipe(work, { scale: "smoke", log: (m) => lines.push(m) });
    for (const stage of STAGES) expect(existsSync(join(work, "runs", stage, "final")), stage).toBe(true);
    expect(lines.join("\n")).toMatch(/gen_clip: step 3\/3 loss .* contrastive_loss/);
    expect(lines.join("\n")).toMatch(/stage3: step 2\/2 loss .* image_loss/);
    // the finished folder is stage 3's Pisces with the last trained decoder (decoder_adapt's, which
    // started from decoder_more's beside stage 3's LLM) in place
    expect(final).toBe(join(work, "model"));
    const unet = join("decoder", "unet", "diffusion_pytorch_model.safetensors");
    const same = (a: string, b: string) => readFileSync(join(a, unet)).equals(readFileSync(join(b, unet)));
    expect(same(final, join(work, "runs", "decoder_adapt", "final"))).toBe(true);
    expect(same(final, join(work, "runs", "decoder_more", "final"))).toBe(false);
    expect(same(join(work, "adapt-init"), join(work, "runs", "decoder_more", "final"))).toBe(true);
    expect(readFileSync(join(work, "adapt-init", "model.safetensors")).equals(readFileSync(join(work, "runs", "stage3", "final", "model.safetensors")))).toBe(
      true,
    );
    expect(JSON.parse(readFileSync(join(work, "recipes", "decoder_more.json"), "utf8")).model).toBe(join(work, "runs", "decoder", "final"));
    expect(JSON.parse(readFileSync(join(work, "recipes", "decoder_adapt.json"), "utf8"))).toMatchObject({
      model: join(work, "adapt-init"),
      rollout_conditioning: 0.5,
    });
    const model = PiscesForConditionalGeneration.fromPretrained(final);
    expect(model.numGenerationVectors).toBe(64); // an 8 x 8 gen-CLIP grid, kernel 1
    model.dispose();
    // the recipe files written for each stage are what ran
    expect(JSON.parse(readFileSync(join(work, "recipes", "stage2.json"), "utf8")).model).toBe(join(work, "runs", "stage1", "final"));
    const again: string[] = [];
    await runRecipe(work, { scale: "smoke", log: (m) => again.push(m) });
    expect(again.filter((l) => / done \(/.test(l))).toHaveLength(STAGES.length);

    const e = await evaluate(final, { promptsPerTask: 1, imagesPerPrompt: 1, steps: 2, vqaScenes: 3 });
    expect(e.geneval.images).toBe(6);
    expect(e.geneval.overall).toBeGreaterThanOrEqual(0);
    expect(e.vqa.questions).toBeGreaterThan(0);
    expect(e.vqaBlind.questions).toBe(e.vqa.questions);
    expect(e.captionExactMatch).toBeGreaterThanOrEqual(0);

    // the same folder with its LLM quantized to int8 for inference
    const float = PiscesForConditionalGeneration.fromPretrained(final, { decoder: false });
    const int8 = PiscesForConditionalGeneration.fromPretrained(final, { decoder: false, quantize: "int8" });
    expect(int8.quantized).toBe("int8");
    expect([...int8.language_model.namedModules()].filter(([, m]) => m instanceof T.QuantizedLinear).length).toBe(4 * 7 + 1);
    T.noGrad(() =>
      T.scope(() => {
        const ids = T.tensor([[0, 10, 11, 12, 13, 14]], { dtype: "int64" });
        const a = float.language_model.forward({ inputIds: ids }).logits;
        const b = int8.language_model.forward({ inputIds: ids }).logits;
        const relative = b.sub(a).abs().max().item() / a.abs().max().item();
        expect(relative).toBeGreaterThan(0); // the packed kernels ran
        expect(relative).toBeLessThan(2e-2);
      }),
    );
    expect(() => int8.savePretrained(join(work, "int8-copy"))).toThrow(/quantized \(int8\) when loaded; saving quantized weights is not supported yet/);
    float.dispose();
    int8.dispose();

    // an ablation arm (ablate.ts): stage 3 retrained from stage 2 on its own mixture, then scored
    const arm = await runArm(work, "synergy-understanding", 0, 2, () => {}, {
      scale: "smoke",
      evaluation: { promptsPerTask: 1, imagesPerPrompt: 1, steps: 2, guidanceScale: 3, vqaScenes: 2, rolloutScenes: 2 },
    });
    const armDir = join(work, "ablation", "synergy-understanding-s0");
    const armRecipe = JSON.parse(readFileSync(join(armDir, "recipe.json"), "utf8"));
    expect(armRecipe.model).toBe(join(work, "runs", "stage2", "final"));
    expect(armRecipe.data.map((d: { manifest: string }) => d.manifest.split("/").pop())).toEqual(["train-caption.jsonl", "train-chat.jsonl"]);
    expect(existsSync(join(armDir, "final", "config.json")) && existsSync(join(armDir, "model", unet))).toBe(true);
    expect(arm).toMatchObject({ arm: "synergy-understanding", seed: 0, steps: 2 });
    expect(arm.rollout.teacherForced).toBeGreaterThan(0);
    expect(arm.vqaBlind).toBeGreaterThan(0);
    expect(table([arm])).toMatch(/\| synergy-understanding \| 2 \| 0 \|/);
  }, 900_000);
});
