// A package README's first ```ts block must be its examples/readme.ts (less the first comment
// line), so the README's code is compiled by `pnpm typecheck` and run by the package's tests.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export function readmeExampleMismatch(packageDir: string, file = "readme.ts"): string | null {
  const readme = readFileSync(join(packageDir, "README.md"), "utf8");
  const example = readFileSync(join(packageDir, "examples", file), "utf8").split("\n").slice(1).join("\n");
  const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) return "README.md has no ```ts block";
  return block === example ? null : `README.md's ts block differs from examples/${file}: copy the file into the README (less its first line)`;
}
