// safetensors: round trips for every dtype, files written by the reference implementation,
// sharded checkpoints, atomic writes, and a corpus of malformed files that must each give a
// clear SafetensorsError (never a crash).
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import * as T from "../src/index.js";
import { flat, python, referenceFixtures } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "pisces-st-"));
let ref: string;
beforeAll(() => {
  ref = referenceFixtures();
});

const ALL: T.DType[] = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"];

function sample(dtype: T.DType): T.Tensor {
  const base = T.tensor(
    [
      [1.5, -2, 3.25],
      [0, 100, -7],
    ],
    { dtype: "float64" },
  );
  if (dtype === "bool") return base.gt(0);
  if (dtype === "uint8") return base.abs().to("uint8");
  return base.to(dtype);
}

/** Builds a raw safetensors file: an 8-byte length, the header text, then `data`. */
function raw(header: string | object, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Buffer {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const h = Buffer.from(text, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  return Buffer.concat([len, h, Buffer.from(data)]);
}

describe("safetensors", () => {
  it("round-trips every dtype with metadata", () => {
    const path = join(work, "all.safetensors");
    const tensors = new Map(ALL.map((d) => [d, sample(d)]));
    tensors.set("scalar" as T.DType, T.tensor(2.5));
    tensors.set("empty" as T.DType, T.zeros([0, 3]));
    T.saveSafetensors(path, tensors, { format: "pt", step: "12" });
    const f = T.loadSafetensors(path);
    expect(f.metadata).toEqual({ format: "pt", step: "12" });
    expect(f.keys().sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const back = f.get(name);
      expect(back.dtype).toBe(t.dtype);
      expect(back.shape).toEqual(t.shape);
      expect(back.equal(t)).toBe(true);
    }
  });

  it("reads files written by the reference implementation, for every dtype", () => {
    const f = T.loadSafetensors(join(ref, "dtypes.safetensors"));
    expect(f.metadata).toEqual({ format: "pt", note: "reference" });
    const f32 = f.get("float32");
    for (const d of ALL) {
      const t = f.get(d);
      expect(t.dtype).toBe(d);
      expect(t.shape).toEqual([3, 5]);
    }
    expect(flat(f.get("float64").float())).toEqual(flat(f32));
    expect(flat(f.get("bfloat16"))).toEqual(flat(f32.to("bfloat16")));
    expect(flat(f.get("int32"))).toEqual(flat(f32.to("int32")));
    expect(flat(f.get("bool"))).toEqual(flat(f32.gt(0)));
    expect(f.get("scalar").item()).toBe(3.5);
    expect(f.get("empty").shape).toEqual([0, 4]);
    expect(f.get("float32", { dtype: "float16" }).dtype).toBe("float16");
  });

  it("writes files the reference implementation reads", () => {
    const path = join(work, "for-python.safetensors");
    const tensors = Object.fromEntries(ALL.map((d) => [d, sample(d)]));
    T.saveSafetensors(path, tensors, { who: "pisces" });
    const summary = JSON.parse(python("verify_safetensors.py", [path])) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; sum: number }>;
    };
    expect(summary.metadata).toEqual({ who: "pisces" });
    const torchName: Record<string, string> = {
      float32: "float32",
      float64: "float64",
      float16: "float16",
      bfloat16: "bfloat16",
      int64: "int64",
      int32: "int32",
      int16: "int16",
      int8: "int8",
      uint8: "uint8",
      bool: "bool",
    };
    for (const d of ALL) {
      const s = summary.tensors[d]!;
      expect(s.dtype).toBe(torchName[d]);
      expect(s.shape).toEqual([2, 3]);
      expect(s.sum).toBeCloseTo(
        flat(tensors[d]!.double()).reduce((a, b) => a + b, 0),
        6,
      );
    }
  });

  it("reads a sharded checkpoint through its index, and from its folder", () => {
    const dir = mkdtempSync(join(work, "sharded-"));
    const a = { "layer.0.weight": T.randn([4, 4]), "layer.0.bias": T.randn([4]) };
    const b = { "layer.1.weight": T.randn([4, 4]) };
    T.saveSafetensors(join(dir, "model-00001-of-00002.safetensors"), a);
    T.saveSafetensors(join(dir, "model-00002-of-00002.safetensors"), b);
    const weightMap = {
      "layer.0.weight": "model-00001-of-00002.safetensors",
      "layer.0.bias": "model-00001-of-00002.safetensors",
      "layer.1.weight": "model-00002-of-00002.safetensors",
    };
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 144 }, weight_map: weightMap }));
    for (const reader of [T.loadSafetensors(join(dir, "model.safetensors.index.json")), T.loadSafetensors(dir)]) {
      expect(reader.keys().sort()).toEqual(Object.keys(weightMap).sort());
      expect(reader.get("layer.1.weight").equal(b["layer.1.weight"])).toBe(true);
      expect(reader.get("layer.0.bias").equal(a["layer.0.bias"])).toBe(true);
      expect(reader.metadata.total_size).toBe("144");
    }
    writeFileSync(join(dir, "bad.index.json"), JSON.stringify({ weight_map: { "layer.1.weight": "model-00001-of-00002.safetensors" } }));
    expect(() => T.loadSafetensors(join(dir, "bad.index.json"))).toThrow(/places 'layer.1.weight' in model-00001-of-00002.safetensors, which does not hold it/);
    writeFileSync(join(dir, "missing.index.json"), JSON.stringify({ weight_map: { x: "model-00009.safetensors" } }));
    expect(() => T.loadSafetensors(join(dir, "missing.index.json"))).toThrow(/shard model-00009.safetensors named by the index is missing/);
  });

  it("writes atomically: a failed save leaves the old file intact and no temporary behind", () => {
    const dir = mkdtempSync(join(work, "atomic-"));
    const path = join(dir, "ckpt.safetensors");
    T.saveSafetensors(path, { w: T.ones([2]) });
    const before = readFileSync(path);
    const disposed = T.ones([2]);
    disposed.dispose();
    expect(() => T.saveSafetensors(path, { w: T.zeros([2]), v: disposed })).toThrow(/'v' was disposed/);
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(["ckpt.safetensors"]);
  });

  describe("malformed files give a clear SafetensorsError", () => {
    const f32 = (n: number) => new Uint8Array(n * 4);
    const corpus: [string, () => Buffer | string, T.SafetensorsErrorCode, RegExp][] = [
      ["empty file", () => Buffer.alloc(0), "HEADER_TOO_SMALL", /starts with an 8-byte header length/],
      ["shorter than the length prefix", () => Buffer.from([1, 2, 3]), "HEADER_TOO_SMALL", /3 bytes/],
      ["huge header length", () => raw("{}", undefined, 2n ** 40n), "HEADER_TOO_LARGE", /exceeds the 100000000-byte limit/],
      ["header length past the end of file", () => raw("{}", undefined, 1000n), "INVALID_HEADER", /runs past the end/],
      ["header not JSON", () => raw("{not json}"), "INVALID_JSON", /not valid JSON/],
      ["header not an object", () => raw("[1, 2]"), "INVALID_HEADER", /does not start with '\{'/],
      ["header not UTF-8", () => Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff])]), "INVALID_HEADER", /not valid UTF-8/],
      ["unknown dtype", () => raw({ a: { dtype: "F33", shape: [1], data_offsets: [0, 4] } }, f32(1)), "UNKNOWN_DTYPE", /unknown dtype 'F33'/],
      [
        "unsupported dtype",
        () => raw({ a: { dtype: "F8_E4M3", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
        "UNKNOWN_DTYPE",
        /F8_E4M3, which @pisces\/tensor-cuda does not support/,
      ],
      ["negative dimension", () => raw({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, f32(1)), "INVALID_SHAPE", /invalid shape \[-1\]/],
      [
        "shape and byte span disagree",
        () => raw({ a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, f32(3)),
        "SIZE_MISMATCH",
        /needs 16 bytes but data_offsets span 12/,
      ],
      [
        "offsets reversed",
        () => raw({ a: { dtype: "F32", shape: [0], data_offsets: [4, 0] } }, f32(1)),
        "INVALID_OFFSETS",
        /ends \(0\) before it begins \(4\)/,
      ],
      [
        "overlapping tensors",
        () => raw({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, f32(3)),
        "INVALID_OFFSETS",
        /overlapping the previous tensor/,
      ],
      ["gap between tensors", () => raw({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, f32(2)), "INVALID_OFFSETS", /leaving a gap after byte 0/],
      [
        "offsets past the end of file (truncated)",
        () => raw({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32(2)),
        "TRUNCATED",
        /holds only 8 data bytes/,
      ],
      ["trailing bytes", () => raw({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, f32(2)), "INVALID_OFFSETS", /4 bytes after the last tensor/],
      ["missing data_offsets", () => raw({ a: { dtype: "F32", shape: [1] } }, f32(1)), "INVALID_OFFSETS", /invalid data_offsets undefined/],
      ["metadata not strings", () => raw({ __metadata__: { step: 3 } }), "INVALID_METADATA", /__metadata__.step must be a string/],
      ["entry not an object", () => raw({ a: 5 }), "INVALID_HEADER", /entry 'a' must be an object/],
      ["not a file", () => join(work, "does-not-exist.safetensors"), "IO", /no such safetensors file/],
    ];
    for (const [name, make, code, message] of corpus) {
      it(name, () => {
        const content = make();
        let path: string;
        if (typeof content === "string") path = content;
        else {
          path = join(work, `${name.replace(/\W+/g, "-")}.safetensors`);
          writeFileSync(path, content);
        }
        let error: unknown;
        try {
          T.loadSafetensors(path);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(T.SafetensorsError);
        expect((error as T.SafetensorsError).code).toBe(code);
        expect((error as Error).message).toMatch(message);
        expect((error as Error).message).toContain(path);
      });
    }
  });

  it("reports a missing tensor by name", () => {
    const path = join(work, "one.safetensors");
    T.saveSafetensors(path, { a: T.ones([1]) });
    expect(() => T.loadSafetensors(path).get("b")).toThrow(/no tensor named 'b'/);
    expect(existsSync(path)).toBe(true);
  });
});
