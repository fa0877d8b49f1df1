// nn.Module: the parameter tree, state dicts, dtype/device moves, train/eval, and the layers.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as T from "../src/index.js";

class Block extends T.nn.Module {
  self_attn = new T.nn.Linear(4, 4, { bias: false });
  norm = new T.nn.RMSNorm(4, 1e-6);
  constructor() {
    super();
    this.registerBuffer("inv_freq", T.arange(2, { dtype: "float32" }));
    this.registerBuffer("cache", T.zeros([2]), { persistent: false });
  }
}
class Net extends T.nn.Module {
  embed = new T.nn.Embedding(10, 4);
  layers = new T.nn.ModuleList([new Block(), new Block()]);
  head = new T.nn.Linear(4, 3);
  drop = new T.nn.Dropout(0.5);
  forward(ids: T.Tensor): T.Tensor {
    let h = this.embed.forward(ids);
    for (const layer of this.layers) h = layer.norm.forward(layer.self_attn.forward(h));
    return this.head.forward(this.drop.forward(h));
  }
}

describe("nn.Module", () => {
  it("names parameters and buffers by their property paths", () => {
    const net = new Net();
    expect([...net.stateDict().keys()]).toEqual([
      "embed.weight",
      "layers.0.inv_freq", // a module's own tensors come before its children's, as in PyTorch
      "layers.0.self_attn.weight",
      "layers.0.norm.weight",
      "layers.1.inv_freq",
      "layers.1.self_attn.weight",
      "layers.1.norm.weight",
      "head.weight",
      "head.bias",
    ]);
    expect(net.parameters().length).toBe(7);
    expect(net.numParameters()).toBe(40 + 2 * (16 + 4) + 12 + 3);
    expect([...net.namedBuffers()].map(([k]) => k)).toEqual(["layers.0.inv_freq", "layers.0.cache", "layers.1.inv_freq", "layers.1.cache"]);
    expect(net.layers.length).toBe(2);
    expect(net.layers.at(-1)).toBe(net.layers[1]);
    expect(net.parameters().every((p) => p.requiresGrad && p.isLeaf)).toBe(true);
  });

  it("saves and loads a state dict through safetensors (strict)", () => {
    const a = new Net();
    const b = new Net();
    const path = join(mkdtempSync(join(tmpdir(), "pisces-nn-")), "net.safetensors");
    T.saveSafetensors(path, a.stateDict());
    const ids = T.tensor([[1, 2, 3]]);
    a.eval();
    b.eval();
    expect(a.forward(ids).equal(b.forward(ids))).toBe(false);
    b.loadStateDict(T.loadSafetensors(path));
    expect(a.forward(ids).equal(b.forward(ids))).toBe(true);
    const partial = new Map([["head.bias", T.zeros([3])]]);
    const result = b.loadStateDict(partial, { strict: false });
    expect(result.unexpectedKeys).toEqual([]);
    expect(result.missingKeys).toContain("embed.weight");
    expect(b.head.bias!.tolist()).toEqual([0, 0, 0]);
  });

  it("fills a model built on the meta device with assign (streaming load), strictly", () => {
    const src = new Net();
    const path = join(mkdtempSync(join(tmpdir(), "pisces-nn-")), "net.safetensors");
    T.saveSafetensors(path, src.stateDict());
    const onMeta = new (class extends T.nn.Module {
      embed = new T.nn.Embedding(10, 4, { device: "meta" });
      head = new T.nn.Linear(4, 3, { device: "meta" });
    })();
    expect(onMeta.head.weight.device).toBe("meta");
    const reader = T.loadSafetensors(path);
    const wanted = ["embed.weight", "head.weight", "head.bias"];
    onMeta.loadStateDict({ keys: () => wanted, get: (k) => reader.get(k), shapeOf: (k) => reader.shapeOf(k) }, { assign: true, dtype: "bfloat16" });
    expect(onMeta.head.weight.device).toBe("cpu");
    expect(onMeta.head.weight.dtype).toBe("bfloat16");
    expect(onMeta.head.weight.requiresGrad).toBe(true);
    expect(onMeta.head.bias!.float().sub(src.head.bias!.to("bfloat16").float()).abs().max().item()).toBe(0);
    expect(() => onMeta.loadStateDict(reader, { assign: true })).toThrow(/unexpected keys: layers/);
  });

  it("casts floating-point parameters and buffers in place, keeping parameter identity", () => {
    const net = new Net();
    const weight = net.head.weight;
    const opt = new T.optim.SGD(net.parameters(), { lr: 0.1 });
    net.to("bfloat16");
    expect(net.head.weight).toBe(weight);
    expect(weight.dtype).toBe("bfloat16");
    expect(weight.requiresGrad).toBe(true);
    expect(net.layers[0]!.stateDict().get("inv_freq")!.dtype).toBe("bfloat16");
    const loss = net
      .eval()
      .forward(T.tensor([[1, 2]]))
      .float()
      .sum();
    loss.backward();
    opt.step();
    expect(weight.grad!.dtype).toBe("bfloat16");
    net.to({ dtype: "float32" });
    expect(weight.dtype).toBe("float32");
  });

  it("switches train/eval through the tree; dropout acts only in training", () => {
    const net = new Net();
    net.eval();
    expect([...net.namedModules()].every(([, m]) => !m.training)).toBe(true);
    const ids = T.tensor([[1, 2, 3, 4]]);
    expect(net.forward(ids).equal(net.forward(ids))).toBe(true);
    net.train();
    expect(net.drop.training).toBe(true);
  });

  it("initialises layers as PyTorch does", () => {
    T.manualSeed(0);
    const lin = new T.nn.Linear(100, 50);
    const bound = 1 / Math.sqrt(100);
    expect(lin.weight.abs().max().item()).toBeLessThanOrEqual(bound);
    expect(lin.weight.abs().max().item()).toBeGreaterThan(bound * 0.9);
    const conv = new T.nn.Conv2d(4, 8, 3, { padding: 1 });
    expect(conv.forward(T.randn([2, 4, 5, 5])).shape).toEqual([2, 8, 5, 5]);
    expect(new T.nn.GroupNorm(2, 8).forward(T.randn([2, 8, 3])).shape).toEqual([2, 8, 3]);
    expect(new T.nn.LayerNorm(4).weight!.tolist()).toEqual([1, 1, 1, 1]);
    const emb = new T.nn.Embedding(5, 3, { paddingIdx: 0 });
    expect(emb.weight.select(0, 0).tolist()).toEqual([0, 0, 0]);
    expect(() => new T.nn.GroupNorm(3, 8)).toThrow(/divisible by numGroups/);
    expect(() => new T.optim.AdamW([lin.weight], { lr: -1 })).toThrow(/invalid learning rate/);
    expect(() => new T.optim.AdamW([], {})).toThrow(/empty parameter list/);
  });

  it("frees a whole model with dispose()", () => {
    const before = T.memoryStats().liveTensors;
    const net = new Net();
    expect(T.memoryStats().liveTensors).toBeGreaterThan(before);
    net.dispose();
    expect(T.memoryStats().liveTensors).toBe(before);
  });
});

describe("Parameter ownership", () => {
  it("takes ownership of the tensor it is given (no dispose ceremony)", () => {
    const before = T.memoryStats().liveTensors;
    const t = T.ones([3]);
    const p = new T.nn.Parameter(t);
    expect(t.isDisposed).toBe(true);
    expect(p.requiresGrad).toBe(true);
    expect(T.scope(() => p.sum().item())).toBe(3);
    expect(T.memoryStats().liveTensors).toBe(before + 1);
    p.dispose();
    expect(T.memoryStats().liveTensors).toBe(before);
    const keepMine = T.zeros([2]);
    const q = new T.nn.Parameter(keepMine.clone());
    expect(keepMine.isDisposed).toBe(false);
    q.dispose();
    keepMine.dispose();
  });
});
