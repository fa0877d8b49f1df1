// Regression corpus for untrusted input reaching @pisces/tensor-cuda (issue 10): safetensors
// strictness where the reference crate rejects, files that are not regular files, killed saves,
// large tensors, process-killing calls and values that do not fit. Each case is generated here.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../tools/test-support/errors.js";
import * as T from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-untrusted-"));

/** A safetensors file from a header text (written verbatim) and data bytes. */
function file(name: string, header: string, data: Uint8Array = new Uint8Array(0)): string {
  const h = Buffer.from(header, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const path = join(work, name);
  writeFileSync(path, Buffer.concat([len, h, Buffer.from(data)]));
  return path;
}

describe("safetensors strictness (the reference crate rejects these)", () => {
  const f32 = '"dtype":"F32","shape":[1],"data_offsets":[0,4]';
  const cases: [string, string, RegExp][] = [
    ["BOM before the header", `\ufeff{"a":{${f32}}}`, /byte-order mark/],
    ["duplicate tensor key", `{"a":{${f32}},"a":{${f32}}}`, /duplicate key "a"/],
    ["duplicate __metadata__", `{"__metadata__":{"x":"1"},"__metadata__":{"x":"2"},"a":{${f32}}}`, /duplicate key "__metadata__"/],
    ["duplicate dtype field", `{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, /duplicate key "dtype"/],
    ["lone surrogate escape in a name", `{"a\\ud800":{${f32}}}`, /lone surrogate/],
    ["float shape", `{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, /non-integer number/],
    ["exponent offsets", `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4e0]}}`, /non-integer number/],
    ["unknown entry field", `{"a":{${f32},"extra":1}}`, /unknown field 'extra'/],
    ["nesting 20,000 deep", `{"a":${"[".repeat(20000)}${"]".repeat(20000)}}`, /nesting deeper than/],
    ["dtype named like an Object method", `{"a":{"dtype":"toString","shape":[1],"data_offsets":[0,4]}}`, /unknown dtype 'toString'/],
    ["element count overflows before a zero", `{"a":{"dtype":"F32","shape":[8589934592,8589934592,0],"data_offsets":[0,0]}}`, /overflows/],
  ];
  for (const [name, header, message] of cases)
    it(name, () => {
      const path = file(`${name.replace(/\W+/g, "-")}.safetensors`, header, new Uint8Array(4));
      const e = errorOf(() => T.loadSafetensors(path));
      expect(e).toBeInstanceOf(T.SafetensorsError);
      expect(e.message).toMatch(message);
      expect(e.message).toContain(path);
    });

  it("keeps a __proto__ key as an ordinary name (not dropped)", () => {
    const path = file("proto.safetensors", `{"__metadata__":{"__proto__":"m"},"__proto__":{${f32}}}`, new Uint8Array(4));
    const r = T.loadSafetensors(path);
    expect(r.keys()).toEqual(["__proto__"]);
    expect(Object.hasOwn(r.metadata, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(r.metadata, "__proto__")?.value).toBe("m");
  });

  it("normalises BOOL bytes to 0/1 as torch does", () => {
    const path = file("bool.safetensors", '{"b":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}}', new Uint8Array([0, 1, 2, 6]));
    const b = T.loadSafetensors(path).get("b");
    expect(b.dtype).toBe("bool");
    expect(Array.from(b.toArray() as Uint8Array)).toEqual([0, 1, 1, 1]);
    expect(Array.from(b.to("uint8").toArray() as Uint8Array)).toEqual([0, 1, 1, 1]);
  });
});

describe("files that are not regular files", () => {
  it("a FIFO is refused before it is opened (open would block forever)", () => {
    const fifo = join(work, "pipe.safetensors");
    execFileSync("mkfifo", [fifo]);
    const e = errorOf(() => T.loadSafetensors(fifo));
    expect(e.message).toMatch(/named pipe \(FIFO\)/);
    expect(e.message).toContain(fifo);
    expect(errorOf(() => T.readJsonFile(fifo)).message).toMatch(/named pipe/);
    const bare = join(work, "pipe-without-extension");
    execFileSync("mkfifo", [bare]); // the folder check must stat, not open, it
    expect(errorOf(() => T.loadSafetensors(bare)).message).toMatch(/named pipe \(FIFO\)/);
  });
  it("a folder where a file is expected names the path", () => {
    const dir = join(work, "not-a-file.safetensors");
    mkdirSync(dir);
    const e = errorOf(() => T.loadSafetensors(dir));
    expect(e.message).toContain(dir);
    expect(e.message).toMatch(/found a folder/);
  });
  it("a folder without weights says what it expected", () => {
    const dir = mkdtempSync(join(work, "empty-"));
    expect(errorOf(() => T.loadSafetensors(dir)).message).toMatch(/neither model.safetensors nor model.safetensors.index.json/);
  });
  it("a shard index naming '..' or a non-object weight_map is refused", () => {
    const dir = mkdtempSync(join(work, "index-"));
    writeFileSync(join(dir, "a.index.json"), JSON.stringify({ weight_map: { w: ".." } }));
    expect(errorOf(() => T.loadSafetensors(join(dir, "a.index.json"))).message).toMatch(/must be a file name in the same folder/);
    writeFileSync(join(dir, "b.index.json"), JSON.stringify({ weight_map: [1, 2] }));
    expect(errorOf(() => T.loadSafetensors(join(dir, "b.index.json"))).message).toMatch(/no weight_map object/);
  });
});

describe("saving", () => {
  it("removes the temporaries of saves killed mid-write, not those of live writers", () => {
    const dir = mkdtempSync(join(work, "stale-"));
    const target = join(dir, "model.safetensors");
    // a dead writer: a pid that exited
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid!;
    writeFileSync(join(dir, `.model.safetensors.tmp-${dead}-abc`), Buffer.alloc(1024));
    writeFileSync(join(dir, `.model.safetensors.tmp-${process.pid}-live`), Buffer.alloc(16));
    writeFileSync(join(dir, ".other.safetensors.tmp-1-x"), Buffer.alloc(16));
    T.saveSafetensors(target, { w: T.ones([3]) });
    expect(readdirSync(dir).sort()).toEqual([`.model.safetensors.tmp-${process.pid}-live`, ".other.safetensors.tmp-1-x", "model.safetensors"].sort());
  });

  it("writes a tensor larger than one chunk piece by piece, byte-identical", () => {
    const path = join(work, "chunked.safetensors");
    const x = T.arange(0, 1000, 1, { dtype: "float32" }).reshape([10, 100]).mul(0.5);
    const b = T.tensor([true, false, true]);
    T.saveSafetensors(path, { x, b, h: x.to("bfloat16").transpose(0, 1) }, {}, { chunkBytes: 96 });
    const r = T.loadSafetensors(path);
    expect(r.get("x").equal(x)).toBe(true);
    expect(r.get("b").equal(b)).toBe(true);
    expect(r.get("h").equal(x.to("bfloat16").transpose(0, 1).contiguous())).toBe(true);
  });
});

describe("process-killing calls are refused", () => {
  it("setNumThreads beyond the documented limit", () => {
    expect(() => T.setNumThreads(100000)).toThrow(new RegExp(`from 1 to ${T.MAX_NUM_THREADS}`));
    expect(() => T.setNumThreads(20000)).toThrow(RangeError);
    expect(() => T.setNumThreads(0)).toThrow(RangeError);
    const before = T.getNumThreads();
    T.setNumThreads(T.MAX_NUM_THREADS);
    expect(
      T.ones([64, 64])
        .matmul(T.ones([64, 64]))
        .sum()
        .item(),
    ).toBe(64 * 64 * 64);
    T.setNumThreads(before);
  });
  it("bigints that do not fit are rejected, not truncated", () => {
    expect(() => T.tensor([2n ** 70n])).toThrow(/does not fit in int64/);
    expect(() => T.tensor([-(2n ** 63n) - 1n])).toThrow(/does not fit in int64/);
    expect(T.tensor([2n ** 63n - 1n]).toArray()[0]).toBe(2n ** 63n - 1n);
    expect(() => T.manualSeed(2n ** 70n)).toThrow(/seed must be an integer from 0 to 2\^64-1/);
    expect(() => T.manualSeed(-1)).toThrow(RangeError);
    expect(() => T.manualSeed(1.5)).toThrow(RangeError);
    expect(() => new T.Generator({ seed: 2n ** 64n })).toThrow(RangeError);
    T.manualSeed(2n ** 64n - 1n);
  });
  it("an unknown dtype or device string says which it is not", () => {
    expect(() => T.ones([1]).to("float128")).toThrow(/'float128' is neither a dtype .* nor a device/);
  });
  it("toArray past what one JS typed array holds is a clear error (checked before any copy)", () => {
    const big = T.empty([2 ** 31, 2], { dtype: "float32", device: "meta" });
    expect(() => big.toArray()).toThrow(/exceed the .* bytes one JS typed array can hold/);
  });
});

describe("loadStateDict names what is wrong", () => {
  it("an int64 tensor for a float weight names the key", () => {
    const lin = new T.nn.Linear(2, 2);
    const e = errorOf(() => lin.loadStateDict({ weight: T.zeros([2, 2], { dtype: "int64" }), bias: T.zeros([2]) }));
    expect(e.message).toMatch(/'weight' holds int64 values but the model's tensor is float32/);
  });
  it("one prefix too many says which prefix", () => {
    class Net extends T.nn.Module {
      fc = new T.nn.Linear(2, 2);
    }
    const e = errorOf(() => new Net().loadStateDict({ "model.fc.weight": T.zeros([2, 2]), "model.fc.bias": T.zeros([2]) }));
    expect(e.message).toMatch(/2 checkpoint keys carry a prefix 'model.' that the model's keys do not have/);
  });
  it("a config that implies far more tensors than the checkpoint holds stops early", () => {
    const weights = new Map([["0.weight", T.zeros([2, 2])]]);
    const e = errorOf(() =>
      T.loadPretrained({
        what: "tiny.json",
        weights,
        build: (o) => new T.nn.ModuleList(Array.from({ length: 1_000_000 }, () => new T.nn.Linear(2, 2, { ...o, bias: false }))),
      }),
    );
    expect(e).toBeInstanceOf(T.ConfigError);
    expect(e.message).toMatch(/tiny.json: the config describes a model with more than 257 tensors/);
  });
});

describe("ConfigReader", () => {
  it("names the key, the value and the bound", () => {
    const r = new T.ConfigReader({ a: 1e9, b: "false", c: -1, d: Number.NaN, e: [0.5], x: 1 }, "cfg.json");
    r.int("a", undefined, { max: 1024 });
    r.bool("b", false);
    r.number("c", undefined, { gt: 0 });
    r.number("d", 1, { gt: 0 });
    r.numberList("e", undefined, { length: 3 });
    const e = errorOf(() => r.finish());
    expect(e).toBeInstanceOf(T.ConfigError);
    expect((e as T.ConfigError).problems).toEqual([
      "a = 1000000000 is out of range (1 to 1024)",
      'b must be true or false (got "false")',
      "c = -1 is out of range (must be > 0)",
      "d must be a finite number (got NaN)",
      "e must have 3 entries (got 1)",
    ]);
    expect(e.message).toMatch(/^cfg.json: 5 problems/);
    const ok = new T.ConfigReader({ a: 3, extra: 1 }, "cfg.json");
    ok.int("a", 1);
    expect(ok.finish().unknownKeys).toEqual(["extra"]);
  });
});
