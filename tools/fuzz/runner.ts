// The fuzz harness's child process: receives cases over IPC, loads each, and reports the outcome
// and its own peak RSS. The parent kills it on a hang or when its memory passes the cap, and
// restarts it after a crash.
import { type Format, load } from "./loaders.js";

interface Case {
  id: number;
  format: Format;
  kind: string;
  path: string;
}

process.on("message", async (c: Case) => {
  const start = Date.now();
  let outcome: { ok: true } | { ok: false; name: string; message: string };
  try {
    await load(c.format, c.kind, c.path);
    outcome = { ok: true };
  } catch (e) {
    const err = e as Error;
    outcome = { ok: false, name: err?.name ?? typeof e, message: String(err?.message ?? e).slice(0, 500) };
  }
  process.send!({ id: c.id, ms: Date.now() - start, rss: process.memoryUsage().rss, ...outcome });
});
process.send!({ ready: true });
