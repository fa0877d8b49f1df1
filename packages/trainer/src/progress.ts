// What pisces-train prints while it trains: on a terminal one progress line redrawn in place (bar,
// step, loss, lr, records/s, ETA), other messages printed above it; otherwise (a log file, CI)
// one plain line per step.
import type { TrainEvent } from "./loop.js";

export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** 75 -> "1m15s", 4000 -> "1h06m", 9 -> "9s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  private readonly times: number[] = [];
  private drawn = false;

  constructor(
    private readonly out: ProgressOutput,
    private readonly maxSteps: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** A message line (start, checkpoint, validation, warning), kept above the progress line. */
  message(text: string): void {
    if (this.out.isTTY && this.drawn) this.out.write("\r\x1b[2K");
    this.out.write(`${text}\n`);
    this.drawn = false;
  }

  step(e: Extract<TrainEvent, { type: "step" }>): void {
    this.times.push(this.now());
    if (this.times.length > 21) this.times.shift();
    const perStep = this.times.length > 1 ? (this.times[this.times.length - 1]! - this.times[0]!) / 1000 / (this.times.length - 1) : Number.NaN;
    const eta = formatDuration(perStep * (this.maxSteps - e.step));
    const parts = Object.entries(e.parts)
      .map(([k, v]) => ` ${k} ${v.toFixed(4)}`)
      .join("");
    const stats = `loss ${e.loss.toFixed(4)}${parts} lr ${e.lr.toExponential(2)} ${e.recordsPerSecond.toFixed(1)} records/s`;
    if (!this.out.isTTY) {
      this.out.write(`step ${e.step}/${this.maxSteps} ${stats}${e.skipped ? ` skipped ${e.skipped}` : ""}${e.nonfinite ? ` nonfinite ${e.nonfinite}` : ""}\n`);
      return;
    }
    const width = 20;
    const filled = Math.round((width * e.step) / this.maxSteps);
    let line = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${e.step}/${this.maxSteps} ${stats} ETA ${eta}`;
    const columns = this.out.columns ?? 120;
    if (line.length > columns - 1) line = `${line.slice(0, columns - 2)}…`;
    this.out.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  /** Ends the progress line (call before exiting). */
  end(): void {
    if (this.out.isTTY && this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
