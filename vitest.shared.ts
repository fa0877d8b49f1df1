// The vitest settings every package uses (each package's vitest.config.ts re-exports this).
import { defineConfig } from "vitest/config";

// Workspace packages resolve to their TypeScript sources (the "@pisces/source" export condition),
// so tests need no prior build.
const conditions = ["@pisces/source", "import", "node", "default"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
