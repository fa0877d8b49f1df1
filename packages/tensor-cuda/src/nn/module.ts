// nn.Module: a named tree of parameters, buffers and child modules, discovered from the
// module's own properties, so property paths are the state-dict keys (`layers.0.attn.q_proj.weight`).
import type { DType } from "../dtype.js";
import { ConfigError } from "../config.js";
import { StateDictError } from "../errors.js";
import { finalizer, keep } from "../memory.js";
import { noGrad } from "../creation.js";
import { detachedHandle, type Device, isDTypeName, Tensor } from "../tensor.js";

// While a model is built for loading, every parameter and buffer counts against a budget taken
// from the checkpoint (how many tensors it holds): a config that implies far more tensors than the
// weights it comes with (num_hidden_layers = 1e6) fails after a bounded amount of work.
let tensorBudget: { left: number; limit: number; what: string } | null = null;

function spendTensorBudget(): void {
  if (tensorBudget === null) return;
  if (--tensorBudget.left < 0) {
    const { limit, what } = tensorBudget;
    tensorBudget = null;
    throw new ConfigError(
      [
        `the config describes a model with more than ${limit} tensors, far more than the checkpoint holds: check the layer counts and sizes against the weights`,
      ],
      what,
    );
  }
}

/**
 * Runs `build` (which constructs a model, typically on the `meta` device) allowing at most
 * `maxTensors` parameters and buffers to be made; past that it throws a ConfigError naming `what`.
 */
export function buildWithinBudget<M>(maxTensors: number, what: string, build: () => M): M {
  const outer = tensorBudget;
  tensorBudget = { left: maxTensors, limit: maxTensors, what };
  try {
    return build();
  } finally {
    tensorBudget = outer;
  }
}

/** A tensor that a Module owns and an optimizer updates: a leaf that requires grad by default. */
export class Parameter extends Tensor {
  /**
   * Makes a parameter from `data`, taking ownership of it: `data`'s handle is released (the
   * parameter keeps its memory), so `new Parameter(T.zeros([n]))` needs no dispose. Pass
   * `data.clone()` to keep using `data`. A Parameter given another Parameter shares it.
   */
  constructor(data: Tensor, options: { requiresGrad?: boolean } = {}) {
    spendTensorBudget();
    super(detachedHandle(data));
    if (!(data instanceof Parameter)) data.dispose();
    keep(this); // parameters live as long as their module: no scope disposes them
    if (options.requiresGrad ?? true) this.requiresGrad = true;
  }

  /** @internal replaces the tensor this parameter holds (module.to, loading), keeping identity. */
  _assign(t: Tensor): void {
    const requiresGrad = this.requiresGrad;
    const h = detachedHandle(t);
    this.dispose();
    this._h = h;
    (this as unknown as { _meta: unknown })._meta = undefined;
    finalizer.register(this, h);
    if (requiresGrad) this.requiresGrad = true;
  }
}

/** A flat mapping from dotted key to tensor. */
export type StateDict = Map<string, Tensor>;

/** What loadStateDict accepts: a Map, a plain object, or a lazy reader such as a safetensors file. */
export type StateDictSource =
  | Map<string, Tensor>
  | Record<string, Tensor>
  | { keys(): Iterable<string>; get(key: string): Tensor; shapeOf?(key: string): number[] };

export abstract class Module {
  training = true;
  /** @internal */ private readonly _buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();

  /** Registers a non-trainable tensor (running stats, rotary frequencies...) under `name`. */
  registerBuffer(name: string, tensor: Tensor, options: { persistent?: boolean } = {}): Tensor {
    spendTensorBudget();
    keep(tensor);
    this._buffers.set(name, { tensor, persistent: options.persistent ?? true });
    Object.defineProperty(this, name, {
      get: () => this._buffers.get(name)!.tensor,
      set: (t: Tensor) => {
        keep(t);
        this._buffers.get(name)!.tensor = t;
      },
      enumerable: false,
      configurable: true,
    });
    return tensor;
  }

  /** Direct children, in declaration order. */
  *namedChildren(): Generator<[string, Module]> {
    for (const [name, value] of Object.entries(this)) if (value instanceof Module) yield [name, value];
  }

  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Every parameter once, by its first path (a tied weight is listed under its first owner only). */
  *namedParameters(prefix = ""): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [path, m] of this.namedModules()) {
      const p = path ? `${prefix}${path}.` : prefix;
      for (const [name, value] of Object.entries(m))
        if (value instanceof Parameter && !seen.has(value)) {
          seen.add(value);
          yield [p + name, value];
        }
    }
  }

  parameters(): Parameter[] {
    return Array.from(this.namedParameters(), ([, p]) => p);
  }

  *namedBuffers(prefix = "", options: { persistentOnly?: boolean } = {}): Generator<[string, Tensor]> {
    for (const [name, b] of this._buffers) if (!options.persistentOnly || b.persistent) yield [prefix + name, b.tensor];
    for (const [name, child] of this.namedChildren()) yield* child.namedBuffers(`${prefix}${name}.`, options);
  }

  /** Parameters and persistent buffers by key. The tensors are the module's own, not copies. */
  stateDict(): StateDict {
    // PyTorch's order: each module's own parameters, then its own buffers, then its children.
    const out: StateDict = new Map();
    for (const [path, m] of this.namedModules()) {
      const prefix = path ? `${path}.` : "";
      for (const [name, value] of Object.entries(m)) if (value instanceof Parameter) out.set(prefix + name, value);
      for (const [name, b] of m._buffers) if (b.persistent) out.set(prefix + name, b.tensor);
    }
    return out;
  }

  /**
   * Loads values into the module's tensors. By default they are copied in (cast to each tensor's
   * dtype and device). With `assign` the module takes the loaded tensors instead, converted to
   * `dtype` (floating-point ones only) and `device`: the way to fill a module built on the `meta`
   * device, so a checkpoint streams in one tensor at a time (PyTorch's `assign=True`).
   * With `strict` (the default) any missing, unexpected or mis-shaped key throws a StateDictError
   * naming them all; without it, mis-shaped keys still throw and the missing/unexpected lists are returned.
   */
  loadStateDict(
    source: StateDictSource,
    options: { strict?: boolean; assign?: boolean; dtype?: DType; device?: Device } = {},
  ): { missingKeys: string[]; unexpectedKeys: string[] } {
    const strict = options.strict ?? true;
    const reader = toReader(source);
    const own = this.stateDict();
    const keys = new Set(reader.keys());
    const missing = [...own.keys()].filter((k) => !keys.has(k));
    const unexpected = [...keys].filter((k) => !own.has(k));
    const mismatched: { key: string; expected: number[]; got: number[] }[] = [];
    for (const [k, t] of own) {
      if (!keys.has(k)) continue;
      const got = reader.shapeOf(k);
      const expected = t.shape;
      if (got.length !== expected.length || got.some((d, i) => d !== expected[i])) mismatched.push({ key: k, expected, got });
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length)))
      throw new StateDictError(strict ? missing : [], strict ? unexpected : [], mismatched, prefixHint(missing, unexpected));
    const buffers = new Map<string, { owner: Module; name: string }>();
    for (const [path, m] of this.namedModules()) for (const [name] of m._buffers) buffers.set(path ? `${path}.${name}` : name, { owner: m, name });
    const loaded = new Set<Tensor>(); // a tied weight appears under several keys: load it once
    noGrad(() => {
      for (const [k, t] of own) {
        if (!keys.has(k) || loaded.has(t)) continue;
        loaded.add(t);
        const value = reader.get(k);
        if (value.isFloatingPoint() !== t.isFloatingPoint()) {
          if (reader.owned) value.dispose();
          throw new StateDictError(
            [],
            [],
            [],
            `'${k}' holds ${value.dtype} values but the model's tensor is ${t.dtype}: the checkpoint's dtype does not fit this weight`,
          );
        }
        try {
          if (!options.assign) {
            t.copy_(value);
            continue;
          }
          const converted = value.to({ device: options.device, dtype: value.isFloatingPoint() ? options.dtype : undefined });
          if (t instanceof Parameter) t._assign(converted);
          else {
            const b = buffers.get(k)!;
            b.owner._buffers.get(b.name)!.tensor.dispose();
            b.owner._buffers.get(b.name)!.tensor = keep(converted === value ? value.clone() : converted);
            continue;
          }
          if (converted !== value) converted.dispose();
        } finally {
          if (reader.owned) value.dispose();
        }
      }
    });
    return { missingKeys: missing, unexpectedKeys: unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /**
   * Moves parameters and buffers to a device and/or casts floating-point ones to a dtype, in
   * place (parameter objects keep their identity, so optimizers built before stay valid).
   */
  to(target: DType | Device | { dtype?: DType; device?: Device }): this {
    const spec = typeof target === "string" ? (isDTypeName(target) ? { dtype: target } : { device: target }) : target;
    const convert = (t: Tensor) => t.to({ device: spec.device, dtype: t.isFloatingPoint() ? spec.dtype : undefined });
    noGrad(() => {
      for (const p of this.parameters()) {
        const moved = convert(p);
        if (moved !== p) {
          p._assign(moved);
          moved.dispose();
        }
      }
      for (const [, m] of this.namedModules())
        for (const b of m._buffers.values()) {
          const moved = convert(b.tensor);
          if (moved !== b.tensor) {
            b.tensor.dispose();
            b.tensor = keep(moved);
          }
        }
    });
    return this;
  }

  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Frees every parameter and buffer of this module tree. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, m] of this.namedModules()) for (const [, b] of m._buffers) b.tensor.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Number of parameter elements. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel(), 0);
  }
}

/** An indexed list of child modules: keys `0`, `1`, ... as in `nn.ModuleList`. */
export class ModuleList<T extends Module = Module> extends Module implements Iterable<T> {
  [index: number]: T;
  constructor(modules: Iterable<T> = []) {
    super();
    let i = 0;
    for (const m of modules) (this as unknown as Record<number, T>)[i++] = m;
  }
  get length(): number {
    return [...this.namedChildren()].length;
  }
  at(index: number): T {
    const m = (this as unknown as Record<number, T | undefined>)[index < 0 ? index + this.length : index];
    if (!m) throw new RangeError(`ModuleList index ${index} out of range (length ${this.length})`);
    return m;
  }
  *[Symbol.iterator](): Iterator<T> {
    for (const [, m] of this.namedChildren()) yield m as T;
  }
}

/**
 * When keys are missing and others unexpected, finds a prefix that explains them (the checkpoint
 * adds or lacks `model.` or `vision_model.`, say) so the error can say which prefix was expected.
 */
function prefixHint(missing: string[], unexpected: string[]): string | undefined {
  if (!missing.length || !unexpected.length) return undefined;
  const unexpectedSet = new Set(unexpected);
  const missingSet = new Set(missing);
  for (const u of unexpected.slice(0, 64))
    for (const m of missing) {
      if (u.endsWith(`.${m}`)) {
        const prefix = u.slice(0, u.length - m.length);
        const n = missing.filter((x) => unexpectedSet.has(prefix + x)).length;
        return `${n} checkpoint keys carry a prefix '${prefix}' that the model's keys do not have (e.g. '${u}' for '${m}')`;
      }
      if (m.endsWith(`.${u}`)) {
        const prefix = m.slice(0, m.length - u.length);
        const n = unexpected.filter((x) => missingSet.has(prefix + x)).length;
        return `${n} checkpoint keys lack the prefix '${prefix}' that the model expects (e.g. '${u}' for '${m}')`;
      }
    }
  return undefined;
}

interface Reader {
  keys(): Iterable<string>;
  get(key: string): Tensor;
  shapeOf(key: string): number[];
  owned: boolean;
}

function toReader(source: StateDictSource): Reader {
  if (source instanceof Map) return { keys: () => source.keys(), get: (k) => source.get(k)!, shapeOf: (k) => source.get(k)!.shape, owned: false };
  if (typeof (source as { get?: unknown }).get === "function" && typeof (source as { keys?: unknown }).keys === "function") {
    const lazy = source as { keys(): Iterable<string>; get(key: string): Tensor; shapeOf?(key: string): number[] };
    return {
      keys: () => lazy.keys(),
      get: (k) => lazy.get(k),
      shapeOf: (k) => (lazy.shapeOf ? lazy.shapeOf(k) : lazy.get(k).shape),
      owned: true,
    };
  }
  const record = source as Record<string, Tensor>;
  return { keys: () => Object.keys(record), get: (k) => record[k]!, shapeOf: (k) => record[k]!.shape, owned: false };
}
