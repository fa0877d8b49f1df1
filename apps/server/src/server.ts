// The demo server: OpenAI-compatible endpoints over a Pisces folder, on fastify. The model runs in
// a worker thread (the event loop stays free: /health answers while a generation runs); requests
// wait in a bounded queue (past it: 429 with Retry-After); a client that goes away cancels its job.
// Every error is {error: {message, type}} with a status that says whose fault it was.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { PiscesMessage } from "@pisces/model";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { FromWorker, Job } from "./protocol.js";

export interface ServerOptions {
  /** The Pisces folder. */
  model: string;
  /** Jobs waiting beside the running one before 429 (default 4). */
  maxQueue?: number;
  /** Request bodies over this are refused with 413 (default 8 MiB: a few images as data URLs). */
  bodyLimit?: number;
  maxPromptChars?: number;
  maxImages?: number;
  maxSteps?: number;
  maxTokens?: number;
  logger?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly kind = status >= 500 ? "server_error" : "invalid_request_error",
  ) {
    super(message);
  }
}

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith(".ts");

function workerUrl(): URL {
  // from source (tests, tsx) a bootstrap registers tsx in the worker first; built, the compiled worker
  return new URL(fromSource ? "./worker-boot.mjs" : "./worker.js", import.meta.url);
}

/** OpenAI chat messages (content a string or parts with text and data-URL images) -> Pisces messages and the images they place. */
export function toPiscesMessages(messages: unknown, maxImages: number): { messages: PiscesMessage[]; images: Uint8Array[] } {
  if (!Array.isArray(messages) || messages.length === 0) throw new HttpError(422, "messages must be a non-empty array of {role, content}");
  const images: Uint8Array[] = [];
  const out = messages.map((m, i): PiscesMessage => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || !["system", "user", "assistant"].includes(role))
      throw new HttpError(422, `messages[${i}].role must be system, user or assistant`);
    if (typeof content === "string") return { role, content };
    if (!Array.isArray(content)) throw new HttpError(422, `messages[${i}].content must be a string or an array of parts`);
    return {
      role,
      content: content.map((p, j) => {
        const part = (p ?? {}) as { type?: unknown; text?: unknown; image_url?: { url?: unknown } | string };
        if (part.type === "text" && typeof part.text === "string") return { type: "text" as const, text: part.text };
        if (part.type === "image_url") {
          const url = typeof part.image_url === "string" ? part.image_url : part.image_url?.url;
          const match = typeof url === "string" ? /^data:image\/[\w.+-]+;base64,(.*)$/s.exec(url) : null;
          if (!match) throw new HttpError(422, `messages[${i}].content[${j}]: only data: URLs with base64 images are accepted (this server fetches nothing)`);
          if (images.length >= maxImages) throw new HttpError(422, `at most ${maxImages} images per request`);
          images.push(new Uint8Array(Buffer.from(match[1]!, "base64")));
          return { type: "image" as const };
        }
        throw new HttpError(422, `messages[${i}].content[${j}] must be {type: "text", text} or {type: "image_url", image_url: {url}}`);
      }),
    };
  });
  return { messages: out, images };
}

function intField(body: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new HttpError(422, `${key} must be an integer from ${min} to ${max}`);
  return v;
}

function numberField(body: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) throw new HttpError(422, `${key} must be a number from ${min} to ${max}`);
  return v;
}

export interface PiscesServer {
  /** The fastify app (inject() for tests, listen() to serve). */
  app: FastifyInstance;
  /** Resolves once the model has loaded (or failed to: /health then says why). */
  modelReady: Promise<void>;
  /** Stops listening and ends the model's worker. */
  close(): Promise<void>;
}

export function createServer(options: ServerOptions): PiscesServer {
  const maxQueue = options.maxQueue ?? 4;
  const limits = { prompt: options.maxPromptChars ?? 2000, images: options.maxImages ?? 4, steps: options.maxSteps ?? 100, tokens: options.maxTokens ?? 512 };
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: options.bodyLimit ?? 8 * 1024 * 1024 });
  let state: "loading" | "ok" | "error" = "loading";
  let fatal = "";
  const worker = new Worker(workerUrl(), { workerData: { model: options.model } });
  const handlers = new Map<number, (m: FromWorker) => void>();
  let nextId = 1;
  let tensors = { live: 0, bytes: 0 };
  const ready = new Promise<void>((resolve) => {
    worker.on("message", (m: FromWorker) => {
      if (m.type === "ready") {
        state = "ok";
        resolve();
      } else if (m.type === "stats") {
        tensors = { live: m.liveTensors, bytes: m.liveBytes };
      } else if (m.type === "fatal") {
        state = "error";
        fatal = m.message;
        resolve();
      } else handlers.get(m.id)?.(m);
    });
  });
  worker.on("error", (e) => {
    state = "error";
    fatal = e.message;
    for (const h of handlers.values()) h({ type: "error", id: 0, message: `the model worker failed: ${e.message}`, status: 500 });
  });

  /** Queues a job; `on` receives its events. Throws 429 / 503 before queuing. */
  const submit = (job: Omit<Job, "id">, on: (m: FromWorker) => void, reply: FastifyReply): number => {
    if (state !== "ok") throw new HttpError(503, state === "loading" ? "the model is loading" : `the model failed: ${fatal}`, "server_error");
    if (handlers.size > maxQueue)
      throw new HttpError(429, `the model is overloaded: ${handlers.size} requests are in progress or waiting; retry shortly`, "rate_limit_error");
    const id = nextId++;
    handlers.set(id, (m) => {
      if (m.type === "done" || m.type === "error") handlers.delete(id);
      on(m);
    });
    // the connection closed before the end (the client went away): stop its work
    reply.raw.on("close", () => {
      if (handlers.has(id)) {
        handlers.delete(id);
        worker.postMessage({ type: "cancel", id });
      }
    });
    worker.postMessage({ ...job, id } as Job);
    return id;
  };

  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const status = error instanceof HttpError ? error.status : (error.statusCode ?? 500);
    const kind = error instanceof HttpError ? error.kind : status === 413 ? "invalid_request_error" : status >= 500 ? "server_error" : "invalid_request_error";
    if (status === 429) reply.header("retry-after", "2");
    reply.status(status).send({
      error: { message: status === 413 ? `the request body is larger than ${options.bodyLimit ?? 8 * 1024 * 1024} bytes` : error.message, type: kind },
    });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { message: `no route ${request.method} ${request.url}`, type: "invalid_request_error" } }),
  );

  const page = readFileSync(join(here, "..", "public", "index.html"), "utf8");
  app.get("/", (_q, reply) => reply.type("text/html; charset=utf-8").send(page));
  app.get("/health", (_q, reply) =>
    reply.status(state === "ok" ? 200 : 503).send({ status: state, model: options.model, queue: handlers.size, tensors, ...(fatal ? { error: fatal } : {}) }),
  );
  app.get("/v1/models", () => ({ object: "list", data: [{ id: "pisces", object: "model", created: 0, owned_by: "pisces" }] }));

  const sse = (reply: FastifyReply) => {
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    return (data: unknown) => reply.raw.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  };

  type Write = (data: unknown) => void;
  type Done = Extract<FromWorker, { type: "done" }>;
  /**
   * Runs a job as server-sent events: `event` turns the job's messages into events (`done` too, for
   * its last ones); then `[DONE]` and the end. An error becomes an error event. Queue refusals (429,
   * 503) throw before the stream starts, so they are plain JSON errors.
   */
  const streamJob = (job: Omit<Job, "id">, reply: FastifyReply, event: (m: FromWorker, write: Write) => void): Write => {
    let write: Write | null = null;
    submit(
      job,
      (m) => {
        if (!write) return;
        if (m.type === "error") write({ error: { message: m.message, type: m.status >= 500 ? "server_error" : "invalid_request_error" } });
        else event(m, write);
        if (m.type === "done") write("[DONE]");
        if (m.type === "done" || m.type === "error") reply.raw.end();
      },
      reply,
    );
    write = sse(reply);
    return write;
  };
  /** Runs a job to its end; its error becomes the response's. */
  const runJob = async (job: Omit<Job, "id">, reply: FastifyReply): Promise<Done> => {
    const m = await new Promise<FromWorker>((resolve) => submit(job, (e) => (e.type === "done" || e.type === "error") && resolve(e), reply));
    if (m.type === "error") throw new HttpError(m.status, m.message);
    return m as Done;
  };

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const { messages, images } = toPiscesMessages(body.messages, limits.images);
    const text = messages.map((m) => (typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "text" ? p.text : "")).join(""))).join("");
    if (text.length > limits.prompt) throw new HttpError(422, `the messages hold ${text.length} characters, more than ${limits.prompt}`);
    const maxNewTokens = intField(body, "max_tokens", 128, 1, limits.tokens);
    const job = {
      type: "chat" as const,
      messages,
      images,
      maxNewTokens,
      temperature: numberField(body, "temperature", 0, 2),
      topP: numberField(body, "top_p", 0, 1),
      seed: numberField(body, "seed", 0, 2 ** 31 - 1),
    };
    const id = `chatcmpl-${Date.now().toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: object, finish: string | null) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: "pisces",
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    await ready;
    if (body.stream === true) {
      const write = streamJob(job, reply, (m, w) => {
        if (m.type === "text") w(chunk({ content: m.delta }, null));
        if (m.type === "done") w(chunk({}, (m.tokens ?? 0) >= maxNewTokens ? "length" : "stop"));
      });
      write(chunk({ role: "assistant", content: "" }, null));
      return reply;
    }
    const done = await runJob(job, reply);
    const tokens = done.tokens ?? 0;
    return {
      id,
      object: "chat.completion",
      created,
      model: "pisces",
      choices: [{ index: 0, message: { role: "assistant", content: done.text ?? "" }, finish_reason: tokens >= maxNewTokens ? "length" : "stop" }],
      usage: { prompt_tokens: 0, completion_tokens: tokens, total_tokens: tokens },
    };
  });

  app.post("/v1/images/generations", async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body.prompt !== "string" || !body.prompt.trim()) throw new HttpError(422, "prompt must be a non-empty string");
    if (body.prompt.length > limits.prompt) throw new HttpError(422, `the prompt has ${body.prompt.length} characters, more than ${limits.prompt}`);
    if (body.response_format !== undefined && body.response_format !== "b64_json")
      throw new HttpError(422, 'response_format must be "b64_json" (this server keeps no files to link to)');
    let dims: { width?: number; height?: number } = {};
    if (body.size !== undefined) {
      const m = typeof body.size === "string" ? /^(\d+)x(\d+)$/.exec(body.size) : null;
      if (!m) throw new HttpError(422, 'size must be "WIDTHxHEIGHT", e.g. "64x64"');
      dims = { width: Number(m[1]), height: Number(m[2]) };
      if (dims.width! > 2048 || dims.height! > 2048) throw new HttpError(422, "size is at most 2048x2048");
    }
    const job = {
      type: "image" as const,
      prompt: body.prompt,
      n: intField(body, "n", 1, 1, limits.images),
      seed: numberField(body, "seed", 0, 2 ** 31 - 1),
      steps: intField(body, "steps", 30, 1, limits.steps),
      guidanceScale: numberField(body, "guidance_scale", 0, 50) ?? 3,
      previewEvery: body.stream === true ? intField(body, "preview_every", 5, 1, 1000) : 0,
      ...dims,
    };
    const created = Math.floor(Date.now() / 1000);
    await ready;
    if (body.stream === true) {
      streamJob(job, reply, (m, write) => {
        if (m.type === "progress")
          write({
            type: "image_generation.progress",
            stage: m.stage,
            step: m.step,
            of: m.of,
            ...(m.previews ? { previews: m.previews.map((p) => Buffer.from(p).toString("base64")) } : {}),
          });
        if (m.type === "done")
          for (const [index, img] of (m.images ?? []).entries())
            write({ type: "image_generation.completed", index, b64_json: Buffer.from(img).toString("base64") });
      });
      return reply;
    }
    const done = await runJob(job, reply);
    return { created, data: (done.images ?? []).map((img) => ({ b64_json: Buffer.from(img).toString("base64") })) };
  });

  return {
    app,
    modelReady: ready,
    async close() {
      await app.close();
      await worker.terminate();
    },
  };
}
