// The model's thread: loads the Pisces folder once, then runs one job at a time (chat or image),
// streaming text deltas and progress back, and stops a job between steps when it is cancelled.
// A failing job answers with an error and the worker goes on; only a failed load is fatal.
import { parentPort, workerData } from "node:worker_threads";
import { PiscesForConditionalGeneration } from "@pisces/model";
import { imageToText, textToImage } from "@pisces/sampler";
import * as T from "@pisces/tensor-cuda";
import type { FromWorker, Job, ToWorker } from "./protocol.js";

const port = parentPort!;
const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const controllers = new Map<number, AbortController>();
const queue: Job[] = [];
let running = false;
let model: PiscesForConditionalGeneration;

try {
  model = PiscesForConditionalGeneration.fromPretrained((workerData as { model: string }).model);
  send({ type: "ready", model: (workerData as { model: string }).model });
  const m = T.memoryStats();
  send({ type: "stats", liveTensors: m.liveTensors, liveBytes: m.liveBytes });
} catch (e) {
  send({ type: "fatal", message: (e as Error).message });
  process.exit(1);
}

async function run(job: Job): Promise<void> {
  const controller = new AbortController();
  controllers.set(job.id, controller);
  try {
    if (job.type === "chat") {
      let text = "";
      let streamed = "";
      let tokens = 0;
      for await (const e of imageToText(model, {
        messages: job.messages,
        images: job.images.map((b) => Buffer.from(b)),
        maxNewTokens: job.maxNewTokens,
        ...(job.temperature !== undefined && job.temperature > 0 ? { doSample: true, temperature: job.temperature } : {}),
        ...(job.topP !== undefined ? { topP: job.topP } : {}),
        ...(job.seed !== undefined ? { seed: job.seed } : {}),
        signal: controller.signal,
      })) {
        if (e.stage === "text" && e.text[0]) {
          streamed += e.text[0];
          send({ type: "text", id: job.id, delta: e.text[0] });
        }
        if (e.stage === "done") {
          text = e.texts[0]!;
          tokens = e.tokens[0]!.length;
        }
      }
      // what the stream held back (an incomplete character at the end) goes out before done
      if (text.length > streamed.length && text.startsWith(streamed)) send({ type: "text", id: job.id, delta: text.slice(streamed.length) });
      send({ type: "done", id: job.id, text, tokens });
    } else {
      let images: Buffer[] = [];
      for await (const e of textToImage(model, {
        prompts: job.prompt,
        numImagesPerPrompt: job.n,
        seed: job.seed,
        steps: job.steps,
        guidanceScale: job.guidanceScale,
        width: job.width,
        height: job.height,
        previewEvery: job.previewEvery,
        signal: controller.signal,
      })) {
        if (e.stage === "vectors") send({ type: "progress", id: job.id, stage: "vectors", step: e.i + 1, of: e.of });
        if (e.stage === "denoise")
          send({ type: "progress", id: job.id, stage: "denoise", step: e.step, of: e.of, previews: e.preview?.map((b) => new Uint8Array(b)) });
        if (e.stage === "done") images = e.images;
      }
      send({ type: "done", id: job.id, images: images.map((b) => new Uint8Array(b)) });
    }
  } catch (e) {
    const err = e as Error;
    const status = controller.signal.aborted ? 499 : err.name === "SamplerError" || err.name === "PiscesError" || err.name === "ImageError" ? 422 : 500;
    send({ type: "error", id: job.id, message: err.message.split("\n")[0]!, status });
  } finally {
    controllers.delete(job.id);
    const m = T.memoryStats();
    send({ type: "stats", liveTensors: m.liveTensors, liveBytes: m.liveBytes });
  }
}

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  while (queue.length) await run(queue.shift()!);
  running = false;
}

port.on("message", (m: ToWorker) => {
  if (m.type === "cancel") {
    const i = queue.findIndex((j) => j.id === m.id);
    if (i >= 0) queue.splice(i, 1);
    controllers.get(m.id)?.abort();
    return;
  }
  queue.push(m);
  void drain();
});
