#!/usr/bin/env node
// pisces-server --model DIR [--port 8000] [--host 127.0.0.1] [--max-queue 4]
import { parseArgs } from "node:util";
import { createServer } from "./server.js";

const usage = "usage: pisces-server --model DIR [--port 8000] [--host 127.0.0.1] [--max-queue 4]\n";
let values: { model?: string; port?: string; host?: string; "max-queue"?: string };
try {
  ({ values } = parseArgs({
    options: {
      model: { type: "string" },
      port: { type: "string", default: "8000" },
      host: { type: "string", default: "127.0.0.1" },
      "max-queue": { type: "string", default: "4" },
    },
  }));
} catch (e) {
  process.stderr.write(`pisces-server: ${(e as Error).message}\n${usage}`);
  process.exit(2);
}
const model = values.model ?? process.env.PISCES_MODEL;
const port = Number(values.port);
if (!model || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(usage);
  process.exit(2);
}
const server = createServer({ model, maxQueue: Number(values["max-queue"]) });
await server.app.listen({ port, host: values.host });
process.stderr.write(`pisces-server: http://${values.host}:${port}/ (model ${model}, loading)\n`);
await server.modelReady;
process.stderr.write("pisces-server: model ready\n");
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void server.close().then(() => process.exit(0)));
