import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@pisces/source"] },
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { execArgv: ["--expose-gc"] } },
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
