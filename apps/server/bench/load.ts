// Load test on loopback (a bounded script, no external tool): N concurrent clients for a fixed
// time against /v1/chat/completions and /health on the shipped shapes model; reports requests served,
// 429s, p50 / p99 latency, errors, and the process's memory before, during and after.
//   pnpm --filter @pisces/server bench [-- --clients 8 --seconds 20]
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { modelPath } from "@pisces/pisces-shapes-tiny";
import { createServer } from "../src/index.js";

const { values } = parseArgs({ options: { clients: { type: "string", default: "8" }, seconds: { type: "string", default: "20" } } });
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const server = createServer({ model: modelPath, maxQueue: 4 });
await server.app.listen({ port: 0, host: "127.0.0.1" });
await server.modelReady;
const base = `http://127.0.0.1:${(server.app.server.address() as { port: number }).port}`;
const rss = () => Math.round(process.memoryUsage().rss / 2 ** 20);
// warm up (the first requests allocate the model's working buffers), so "before" is the idle state
for (let i = 0; i < 5; i++)
  await (
    await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 8 }) })
  ).arrayBuffer();
const workerTensors = async () => ((await (await fetch(`${base}/health`)).json()) as { tensors: { live: number; bytes: number } }).tensors;
const memory = { before: rss(), peak: 0, after: 0, tensorsBefore: await workerTensors(), tensorsAfter: { live: 0, bytes: 0 } };

interface Tally {
  ok: number;
  rejected: number;
  errors: number;
  latencies: number[];
}
const chat: Tally = { ok: 0, rejected: 0, errors: 0, latencies: [] };
const health: Tally = { ok: 0, rejected: 0, errors: 0, latencies: [] };
const end = performance.now() + seconds * 1000;
const body = JSON.stringify({ messages: [{ role: "user", content: "how many circles are there?" }], max_tokens: 8 });

async function client(kind: "chat" | "health"): Promise<void> {
  const t = kind === "chat" ? chat : health;
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      const r =
        kind === "chat" ? await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }) : await fetch(`${base}/health`);
      await r.arrayBuffer();
      if (r.status === 200) {
        t.ok++;
        t.latencies.push(performance.now() - t0);
      } else if (r.status === 429) {
        t.rejected++;
        await new Promise((res) => setTimeout(res, 50));
      } else t.errors++;
    } catch {
      t.errors++;
    }
    memory.peak = Math.max(memory.peak, rss());
  }
}

await Promise.all([...Array.from({ length: clients }, () => client("chat")), client("health")]);
await new Promise((r) => setTimeout(r, 500));
memory.after = rss();
memory.tensorsAfter = await workerTensors();
await server.close();

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(1) : "-";
};
const row = (name: string, t: Tally) => `| ${name} | ${t.ok} | ${t.rejected} | ${t.errors} | ${pct(t.latencies, 50)} | ${pct(t.latencies, 99)} |`;
const report = [
  `Load test: ${clients} chat clients + 1 health client for ${seconds} s on loopback, the shipped shapes model (@pisces/pisces-shapes-tiny), queue limit 4 (${new Date().toISOString().slice(0, 10)}, this machine: 2 shared cores, other work running).`,
  "",
  "| endpoint | 200 | 429 | errors | p50 ms | p99 ms |",
  "|---|---|---|---|---|---|",
  row("/v1/chat/completions", chat),
  row("/health", health),
  "",
  `The model worker's live tensors: ${memory.tensorsBefore.live} (${memory.tensorsBefore.bytes} bytes) before, ${memory.tensorsAfter.live} (${memory.tensorsAfter.bytes} bytes) after: the requests leave nothing behind.`,
  `Process memory (RSS, MiB): ${memory.before} before, ${memory.peak} peak, ${memory.after} after (the allocator keeps freed pages; RSS is not the leak measure).`,
].join("\n");
console.log(report);
writeFileSync(join(import.meta.dirname ?? ".", "RESULTS.md"), `# @pisces/server load test\n\n${report}\n`);
if (chat.errors || health.errors || memory.tensorsAfter.live !== memory.tensorsBefore.live) process.exitCode = 1;
