// The numbers that cross the Node-API boundary are named in native/interface.h and mirrored in
// src/native-interface.ts: the two must agree, value for value.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BinaryKind, KernelMode } from "../src/native-interface.js";

const header = readFileSync(new URL("../native/interface.h", import.meta.url), "utf8");
const enumValues = (name: string): Record<string, number> => {
  const body = new RegExp(`enum ${name}[^{]*\\{([^}]*)\\}`).exec(header)?.[1] ?? "";
  return Object.fromEntries([...body.matchAll(/k(\w+)\s*=\s*(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
};
const lowerFirst = (s: string) => s[0]!.toLowerCase() + s.slice(1);

describe("native interface constants", () => {
  it("BinaryKind matches interface.h", () => {
    const c = enumValues("BinaryKind");
    expect(Object.keys(c)).toHaveLength(8);
    expect(Object.fromEntries(Object.entries(c).map(([k, v]) => [lowerFirst(k), v]))).toEqual(BinaryKind);
  });
  it("KernelMode matches interface.h", () => {
    const c = enumValues("KernelMode");
    expect(Object.fromEntries(Object.entries(c).map(([k, v]) => [lowerFirst(k.replace(/^Kernel/, "")), v]))).toEqual(KernelMode);
  });
});
