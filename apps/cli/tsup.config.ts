import { defineConfig } from "tsup";
import shared from "../../tsup.shared.js";

// the library (eval helpers) and the `pisces` command
export default defineConfig({ ...(shared as object), entry: ["src/index.ts", "src/cli.ts"] });
