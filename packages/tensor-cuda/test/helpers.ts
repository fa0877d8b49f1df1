// Shared test helpers: the devices to run on, value comparison, finite-difference gradcheck,
// and the Python reference fixtures.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { isCudaAvailable, noGrad, scope, type Tensor, tensor } from "../src/index.js";
import { generateOnce } from "../../../tools/test-support/generate-once.js";

/** CPU always; CUDA too when this machine has a GPU (the CUDA leg of the same tests). */
export const devices: string[] = ["cpu", ...(isCudaAvailable() ? ["cuda"] : [])];

export function flat(t: Tensor): number[] {
  return Array.from(t.toArray() as ArrayLike<number | bigint>, Number);
}

export function maxAbsDiff(a: Tensor | number[], b: Tensor | number[]): number {
  const x = Array.isArray(a) ? a : flat(a);
  const y = Array.isArray(b) ? b : flat(b);
  expect(x.length).toBe(y.length);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

export function expectClose(actual: Tensor, expected: unknown, atol = 1e-6): void {
  const e = (expected as unknown[]).flat(8) as number[];
  expect(maxAbsDiff(flat(actual), e)).toBeLessThanOrEqual(atol);
}

/**
 * Checks autograd gradients of `f` against central finite differences, in float64. `f` maps
 * the inputs to a tensor; the scalar checked is sum(f(inputs) * w) with a fixed random w.
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: { eps?: number; tol?: number; check?: boolean[] } = {}): void {
  const eps = options.eps ?? 1e-6;
  const tol = options.tol ?? 1e-5;
  scope(() => {
    const xs = inputs.map((x) => x.detach().clone().requiresGrad_(x.isFloatingPoint()));
    const out = f(...xs);
    const wv = Array.from({ length: out.numel() }, (_, i) => Math.sin(i * 1.7 + 0.3) + 1.1);
    const w = tensor(Float64Array.from(wv), { shape: out.shape, device: out.device }).to(out.dtype);
    out.mul(w).sum().backward();
    const loss = (vals: Tensor[]) =>
      noGrad(() =>
        f(...vals)
          .mul(w)
          .sum()
          .item(),
      );
    xs.forEach((x, k) => {
      if (!x.isFloatingPoint() || options.check?.[k] === false) return;
      const analytic = flat(x.grad!);
      const base = flat(x.detach());
      const numeric: number[] = [];
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number) => {
          const v = base.slice();
          v[i]! += delta;
          const t = tensor(Float64Array.from(v), { shape: x.shape, device: x.device });
          return loss(xs.map((y, j) => (j === k ? t : y.detach())));
        };
        numeric.push((at(eps) - at(-eps)) / (2 * eps));
      }
      const scale = Math.max(1, ...numeric.map(Math.abs));
      expect(maxAbsDiff(analytic, numeric) / scale, `input ${k}`).toBeLessThanOrEqual(tol);
    });
  });
}

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, "..", "..", "..");
export const fixtures = join(here, "fixtures", "generated");

/** Runs the Python reference script once (it needs python3 with torch==2.13.0 and safetensors). */
export function referenceFixtures(): string {
  generateOnce(join(fixtures, "schedules.json"), fixtures, () => {
    execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", "tensor_cuda_reference.py"), fixtures], { stdio: "pipe" });
  });
  return fixtures;
}

export function python(script: string, args: string[]): string {
  return execFileSync(process.env.PYTHON ?? "python3", [join(repoRoot, "tools", "reference", script), ...args], { encoding: "utf8" });
}

export { generateOnce };
