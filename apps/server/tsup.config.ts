import { defineConfig } from "tsup";
import shared from "../../tsup.shared.js";

// the library, the worker the model runs in, and the `pisces-server` command
export default defineConfig({ ...(shared as object), entry: ["src/index.ts", "src/worker.ts", "src/main.ts"] });
