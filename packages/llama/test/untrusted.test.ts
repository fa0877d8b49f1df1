// Regression corpus for untrusted files reaching @pisces/llama (issue 10): configs that would
// allocate before validating, values that silently change results, chat templates that would
// kill the process, and GGUF layouts llama.cpp rejects. Every case is generated here; each must
// be a clear error naming the file and the problem.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as T from "@pisces/tensor-cuda";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../tools/test-support/errors.js";
import { type GgufMeta, tinyLlamaGguf } from "../../../tools/test-support/gguf-writer.js";
import { ChatTemplate, ChatTemplateError, GGUFError, LlamaConfigError, LlamaForCausalLM, loadGGUF, readGGUF, resolveLlamaConfig } from "../src/index.js";

const work = mkdtempSync(join(tmpdir(), "pisces-llama-untrusted-"));
const base = { hidden_size: 8, num_attention_heads: 2, vocab_size: 8, intermediate_size: 16, num_hidden_layers: 1 };

describe("Llama config.json values are checked before anything is built", () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["head_dim = 1e9 (built a 10 GB RoPE table)", { head_dim: 1e9 }, /head_dim = 1000000000 is out of range \(1 to 4096\)/],
    ["num_hidden_layers = 1e6", { num_hidden_layers: 1e6 }, /num_hidden_layers = 1000000 is out of range \(1 to 1024\)/],
    ["hidden_size = 2^40", { hidden_size: 2 ** 40 }, /hidden_size = 1099511627776 is out of range/],
    ["rms_norm_eps = 0", { rms_norm_eps: 0 }, /rms_norm_eps = 0 is out of range \(must be > 0/],
    ["rms_norm_eps < 0", { rms_norm_eps: -1e-5 }, /rms_norm_eps = -0.00001 is out of range/],
    ["rms_norm_eps as a string", { rms_norm_eps: "1e-5" }, /rms_norm_eps must be a finite number \(got "1e-5"\)/],
    ["tie_word_embeddings as a string", { tie_word_embeddings: "false" }, /tie_word_embeddings must be true or false \(got "false"\)/],
    [
      "rope_scaling next to a different rope_parameters",
      {
        rope_parameters: { rope_type: "default", rope_theta: 10000 },
        rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
      },
      /rope_scaling and rope_parameters are both given and differ/,
    ],
    [
      "rope setting not implemented",
      { rope_parameters: { rope_type: "default", rope_theta: 10000, partial_rotary_factor: 0.5 } },
      /unsupported rope settings: rope_parameters.partial_rotary_factor/,
    ],
    ["eos outside the vocabulary", { eos_token_id: 99 }, /eos_token_id must be an integer or a list of integers inside the vocabulary/],
    ["odd head_dim", { head_dim: 3 }, /head_dim = 3 must be even/],
    ["model_type bert", { model_type: "bert" }, /model_type = "bert" is not supported \(supported: llama\)/],
    ["hidden_act gelu", { hidden_act: "gelu" }, /hidden_act = "gelu" is not supported/],
  ];
  for (const [name, edit, message] of cases)
    it(name, () => {
      const dir = mkdtempSync(join(work, "cfg-"));
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...base, ...edit }));
      writeFileSync(join(dir, "model.safetensors"), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]));
      const e = errorOf(() => LlamaForCausalLM.fromPretrained(dir));
      expect(e).toBeInstanceOf(LlamaConfigError);
      expect(e).toBeInstanceOf(T.ConfigError);
      expect(e.message).toMatch(message);
      expect(e.message).toContain(join(dir, "config.json"));
    });

  it("rope_scaling and rope_parameters may both be given when they agree (transformers 5 writes both)", () => {
    const rope = { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const { config } = resolveLlamaConfig({ ...base, rope_parameters: rope, rope_scaling: { ...rope } });
    expect(config.ropeScaling.type).toBe("llama3");
    expect(config.ropeTheta).toBe(500000);
  });

  it("a layer count that passes the bounds but not the weights fails after a bounded build", () => {
    const dir = mkdtempSync(join(work, "budget-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...base, num_hidden_layers: 1000 }));
    T.saveSafetensors(join(dir, "model.safetensors"), { "model.embed_tokens.weight": T.zeros([8, 8]) });
    const e = errorOf(() => LlamaForCausalLM.fromPretrained(dir));
    expect(e).toBeInstanceOf(T.ConfigError);
    expect(e.message).toMatch(/describes a model with more than 257 tensors/);
  });

  it("config.json that is a FIFO, a folder, not JSON or not an object", () => {
    const dir = mkdtempSync(join(work, "files-"));
    writeFileSync(join(dir, "config.json"), "[1, 2]");
    expect(errorOf(() => LlamaForCausalLM.fromPretrained(dir)).message).toMatch(/the config must be a JSON object/);
    writeFileSync(join(dir, "config.json"), "{ nope");
    expect(errorOf(() => LlamaForCausalLM.fromPretrained(dir)).message).toMatch(/config.json: not valid JSON/);
    expect(errorOf(() => LlamaForCausalLM.fromPretrained(join(dir, "nothing"))).message).toMatch(/no such Hugging Face model folder/);
  });

  it("reports every problem of a config at once", () => {
    const e = errorOf(() => resolveLlamaConfig({ ...base, head_dim: 1e9, rms_norm_eps: 0, tie_word_embeddings: "yes" as unknown as boolean }, "x.json"));
    expect((e as T.ConfigError).problems).toHaveLength(3);
  });
});

describe("chat templates render with limits", () => {
  const render = (source: string) => new ChatTemplate(source, "tokenizer_config.json").render({ messages: [{ role: "user", content: "hi" }] });
  const attacks: [string, string, RegExp][] = [
    ["range(10**9) (killed the process with a V8 fatal error)", "{% for i in range(10**9) %}x{% endfor %}", /range\(\) of 1000000000 items, more than 100000/],
    [
      "nested loops",
      "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
      /exceeded a rendering limit \(more than (1000000 evaluation steps|2000 ms)\)/,
    ],
    [
      "string doubling",
      "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
      /a string longer than 4000000 characters/,
    ],
    ["list doubling", "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", /a list longer than 100000 items/],
    ["recursive macro", "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", /chat template (failed to render|exceeded a rendering limit)/],
    ["raise_exception", "{{ raise_exception('no system role') }}", /raised an exception: no system role/],
  ];
  for (const [name, source, message] of attacks)
    it(name, () => {
      const e = errorOf(() => render(source));
      expect(e).toBeInstanceOf(ChatTemplateError);
      expect(e.message).toMatch(/^tokenizer_config.json: /);
      expect(e.message).toMatch(message);
    });
  it("a syntax error names the file and says the template is invalid", () => {
    const e = errorOf(() => new ChatTemplate("{% bogus %}", "/m/tokenizer_config.json"));
    expect(e).toBeInstanceOf(ChatTemplateError);
    expect(e.message).toMatch(/^\/m\/tokenizer_config.json: the chat template is invalid/);
  });
  it("an ordinary template still renders, range() included", () => {
    expect(
      new ChatTemplate("{% for i in range(3) %}{{ i }}{% endfor %}{{ messages[0].content }}", "t").render({ messages: [{ role: "user", content: "hi" }] }),
    ).toBe("012hi");
    expect(new ChatTemplate("{% for i in range(10, 0, -3) %}{{ i }},{% endfor %}", "t").render({})).toBe("10,7,4,1,");
  });
});

describe("GGUF layout and metadata are checked as llama.cpp checks them", () => {
  const write = (name: string, bytes: Buffer) => {
    const path = join(work, `${name.replace(/\W+/g, "-")}.gguf`);
    writeFileSync(path, bytes);
    return path;
  };
  it("the valid tiny file loads (the corpus below breaks one thing each)", () => {
    const { model, tokenizer } = loadGGUF(write("valid", tinyLlamaGguf()));
    expect(model.config.numHiddenLayers).toBe(1);
    expect(tokenizer.applyChatTemplate([{ role: "user", content: "ab" }])).toBe("ab");
    model.dispose();
  });
  const meta = (key: string, value: GgufMeta | null) => (m: Map<string, GgufMeta>) => (value === null ? m.delete(key) : m.set(key, value));
  const cases: [string, Parameters<typeof tinyLlamaGguf>[0], RegExp][] = [
    ["a tensor's type changed (F32 -> F16)", (_m, t) => (t[2]!.type = 1), /tensor 'blk.0.attn_k.weight' has offset 544, expected 416/],
    ["an offset shifted by 1", (_m, t, o) => (o.offsets = { [t[2]!.name]: 33n }), /tensor 'blk.0.attn_q.weight' has offset 33, expected 288/],
    ["an offset shifted by 32", (_m, t, o) => (o.offsets = { [t[2]!.name]: 64n }), /has offset 64, expected 288/],
    ["two tensors at one offset", (_m, t, o) => (o.offsets = { [t[2]!.name]: 0n }), /has offset 0, expected 288/],
    ["alignment not a power of two", meta("general.alignment", { type: "u32", value: 24 }), /general.alignment must be a non-zero power of two/],
    ["alignment 0", meta("general.alignment", { type: "u32", value: 0 }), /general.alignment must be a non-zero power of two/],
    [
      "alignment stored as a string",
      meta("general.alignment", { type: "string", value: "32" }),
      /general.alignment must be a non-zero power of two stored as uint32/,
    ],
    [
      "nested arrays 20,000 deep",
      meta("x.nested", {
        type: "raw",
        bytes: Buffer.concat(Array.from({ length: 20000 }, () => Buffer.from([9, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))),
      }),
      /metadata 'x.nested' is an array of arrays/,
    ],
    ["missing token list", meta("tokenizer.ggml.tokens", null), /tokenizer.ggml.tokens \(the token list\) is missing/],
    ["token list shorter than vocab_size", meta("llama.vocab_size", { type: "u32", value: 9 }), /the token list holds 8 tokens but llama.vocab_size is 9/],
    [
      "eos id outside the vocabulary",
      meta("tokenizer.ggml.eos_token_id", { type: "u32", value: 8 }),
      /tokenizer.ggml.eos_token_id = 8 is not a token id of the 8-token vocabulary/,
    ],
    ["eps 0", meta("llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 0 }), /layer_norm_rms_epsilon = 0 must be a positive finite number/],
    ["eps NaN", meta("llama.attention.layer_norm_rms_epsilon", { type: "f32", value: Number.NaN }), /must be a positive finite number/],
    ["block_count 1e6", meta("llama.block_count", { type: "u32", value: 1_000_000 }), /num_hidden_layers = 1000000 is out of range/],
    ["rope.dimension_count 1e9", meta("llama.rope.dimension_count", { type: "u32", value: 1e9 }), /head_dim = 1000000000 is out of range/],
    ["an unknown ggml type", (_m, t) => (t[0]!.type = 99), /tensor 'token_embd.weight' has unknown ggml type 99/],
    ["a duplicate tensor name", (_m, t) => (t[1]!.name = t[0]!.name), /tensor 'token_embd.weight' appears twice/],
    ["a 64-byte tensor name", (_m, t) => (t[0]!.name = "x".repeat(64)), /is 64 bytes \(at most 63\)/],
    ["5 dimensions", (_m, t) => (t[1]!.shape = [1, 1, 1, 1, 8]), /has 5 dimensions \(at most 4\)/],
    ["a Q8_0 tensor whose row is not whole blocks", (_m, t) => (t[1]!.type = 8), /first dimension 8 that is not a multiple of the Q8_0 block size 32/],
    [
      "a chat template with range(10**9)",
      meta("tokenizer.chat_template", { type: "string", value: "{% for i in range(10**9) %}x{% endfor %}" }),
      /range\(\) of 1000000000 items/,
    ],
    [
      "a chat template that does not parse",
      meta("tokenizer.chat_template", { type: "string", value: "{% for %}" }),
      /\(tokenizer.chat_template\): the chat template is invalid/,
    ],
  ];
  for (const [name, edit, message] of cases)
    it(name, () => {
      const path = write(name, tinyLlamaGguf(edit));
      const e = errorOf(() => {
        const { model, tokenizer } = loadGGUF(path);
        tokenizer.applyChatTemplate([{ role: "user", content: "a" }]);
        model.dispose();
      });
      expect(e.message).toMatch(message);
      expect(e.message).toContain(path);
    });
  it("a file shorter than its tensors, and not a GGUF at all", () => {
    const full = tinyLlamaGguf();
    expect(errorOf(() => readGGUF(write("short", full.subarray(0, full.length - 40)))).message).toMatch(/runs past the end of the file/);
    expect(errorOf(() => readGGUF(write("text", Buffer.from("hello world, this is not gguf")))).message).toMatch(/not a GGUF file/);
    expect(errorOf(() => readGGUF(work))).toBeInstanceOf(GGUFError);
  });
});
