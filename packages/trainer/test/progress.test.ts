// pisces-train's output: one redrawn line with a bar and an ETA on a terminal, plain lines otherwise.
import { describe, expect, it } from "vitest";
import { formatDuration, Progress } from "../src/progress.js";

const step = (n: number) => ({
  type: "step" as const,
  step: n,
  loss: 0.5,
  parts: { image_loss: 0.25 },
  lr: 2e-5,
  gradNorm: 1,
  skipped: 0,
  nonfinite: 0,
  recordsPerSecond: 8,
});

describe("progress", () => {
  it("formats durations", () => {
    expect(formatDuration(9)).toBe("9s");
    expect(formatDuration(75)).toBe("1m15s");
    expect(formatDuration(4000)).toBe("1h06m");
    expect(formatDuration(Number.NaN)).toBe("?");
  });

  it("redraws one line on a terminal, with the bar, the figures and an ETA from the recent steps", () => {
    const written: string[] = [];
    let t = 0;
    const p = new Progress({ write: (s: string) => written.push(s), isTTY: true, columns: 200 }, 10, () => t);
    p.step(step(1));
    t += 2000;
    p.step(step(2));
    p.message("checkpoint run/checkpoints/step-00000002");
    t += 2000;
    p.step(step(5));
    p.end();
    expect(written[1]).toBe("\r\x1b[2K[####................] 2/10 loss 0.5000 image_loss 0.2500 lr 2.00e-5 8.0 records/s ETA 16s");
    expect(written[2]).toBe("\r\x1b[2K"); // the message clears the line first
    expect(written[3]).toBe("checkpoint run/checkpoints/step-00000002\n");
    expect(written[4]).toMatch(/\[##########\.{10}\] 5\/10 .* ETA 10s$/);
    expect(written[5]).toBe("\n");
  });

  it("writes plain lines when not on a terminal, and fits the terminal's width", () => {
    const plain: string[] = [];
    new Progress({ write: (s: string) => plain.push(s) }, 10).step({ ...step(3), skipped: 2 });
    expect(plain).toEqual(["step 3/10 loss 0.5000 image_loss 0.2500 lr 2.00e-5 8.0 records/s skipped 2\n"]);
    const narrow: string[] = [];
    new Progress({ write: (s: string) => narrow.push(s), isTTY: true, columns: 40 }, 10).step(step(3));
    expect(narrow[0]!.length).toBeLessThanOrEqual("\r\x1b[2K".length + 39);
  });
});
