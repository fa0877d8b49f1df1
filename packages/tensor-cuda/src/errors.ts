// Error classes: every libtorch failure arrives as a TorchError (or OutOfMemoryError) carrying
// libtorch's own message; the process never aborts.

/** An error raised by libtorch (shape mismatch, bad dtype, bad argument...), with its message. */
export class TorchError extends Error {
  override name = "TorchError";
}

/** libtorch could not allocate memory (CPU or CUDA). Free tensors (dispose / scope) and retry. */
export class OutOfMemoryError extends TorchError {
  override name = "OutOfMemoryError";
}

/** A safetensors file is malformed or cannot be read; `code` names the problem. */
export class SafetensorsError extends Error {
  override name = "SafetensorsError";
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    readonly path?: string,
  ) {
    super(path ? `${path}: ${message}` : message);
  }
}

export type SafetensorsErrorCode =
  | "IO"
  | "HEADER_TOO_SMALL"
  | "HEADER_TOO_LARGE"
  | "INVALID_HEADER"
  | "INVALID_JSON"
  | "INVALID_METADATA"
  | "UNKNOWN_DTYPE"
  | "INVALID_SHAPE"
  | "INVALID_OFFSETS"
  | "SIZE_MISMATCH"
  | "TRUNCATED"
  | "MISSING_TENSOR"
  | "INVALID_INDEX";

/** Loading a state dict found missing, unexpected or mis-shaped keys. */
export class StateDictError extends Error {
  override name = "StateDictError";
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: { key: string; expected: number[]; got: number[] }[],
    readonly hint?: string,
  ) {
    const parts: string[] = [];
    const list = (xs: string[]) => (xs.length > 20 ? `${xs.slice(0, 20).join(", ")}, ... (${xs.length} in all)` : xs.join(", "));
    if (missing.length) parts.push(`missing keys: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected keys: ${list(unexpected)}`);
    if (mismatched.length)
      parts.push(
        `shape mismatch: ${mismatched
          .slice(0, 20)
          .map((m) => `${m.key} expects [${m.expected.join(", ")}] but got [${m.got.join(", ")}]`)
          .join("; ")}`,
      );
    if (hint) parts.push(hint);
    super(`loadStateDict failed: ${parts.join("; ")}. Check that the checkpoint matches the model config.`);
  }
}
