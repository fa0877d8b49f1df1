// A strict JSON parser for safetensors headers, rejecting what the reference crate (serde_json
// into typed structs) rejects and JSON.parse accepts: duplicate keys, lone surrogate escapes,
// non-integer numbers (`[4.0, 5.0]` as a shape), and nesting deeper than a header ever needs.
// Keys such as `__proto__` are kept as ordinary keys (objects come back as Maps).

export type StrictJson = string | number | boolean | null | StrictJson[] | Map<string, StrictJson>;

export class StrictJsonError extends Error {
  override name = "StrictJsonError";
}

const MAX_DEPTH = 16;
const LITERALS: [string, StrictJson][] = [
  ["true", true],
  ["false", false],
  ["null", null],
];

export function parseStrictJson(text: string): StrictJson {
  let i = 0;
  const fail = (what: string): never => {
    throw new StrictJsonError(`${what} at position ${i}`);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const str = (): string => {
    i++; // opening quote
    let out = "";
    let start = i;
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in string");
      if (c >= 0xd800 && c <= 0xdfff) {
        // raw surrogates cannot come from valid UTF-8, but check pairs anyway
        const next = text.charCodeAt(i + 1);
        if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) fail("lone surrogate in string");
        i += 2;
        continue;
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === "u") {
        const unit = (): number => {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("invalid \\u escape");
          i += 4;
          return Number.parseInt(hex, 16);
        };
        const u = unit();
        if (u >= 0xd800 && u <= 0xdbff) {
          if (text[i] !== "\\" || text[i + 1] !== "u") fail("lone surrogate escape");
          i += 2;
          const lo = unit();
          if (lo < 0xdc00 || lo > 0xdfff) fail("lone surrogate escape");
          out += String.fromCharCode(u, lo);
        } else if (u >= 0xdc00 && u <= 0xdfff) fail("lone surrogate escape");
        else out += String.fromCharCode(u);
      } else fail("invalid escape");
      start = i;
    }
  };
  const num = (): number => {
    const m = /^-?(0|[1-9][0-9]*)([.eE])?/.exec(text.slice(i, i + 32));
    if (!m) fail("invalid number");
    if (m![2] !== undefined) fail("non-integer number (shapes and offsets must be integers)");
    const digits = /^-?[0-9]+/.exec(text.slice(i))![0];
    i += digits.length;
    const v = Number(digits);
    if (!Number.isSafeInteger(v)) fail(`integer ${digits.length > 24 ? `${digits.slice(0, 24)}...` : digits} is too large`);
    return v;
  };
  const value = (depth: number): StrictJson => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH} levels`);
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const map = new Map<string, StrictJson>();
      ws();
      if (text[i] === "}") {
        i++;
        return map;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = str();
        if (map.has(key)) fail(`duplicate key ${JSON.stringify(key)}`);
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        map.set(key, value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return map;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const list: StrictJson[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return list;
      }
      for (;;) {
        list.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return list;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [word, v] of LITERALS)
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return num();
    return fail("unexpected character");
  };
  const result = value(0);
  ws();
  // safetensors pads the header with trailing spaces; anything else after the value is an error
  if (i !== text.length) fail("unexpected data after the JSON value");
  return result;
}
