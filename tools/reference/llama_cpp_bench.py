"""llama.cpp (llama-cpp-python's bindings to its C API) on a GGUF file, for @pisces/llama's quantized
benchmark and its greedy-token parity test.

  python3 tools/reference/llama_cpp_bench.py GGUF THREADS greedy PROMPTS_JSON NEW_TOKENS
      -> {"tokens": [[...], ...]}: greedy continuations of each prompt (token ids), batch 1
  python3 tools/reference/llama_cpp_bench.py GGUF THREADS bench PROMPT_JSON NEW_TOKENS
      -> prefill seconds (the prompt, one batch), decode seconds per token at batch 1 and batch 8
         (8 sequences, one token each per llama_decode), resident memory after the runs.
PROMPT_JSON holds {"prefill": [ids], "decode": [[ids] x 8]}. Best of 3 for every timing.
"""

import ctypes
import json
import sys
import time

import llama_cpp as L
import numpy as np

path, threads, mode, prompts_path, new_tokens = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
with open(prompts_path) as f:
    prompts = json.load(f)

L.llama_backend_init()
_quiet = L.llama_log_callback(lambda level, text, user_data: None)  # kept referenced: llama.cpp calls it
L.llama_log_set(_quiet, ctypes.c_void_p(0))
mparams = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mparams)
vocab = L.llama_model_get_vocab(model)
n_vocab = L.llama_vocab_n_tokens(vocab)
cparams = L.llama_context_default_params()
cparams.n_ctx = 1024
cparams.n_batch = 512
cparams.n_ubatch = 512
cparams.n_seq_max = 8
cparams.kv_unified = True  # one cache for all sequences (else each of the 8 gets n_ctx / 8 positions)
cparams.n_threads = threads
cparams.n_threads_batch = threads
ctx = L.llama_init_from_model(model, cparams)
batch = L.llama_batch_init(512, 0, 8)


def clear():
    L.llama_memory_clear(L.llama_get_memory(ctx), True)


def decode(entries):
    """entries: [(token, position, sequence, wants_logits)]; one llama_decode call."""
    batch.n_tokens = len(entries)
    for i, (tok, pos, seq, logits) in enumerate(entries):
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = 1 if logits else 0
    rc = L.llama_decode(ctx, batch)
    if rc != 0:
        raise RuntimeError(f"llama_decode returned {rc}")


def logits(i):
    return np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(n_vocab,))


def greedy(ids, n):
    clear()
    decode([(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])
    out = []
    tok = int(np.argmax(logits(len(ids) - 1)))
    for step in range(n):
        out.append(tok)
        if step == n - 1:
            break
        decode([(tok, len(ids) + step, 0, True)])
        tok = int(np.argmax(logits(0)))
    return out


if mode == "greedy":
    print(json.dumps({"tokens": [greedy(p, new_tokens) for p in prompts]}))
    sys.exit(0)


def best(f, rounds=3):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def prefill():
    clear()
    ids = prompts["prefill"]
    decode([(t, p, 0, p == len(ids) - 1) for p, t in enumerate(ids)])


def decode_time(rows):
    """Seconds per decode step after the prompt and the first token, `rows` sequences."""
    starts = prompts["decode"][:rows]

    def run():
        clear()
        decode([(t, p, s, p == len(ids) - 1) for s, ids in enumerate(starts) for p, t in enumerate(ids)])
        toks = [int(np.argmax(logits(i))) for i in range(len(starts) * len(starts[0])) if (i + 1) % len(starts[0]) == 0]
        t0 = time.perf_counter()
        for step in range(new_tokens - 1):
            decode([(toks[s], len(starts[s]) + step, s, True) for s in range(rows)])
            toks = [int(np.argmax(logits(s))) for s in range(rows)]
        return (time.perf_counter() - t0) / (new_tokens - 1)

    run()
    return min(run() for _ in range(3))


prefill()
result = {
    "llama_cpp": L.__version__,
    "prefill_s": best(prefill),
    "decode_b1_s": decode_time(1),
    "decode_b8_s": decode_time(8),
}
with open("/proc/self/status") as f:
    result["rss_mb"] = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
print(json.dumps(result))
