// The demo server on a tiny random Pisces: the OpenAI-compatible endpoints through the official
// `openai` client, streaming, the queue's 429, cancellation on disconnect, /health staying quick
// while the model works, and JSON errors for bad requests.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { piscesReference } from "../../../tools/test-support/pisces-fixtures.js";
import { createServer, type PiscesServer } from "../src/index.js";

let server: PiscesServer;
let base: string;
let client: OpenAI;
let imageUrl: string;

beforeAll(async () => {
  const ref = piscesReference("tied_k2");
  imageUrl = `data:image/png;base64,${readFileSync(join(ref, "image0.png")).toString("base64")}`;
  server = createServer({ model: join(ref, "model"), maxQueue: 1 });
  await server.app.listen({ port: 0, host: "127.0.0.1" });
  await server.modelReady;
  const address = server.app.server.address() as { port: number };
  base = `http://127.0.0.1:${address.port}`;
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(async () => server?.close());

const json = async (r: Response): Promise<any> => r.json();
const post = (path: string, body: unknown) =>
  fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

describe("demo server", () => {
  it("lists the model and reports health", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["pisces"]);
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await json(health)).toMatchObject({ status: "ok", queue: 0 });
  });

  it("chat completions with an image part, whole and streamed", async () => {
    const messages = [
      {
        role: "user" as const,
        content: [
          { type: "image_url" as const, image_url: { url: imageUrl } },
          { type: "text" as const, text: "what color is it?" },
        ],
      },
    ];
    const whole = await client.chat.completions.create({ model: "pisces", messages, max_tokens: 4 });
    expect(whole.object).toBe("chat.completion");
    expect(typeof whole.choices[0]!.message.content).toBe("string");
    expect(whole.usage!.completion_tokens).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({ model: "pisces", messages, max_tokens: 4, stream: true });
    let text = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]!.delta.content ?? "";
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    expect(text).toBe(whole.choices[0]!.message.content); // greedy: the same text
    expect(["stop", "length"]).toContain(finish);
  });

  it("image generations as base64 PNGs", async () => {
    const r = await client.images.generate({ model: "pisces", prompt: "a red circle", n: 2, response_format: "b64_json", steps: 2 } as never);
    expect(r.data).toHaveLength(2);
    const png = Buffer.from(r.data![0]!.b64_json!, "base64");
    expect(png.subarray(1, 4).toString()).toBe("PNG");
  });

  it("streams image progress events, then the images", async () => {
    const response = await post("/v1/images/generations", { prompt: "a blue square", stream: true, steps: 4, preview_every: 2 });
    expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
    const events = (await response.text())
      .split("\n\n")
      .filter(Boolean)
      .map((l) => l.replace(/^data: /, ""));
    expect(events.at(-1)).toBe("[DONE]");
    const parsed = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(parsed.some((e) => e.type === "image_generation.progress" && e.stage === "denoise" && e.previews)).toBe(true);
    expect(parsed.filter((e) => e.type === "image_generation.completed")).toHaveLength(1);
  });

  it("answers /health while a generation runs, refuses past the queue with 429, and a disconnect cancels", async () => {
    const first = await json(await fetch(`${base}/health`));
    const controller = new AbortController();
    const long = post("/v1/images/generations", { prompt: "a green triangle", steps: 100, size: "256x256" }).catch(() => null);
    const long2 = fetch(`${base}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "a yellow circle", steps: 100, size: "256x256" }),
      signal: controller.signal,
    }).catch(() => null);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    const health = await fetch(`${base}/health`);
    console.log(`/health answered in ${(performance.now() - t0).toFixed(1)} ms while two generations were in flight`);
    // answered while both jobs were still in flight: the model's thread does not block the server's
    expect((await json(health)).queue).toBe(2);
    const refused = await post("/v1/images/generations", { prompt: "one more", steps: 2 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("2");
    expect((await json(refused)).error.type).toBe("rate_limit_error");
    controller.abort(); // the second client leaves: its job is dropped
    await long2;
    await new Promise((r) => setTimeout(r, 200));
    expect((await json(await fetch(`${base}/health`))).queue).toBe(1);
    await long;
    const idle = await json(await fetch(`${base}/health`));
    expect(idle.queue).toBe(0);
    expect(idle.tensors.live).toBe(first.tensors.live); // a cancelled and a finished job leave nothing behind
  }, 120_000);

  it("bad requests get JSON errors and the worker lives on", async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ messages: [] }, 422, /non-empty array/],
      [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://example.com/x.png" } }] }] }, 422, /only data: URLs/],
      [{ messages: [{ role: "user", content: "x".repeat(3000) }] }, 422, /more than 2000/],
      [{ messages: [{ role: "user", content: "hi" }], max_tokens: 0 }, 422, /max_tokens must be an integer/],
    ];
    for (const [body, status, message] of cases) {
      const r = await post("/v1/chat/completions", body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect((await json(r)).error.message).toMatch(message);
    }
    const corrupt = await post("/v1/chat/completions", {
      messages: [
        {
          role: "user",
          content: [
            { type: "image_url", image_url: { url: "data:image/png;base64,bm90IGFuIGltYWdl" } },
            { type: "text", text: "what?" },
          ],
        },
      ],
    });
    expect(corrupt.status).toBeGreaterThanOrEqual(400);
    expect((await json(corrupt)).error.message).toBeTruthy();
    const big = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "x".repeat(9 * 1024 * 1024) }] }),
    });
    expect(big.status).toBe(413);
    expect((await json(big)).error.message).toMatch(/larger than/);
    expect((await post("/v1/images/generations", { prompt: "" })).status).toBe(422);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const after = await client.chat.completions.create({ model: "pisces", messages: [{ role: "user", content: "hello" }], max_tokens: 2 });
    expect(after.choices).toHaveLength(1);
  });

  it("serves the web page", async () => {
    const page = await fetch(`${base}/`);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/\/v1\/images\/generations/);
  });
});
