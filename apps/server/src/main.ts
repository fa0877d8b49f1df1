#!/usr/bin/env node
// pisces-server [--model DIR] [--port 8000] [--host 127.0.0.1] [--max-queue 4]
// The model: --model, else $PISCES_MODEL, else the shipped shapes model (@pisces/pisces-shapes-tiny).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { modelPath as shippedModel } from "@pisces/pisces-shapes-tiny";
import { createServer } from "./server.js";

const usage = "usage: pisces-server [--model DIR] [--port 8000] [--host 127.0.0.1] [--max-queue 4]\n";
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
const model = values.model ?? process.env.PISCES_MODEL ?? shippedModel;
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`pisces-server: --port must be an integer from 0 to 65535, got ${values.port}\n${usage}`);
  process.exit(2);
}
if (!existsSync(join(model, "config.json"))) {
  process.stderr.write(`pisces-server: ${model} is not a Pisces folder (no config.json): pass --model with a folder in the @pisces/model layout\n`);
  process.exit(2);
}
const server = createServer({ model, maxQueue: Number(values["max-queue"]) });
await server.app.listen({ port, host: values.host });
process.stderr.write(`pisces-server: http://${values.host}:${port}/ (model ${model}, loading)\n`);
await server.modelReady;
process.stderr.write("pisces-server: model ready\n");
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void server.close().then(() => process.exit(0)));
