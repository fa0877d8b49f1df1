// Background load for the busy-CPU benchmark rows: processes started by the benchmark itself, so
// ours and transformers run under the same load in the same run.
import { type ChildProcess, spawn } from "node:child_process";

export type LoadKind = "none" | "torch-matmul" | "busy-loop";

/** Two processes each running 2-thread PyTorch matmuls, or two plain busy loops. */
export function startLoad(kind: LoadKind): ChildProcess[] {
  if (kind === "none") return [];
  const python = process.env.PYTHON ?? "python3";
  const make = () =>
    kind === "torch-matmul"
      ? spawn(python, ["-c", "import torch\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\nwhile True: a @ a"], { stdio: "ignore" })
      : spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  return [make(), make()];
}

export function stopLoad(children: ChildProcess[]): void {
  for (const c of children) c.kill("SIGKILL");
}

/** Waits until the load processes have started (PyTorch import takes a moment). */
export async function settleLoad(kind: LoadKind): Promise<void> {
  if (kind !== "none") await new Promise((r) => setTimeout(r, kind === "torch-matmul" ? 4000 : 500));
}
