// Errors of the pipelines, and cancellation between steps.

/** A request the pipelines cannot run (bad option, missing part); the message says which and why. */
export class SamplerError extends Error {
  override name = "SamplerError";
}

/** The error an aborted run rejects with: the signal's reason when it is an Error, else an AbortError as fetch throws. */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(typeof reason === "string" ? reason : "the operation was aborted", "AbortError");
}

export function checkSignal(signal: AbortSignal | undefined): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new SamplerError("signal must be an AbortSignal");
  if (signal?.aborted) throw abortError(signal);
}

/** Lets timers, I/O and abort handlers run between steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
