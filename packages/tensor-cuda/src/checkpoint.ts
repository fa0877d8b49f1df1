// Activation checkpointing (`torch.utils.checkpoint.checkpoint`): a segment of the forward runs
// and its graph is dropped as soon as it returns; it runs again, recording, when the backward
// reaches it. Memory for activations drops from every intermediate of every segment to the
// segments' inputs, at the cost of a second forward of each segment.
//
// How it works here, without a custom autograd node (which would have to call back into
// JavaScript from libtorch's engine): the segment's outputs are new leaves that require grad. The
// backward of the loss stops at them and accumulates their gradients; then `Tensor.backward()`
// runs the recorded segments, the last first: recompute with grad from detached inputs, backward
// the recomputed outputs with the leaves' gradients, and pass each input's gradient on with
// `input.backward(gradient)` (into an earlier segment's leaf, or through the graph before the
// first segment). Reverse recording order is a valid order: a segment's leaves are only read by
// what was computed after it.
import { isGradEnabled, openAutocastRegions, autocast, type AutocastOptions } from "./creation.js";
import { isFloatingPoint } from "./dtype.js";
import { keep, scope } from "./memory.js";
import { native } from "./native.js";
import { afterBackward, Tensor, wrap } from "./tensor.js";

type Outputs = Tensor | readonly Tensor[];

interface Segment {
  fn: (...inputs: unknown[]) => Outputs;
  /** The inputs as given: tensors as handles of this segment's own (same tensor, same autograd identity). */
  inputs: unknown[];
  /** Handles on the output leaves, to read the gradient the backward left there. */
  leaves: Tensor[];
  meta: { shape: number[]; dtype: string }[];
  autocast: readonly Required<AutocastOptions>[];
}

let tape: Segment[] = [];

function share(t: Tensor): Tensor {
  return keep(wrap(native.share(t._h)));
}

/**
 * Runs `fn(...inputs)` without keeping its intermediate activations for the backward; the
 * backward runs it again (with the autocast regions open now) to get them. Returns `fn`'s output
 * (one tensor or an array of tensors, floating point), as new leaves that require grad.
 *
 * - Every tensor `fn` reads other than parameters must be passed in `inputs` (non-tensor inputs
 *   are passed through): a tensor captured by the closure may be freed by its scope before the
 *   backward runs.
 * - `fn` must compute the same thing twice: no global random draws (dropout), no state changed.
 *   The recomputed outputs' shapes and dtypes are checked against the first run.
 * - With gradient recording off (`noGrad`, inference) this is just `fn(...inputs)`. With it on, the
 *   first run records too and drops its graph at once, so the values passed on are bit for bit
 *   those of a plain forward (some kernels differ with recording off).
 * - The segments recorded are run by the next `backward()`, whatever tensor it is called on, and
 *   released by it unless it retains the graph (`{retainGraph: true}`: a later backward of the
 *   same forward runs them again). A forward that will never be backwarded should call
 *   `discardCheckpoints()`. Double backward (`createGraph`) through a segment is not supported.
 */
export function checkpoint<A extends unknown[], R extends Outputs>(fn: (...inputs: A) => R, ...inputs: A): R {
  if (typeof fn !== "function") throw new TypeError(`checkpoint(fn, ...inputs): fn must be a function, got ${typeof fn}`);
  if (!isGradEnabled()) return fn(...inputs);
  for (const [i, x] of inputs.entries()) if (x instanceof Tensor && x.isDisposed) throw new TypeError(`checkpoint(): input ${i} is a disposed tensor`);
  // The first run records too (on detached inputs, so the graph stays inside the segment) and its
  // graph is dropped at once: with recording off some kernels differ (the fused inference RMSNorm,
  // the few-row linear), and the values passed on must be the ones the recompute differentiates.
  // The peak is one segment's activations, as during the recompute.
  const out = scope(() => {
    const detached = inputs.map(detachedLike) as A;
    return fn(...detached);
  });
  const single = out instanceof Tensor;
  const outs: readonly unknown[] = single ? [out] : Array.isArray(out) ? out : [out];
  if (outs.length === 0 || outs.some((o) => !(o instanceof Tensor)))
    throw new TypeError("checkpoint(fn): fn must return a Tensor or a non-empty array of Tensors");
  const leaves = (outs as Tensor[]).map((o, i) => {
    if (!isFloatingPoint(o.dtype)) {
      for (const x of outs as Tensor[]) x.dispose();
      throw new TypeError(`checkpoint(fn): output ${i} is ${o.dtype}; checkpointed outputs must be floating point (they carry gradients)`);
    }
    return o.detach().requiresGrad_(true);
  });
  for (const o of outs as Tensor[]) o.dispose(); // and with them the first run's graph
  tape.push({
    fn: fn as unknown as (...inputs: unknown[]) => Outputs,
    inputs: inputs.map((x) => (x instanceof Tensor ? share(x) : x)),
    leaves: leaves.map(share),
    meta: leaves.map((l) => ({ shape: l.shape as number[], dtype: l.dtype })),
    autocast: openAutocastRegions(),
  });
  return (single ? leaves[0] : leaves) as unknown as R;
}

/** Forgets the segments recorded since the last backward (a checkpointed forward that will not be backwarded). */
export function discardCheckpoints(): void {
  const segments = tape;
  tape = [];
  for (const s of segments) release(s);
}

/** @internal segments recorded and not yet run by a backward (for tests and memory accounting). */
export function pendingCheckpoints(): number {
  return tape.length;
}

/** A tensor input as the segment sees it: detached, requiring grad where the original does. */
function detachedLike(x: unknown): unknown {
  if (!(x instanceof Tensor)) return x;
  const d = x.detach();
  if (x.requiresGrad) d.requiresGrad_(true);
  return d;
}

function release(s: Segment): void {
  for (const x of s.inputs) if (x instanceof Tensor) x.dispose();
  for (const l of s.leaves) l.dispose();
}

function withAutocast<R>(regions: readonly Required<AutocastOptions>[], fn: () => R): R {
  if (regions.length === 0) return fn();
  const [first, ...rest] = regions;
  return autocast(first!, () => withAutocast(rest, fn));
}

function runSegment(s: Segment): void {
  scope(() => {
    const grads = s.leaves.map((l) => {
      const g = native.grad(l._h);
      return g === null ? null : wrap(g);
    });
    if (grads.every((g) => g === null)) return; // the loss does not depend on this segment
    for (const l of s.leaves) native.setGrad(l._h, null);
    const previous = native.setGradEnabled(true);
    try {
      const detached = s.inputs.map(detachedLike);
      const out = withAutocast(s.autocast, () => s.fn(...detached));
      const outs = out instanceof Tensor ? [out] : Array.isArray(out) ? (out as Tensor[]) : [];
      if (
        outs.length !== s.meta.length ||
        outs.some((o, i) => !(o instanceof Tensor) || o.dtype !== s.meta[i]!.dtype || o.shape.join() !== s.meta[i]!.shape.join())
      )
        throw new Error(
          `checkpoint(): the recomputed segment returned ${outs.map((o) => (o instanceof Tensor ? `${o.dtype}[${o.shape}]` : typeof o)).join(", ")} where the forward returned ${s.meta
            .map((m) => `${m.dtype}[${m.shape}]`)
            .join(", ")}: a checkpointed function must compute the same thing twice (no random draws, no state changes)`,
        );
      const withGrad = outs.map((o, i) => [o, grads[i]] as const).filter(([o, g]) => g !== null && o.requiresGrad);
      if (withGrad.length === 1) withGrad[0]![0].backward(withGrad[0]![1]!);
      else if (withGrad.length > 1) {
        let root = withGrad[0]![0].mul(withGrad[0]![1]!).sum();
        for (const [o, g] of withGrad.slice(1)) root = root.add(o.mul(g!).sum());
        root.backward();
      }
      detached.forEach((d, i) => {
        if (!(d instanceof Tensor) || !d.requiresGrad) return;
        const g = d.grad;
        // into an earlier segment's leaf, or on through the graph that made this input; the graph
        // is kept in case several segments read tensors made by the same operations
        if (g !== null) (s.inputs[i] as Tensor).backward(g, { retainGraph: true });
      });
    } finally {
      native.setGradEnabled(previous);
    }
  });
}

afterBackward.run = (retainGraph) => {
  if (tape.length === 0) return;
  const segments = tape;
  tape = []; // segments recorded while these run (nested checkpoints) belong to the inner backward
  let ran = false;
  try {
    for (let i = segments.length - 1; i >= 0; i--) runSegment(segments[i]!);
    ran = true;
  } finally {
    // with retainGraph the graph may be backwarded again (a second loss on the same forward):
    // the segments stay recorded for that backward, as their graph would in PyTorch
    if (retainGraph && ran) tape = [...segments, ...tape];
    else for (const s of segments) release(s);
  }
};
