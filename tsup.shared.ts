// The tsup settings every package uses (each package's tsup.config.ts re-exports this): one ESM
// entry with type declarations, for Node 20.
import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
});
