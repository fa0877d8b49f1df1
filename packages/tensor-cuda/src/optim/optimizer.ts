// Optimizers with PyTorch's semantics (torch.optim, single-tensor code path), and gradient clipping.
import { fullLike, noGrad, stack, zerosLike } from "../creation.js";
import { keep, scope } from "../memory.js";
import type { Parameter } from "../nn/module.js";
import type { Tensor } from "../tensor.js";

export interface ParamGroup<H> {
  params: Parameter[];
  options: H;
}

/** Base class: parameter groups (each with its own hyper-parameters, `lr` among them) and per-parameter state. */
export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  protected readonly state = new Map<Parameter, Record<string, Tensor | number>>();

  constructor(params: Iterable<Parameter> | { params: Iterable<Parameter>; options?: Partial<H> }[], defaults: H) {
    const list = Array.from(params as Iterable<unknown>);
    if (list.length === 0) throw new RangeError("optimizer got an empty parameter list");
    const isGroups = list.every((x) => typeof x === "object" && x !== null && "params" in (x as object) && !("_h" in (x as object)));
    this.paramGroups = isGroups
      ? (list as { params: Iterable<Parameter>; options?: Partial<H> }[]).map((g) => ({
          params: Array.from(g.params),
          options: { ...defaults, ...g.options },
        }))
      : [{ params: list as Parameter[], options: { ...defaults } }];
  }

  /** The learning rate of the first group (schedulers set every group's). */
  get lr(): number {
    return this.paramGroups[0]!.options.lr;
  }

  /** Clears gradients (sets them to null, as PyTorch's default `set_to_none=True`). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  /** Applies one update using each parameter's `.grad`; parameters without a gradient are skipped. */
  step(): void {
    noGrad(() =>
      scope(() => {
        for (const group of this.paramGroups)
          for (const p of group.params) {
            const grad = p.grad;
            if (grad === null) continue;
            let st = this.state.get(p);
            if (st === undefined) {
              st = {};
              this.state.set(p, st);
            }
            this.update(p, grad, st, group.options);
          }
      }),
    );
  }

  protected abstract update(param: Parameter, grad: Tensor, state: Record<string, Tensor | number>, options: H): void;

  /**
   * The per-parameter state for a checkpoint, keyed as `state.<i>.<name>` with i the parameter's
   * index across groups (PyTorch's numbering); numbers (e.g. `step`) go in `scalars`. The tensors are
   * the optimizer's own, not copies. Hyper-parameters (lr...) are the caller's to save.
   */
  stateDict(): { tensors: Map<string, Tensor>; scalars: Record<string, number> } {
    const tensors = new Map<string, Tensor>();
    const scalars: Record<string, number> = {};
    let i = 0;
    for (const group of this.paramGroups)
      for (const p of group.params) {
        const st = this.state.get(p);
        if (st) for (const [k, v] of Object.entries(st)) typeof v === "number" ? (scalars[`state.${i}.${k}`] = v) : tensors.set(`state.${i}.${k}`, v);
        i++;
      }
    return { tensors, scalars };
  }

  /** Restores a stateDict() (copies the tensors in, on each parameter's device and dtype); the current state is freed first. */
  loadStateDict(saved: { tensors: Map<string, Tensor>; scalars: Record<string, number> }): void {
    const params = this.paramGroups.flatMap((g) => g.params);
    const next = new Map<Parameter, Record<string, Tensor | number>>();
    const entries: [string, Tensor | number][] = [...saved.tensors, ...Object.entries(saved.scalars)];
    for (const [key, value] of entries) {
      const m = /^state\.(\d+)\.(\w+)$/.exec(key);
      const p = m ? params[Number(m[1])] : undefined;
      if (!m || !p) throw new RangeError(`optimizer state '${key}' does not belong to any of the ${params.length} parameters`);
      if (typeof value !== "number" && value.shape.join() !== p.shape.join())
        throw new RangeError(`optimizer state '${key}' has shape [${value.shape}] but its parameter has [${p.shape}]`);
      const st = next.get(p) ?? {};
      st[m[2]!] = typeof value === "number" ? value : keep(scope(() => value.to({ dtype: p.dtype, device: p.device }).clone()));
      next.set(p, st);
    }
    this.dispose();
    for (const [p, st] of next) this.state.set(p, st);
  }

  /** Frees the optimizer state (moment buffers). */
  dispose(): void {
    for (const st of this.state.values()) for (const v of Object.values(st)) if (typeof v !== "number") v.dispose();
    this.state.clear();
  }
}

export interface AdamWOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  maximize: boolean;
}

/** AdamW (decoupled weight decay), as `torch.optim.AdamW` (amsgrad off). Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 0.01. */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: Iterable<Parameter> | { params: Iterable<Parameter>; options?: Partial<AdamWOptions> }[], options: Partial<AdamWOptions> = {}) {
    const o: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, maximize: false, ...options };
    if (!(o.lr >= 0)) throw new RangeError(`AdamW: invalid learning rate ${o.lr}`);
    if (!(o.eps >= 0)) throw new RangeError(`AdamW: invalid eps ${o.eps}`);
    if (!(o.betas[0] >= 0 && o.betas[0] < 1) || !(o.betas[1] >= 0 && o.betas[1] < 1))
      throw new RangeError(`AdamW: betas must be in [0, 1), got [${o.betas.join(", ")}]`);
    if (!(o.weightDecay >= 0)) throw new RangeError(`AdamW: invalid weightDecay ${o.weightDecay}`);
    super(params, o);
  }

  protected update(param: Parameter, grad: Tensor, st: Record<string, Tensor | number>, o: AdamWOptions): void {
    if (o.maximize) grad = grad.neg();
    if (st.step === undefined) {
      st.step = 0;
      st.expAvg = keep(zerosLike(param));
      st.expAvgSq = keep(zerosLike(param));
    }
    const step = (st.step as number) + 1;
    st.step = step;
    const expAvg = st.expAvg as Tensor;
    const expAvgSq = st.expAvgSq as Tensor;
    const [beta1, beta2] = o.betas;
    if (o.weightDecay !== 0) param.mul_(1 - o.lr * o.weightDecay);
    expAvg.lerp_(grad, 1 - beta1);
    expAvgSq.mul_(beta2).addcmul_(grad, grad, { value: 1 - beta2 });
    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = o.lr / biasCorrection1;
    const denom = expAvgSq.sqrt().div(Math.sqrt(biasCorrection2)).add_(o.eps);
    param.addcdiv_(expAvg, denom, { value: -stepSize });
  }
}

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
}

/** Stochastic gradient descent with optional momentum / Nesterov, as `torch.optim.SGD`. */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Iterable<Parameter> | { params: Iterable<Parameter>; options?: Partial<SGDOptions> }[], options: Partial<SGDOptions> = {}) {
    const o: SGDOptions = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...options };
    if (!(o.lr >= 0)) throw new RangeError(`SGD: invalid learning rate ${o.lr}`);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) throw new RangeError("SGD: Nesterov momentum requires momentum > 0 and dampening 0");
    super(params, o);
  }

  protected update(param: Parameter, grad: Tensor, st: Record<string, Tensor | number>, o: SGDOptions): void {
    let d = o.maximize ? grad.neg() : grad;
    if (o.weightDecay !== 0) d = d.add(param, { alpha: o.weightDecay });
    if (o.momentum !== 0) {
      let buf = st.momentumBuffer as Tensor | undefined;
      if (buf === undefined) {
        buf = keep(d.clone());
        st.momentumBuffer = buf;
      } else buf.mul_(o.momentum).add_(d, { alpha: 1 - o.dampening });
      d = o.nesterov ? d.add(buf, { alpha: o.momentum }) : buf;
    }
    param.add_(d, { alpha: -o.lr });
  }
}

/**
 * Scales gradients in place so that their joint norm is at most `maxNorm` (`clip_grad_norm_`).
 * Returns the norm before clipping, as a number.
 */
export function clipGradNorm(params: Iterable<Parameter>, maxNorm: number, normType = 2): number {
  return noGrad(() =>
    scope(() => {
      const grads = Array.from(params, (p) => p.grad).filter((g): g is Tensor => g !== null);
      if (grads.length === 0) return 0;
      const norms = grads.map((g) => g.norm(normType));
      const total = normType === Infinity ? stack(norms).max() : stack(norms).norm(normType);
      const coef = fullLike(total, maxNorm).div(total.add(1e-6)).clamp(null, 1);
      for (const g of grads) g.mul_(coef);
      return total.item();
    }),
  );
}
