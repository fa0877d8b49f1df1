import { defineConfig } from "tsup";
import shared from "../../tsup.shared.js";

// the library and the `pisces-train` command
export default defineConfig({ ...(shared as object), entry: ["src/index.ts", "src/cli.ts"] });
