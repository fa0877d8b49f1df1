// One pre-norm Llama decoder layer for one new token per row, in one native call: the ~40
// operators of a decode step's layer (two RMSNorms, seven projections, the rotary embedding, the
// KV-cache write, attention over the cache, SiLU-gated MLP, two residuals) without a trip through
// JavaScript between them. On SmolLM2-135M (30 layers) the per-operator path spent about a third of
// a decode step outside the products; here it is the products and a few loops.
// Reference: LlamaDecoderLayer.forward in @pisces/llama (the per-operator path, which also runs
// everywhere this does not apply); parity: packages/llama/test/fused.test.ts.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "few_row_linear.h"
#include "quantized_linear.h"
#include "rms_norm.h"

namespace pisces::fused {

// A projection: packed GGML rows (N, rowBytes) with their type, or a float32 (N, K) weight (type -1).
struct Projection {
  at::Tensor w;
  int64_t type;
  int64_t outFeatures() const { return w.size(0); }
};

struct DecoderLayer {
  at::Tensor inputNorm, postNorm;  // (C) float32
  Projection q, k, v, o, gate, up, down;
  double eps;
  int64_t heads, kvHeads, headDim;
  double scale;  // of the attention scores
};

// x (M, K) -> (M, sum N_i), the projections' outputs side by side.
inline at::Tensor projectAll(const at::Tensor& x, const std::vector<const Projection*>& ps) {
  bool packed = true;
  for (const Projection* p : ps) packed = packed && p->type >= 0;
  if (packed) {
    std::vector<quant::Packed> ws;
    for (const Projection* p : ps) ws.push_back({p->w, p->type});
    return quant::fewRowMulti(x, ws);
  }
  std::vector<at::Tensor> outs;
  for (const Projection* p : ps) {
    if (p->type >= 0) outs.push_back(quant::fewRowMulti(x, {{p->w, p->type}}));
    else outs.push_back(useFewRow(x, p->w, std::nullopt) ? fewRowLinear(x, p->w, std::nullopt) : at::linear(x, p->w));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs, 1);
}

// Rotates one head in place: v cos + rotate_half(v) sin, rotate_half(v) = (-v2, v1) (HF's apply_rotary_pos_emb).
inline void rotate(float* v, const float* c, const float* s, int64_t half) {
  for (int64_t i = 0; i < half; i++) {
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c[i] + -x2 * s[i];
    v[i + half] = x2 * c[i + half] + x1 * s[i + half];
  }
}

// softmax(q K^T scale) V for one query head over S cached positions (K, V: (S, hs) rows); p: S
// floats of scratch. Vectorised over the head dimension when it is a multiple of 8 (every Llama's
// is), four keys at a time so that four independent sums are in flight: the scalar loops took
// ~0.3 ms a layer at 250 cached positions (SmolLM2-135M, 9 heads of 64), as long as the layer's
// seven packed projections together.
__attribute__((target("avx2,fma"))) inline void attendOne(const float* q, const float* K, const float* V, int64_t S, int64_t hs, float scale, float* p, float* out) {
  float mx = -std::numeric_limits<float>::infinity();
  if (hs % 8 == 0) {
    int64_t j = 0;
    for (; j + 4 <= S; j += 4) {
      const float* k0 = K + j * hs;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t d = 0; d < hs; d += 8) {
        const __m256 qd = _mm256_loadu_ps(q + d);
        a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + d), a0);
        a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + hs + d), a1);
        a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + 2 * hs + d), a2);
        a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + 3 * hs + d), a3);
      }
      p[j] = quant::hsum(a0) * scale;
      p[j + 1] = quant::hsum(a1) * scale;
      p[j + 2] = quant::hsum(a2) * scale;
      p[j + 3] = quant::hsum(a3) * scale;
    }
    for (; j < S; j++) {
      const float* kj = K + j * hs;
      __m256 a = _mm256_setzero_ps();
      for (int64_t d = 0; d < hs; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), a);
      p[j] = quant::hsum(a) * scale;
    }
    for (j = 0; j < S; j++) mx = std::max(mx, p[j]);
  } else {
    for (int64_t j = 0; j < S; j++) {
      float dot = 0.0f;
      const float* kj = K + j * hs;
      for (int64_t d = 0; d < hs; d++) dot += q[d] * kj[d];
      p[j] = dot * scale;
      mx = std::max(mx, p[j]);
    }
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < S; j++) {
    p[j] = std::exp(p[j] - mx);
    sum += p[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < hs; d++) out[d] = 0.0f;
  if (hs % 8 == 0) {
    for (int64_t d0 = 0; d0 < hs; d0 += 32) {  // 4 accumulators of 8 lanes: 32 output values per pass over V
      const int64_t width = std::min<int64_t>(32, hs - d0);
      __m256 o[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t j = 0; j < S; j++) {
        const __m256 w = _mm256_set1_ps(p[j] * inv);
        const float* vj = V + j * hs + d0;
        for (int64_t r = 0; r < width / 8; r++) o[r] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * r), o[r]);
      }
      for (int64_t r = 0; r < width / 8; r++) _mm256_storeu_ps(out + d0 + 8 * r, o[r]);
    }
    return;
  }
  for (int64_t j = 0; j < S; j++) {
    const float w = p[j] * inv;
    const float* vj = V + j * hs;
    for (int64_t d = 0; d < hs; d++) out[d] += w * vj[d];
  }
}

// What the fused layer needs, or a message saying what does not fit (empty when it applies).
inline std::string whyNot(const at::Tensor& x, const DecoderLayer& L, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& keys, const at::Tensor& values,
                          int64_t position) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (!avx2) return "the CPU lacks AVX2, FMA or F16C";
  for (const at::Tensor* t : {&x, &cos, &sin, &keys, &values, &L.inputNorm, &L.postNorm})
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat) return "every tensor must be float32 on the CPU";
  if (x.dim() != 3 || x.size(1) != 1) return "x must be (batch, 1, hidden): one new token per row";
  const int64_t B = x.size(0), C = x.size(2), hs = L.headDim;
  if (L.heads <= 0 || L.kvHeads <= 0 || L.heads % L.kvHeads != 0 || hs <= 0 || hs % 2 != 0) return "heads must be a multiple of kvHeads and headDim even";
  if (cos.numel() != B * hs || sin.numel() != B * hs) return "cos and sin must be (batch, 1, headDim)";
  for (const at::Tensor* c : {&keys, &values})
    if (c->dim() != 4 || c->size(0) != B || c->size(1) != L.kvHeads || c->size(3) != hs || !c->is_contiguous()) return "the caches must be contiguous (batch, kvHeads, maxLength, headDim)";
  if (position < 0 || position >= keys.size(2)) return "the position must lie inside the cache";
  const auto check = [&](const Projection& p, int64_t in, int64_t out) -> bool {
    if (p.w.dim() != 2 || !p.w.device().is_cpu() || p.w.size(0) != out) return false;
    if (p.type < 0) return p.w.scalar_type() == at::kFloat && p.w.size(1) == in;
    try {
      quant::checkPacked(p.w, p.type, in);
    } catch (const std::invalid_argument&) {
      return false;
    }
    return true;
  };
  const int64_t I = L.gate.outFeatures();
  if (!check(L.q, C, L.heads * hs) || !check(L.k, C, L.kvHeads * hs) || !check(L.v, C, L.kvHeads * hs) || !check(L.o, L.heads * hs, C) || !check(L.gate, C, I) ||
      !check(L.up, C, I) || !check(L.down, I, C))
    return "a projection's weight does not match the layer's shapes";
  if (L.inputNorm.numel() != C || L.postNorm.numel() != C) return "the norms' weights must have the hidden size";
  return "";
}

// x (B, 1, C) -> (B, 1, C); writes the token's key and value at `position` of keys / values
// (B, nkv, maxLength, hs) and attends over positions [0, position]. cos, sin: (B, 1, hs).
inline at::Tensor decoderLayer(const at::Tensor& x, const DecoderLayer& L, const at::Tensor& cosT, const at::Tensor& sinT, at::Tensor& keys, at::Tensor& values,
                               int64_t position) {
  const int64_t B = x.size(0), C = x.size(2), nh = L.heads, nkv = L.kvHeads, hs = L.headDim, half = hs / 2, maxLength = keys.size(2);
  const at::Tensor x2 = x.reshape({B, C}).contiguous();
  const at::Tensor cosC = cosT.contiguous(), sinC = sinT.contiguous();
  // attention
  at::Tensor qkv = projectAll(fusedRmsNorm(x2, L.inputNorm, L.eps), {&L.q, &L.k, &L.v});  // (B, (nh + 2 nkv) hs)
  const int64_t width = qkv.size(1);
  float* base = qkv.mutable_data_ptr<float>();
  float* kp = keys.mutable_data_ptr<float>();
  float* vp = values.mutable_data_ptr<float>();
  for (int64_t b = 0; b < B; b++) {
    const float* c = cosC.const_data_ptr<float>() + b * hs;
    const float* s = sinC.const_data_ptr<float>() + b * hs;
    float* row = base + b * width;
    for (int64_t h = 0; h < nh; h++) rotate(row + h * hs, c, s, half);
    for (int64_t h = 0; h < nkv; h++) {
      float* k = row + (nh + h) * hs;
      rotate(k, c, s, half);
      std::memcpy(kp + ((b * nkv + h) * maxLength + position) * hs, k, hs * sizeof(float));
      std::memcpy(vp + ((b * nkv + h) * maxLength + position) * hs, row + (nh + nkv + h) * hs, hs * sizeof(float));
    }
  }
  at::Tensor attn = at::empty({B, nh * hs}, x2.options());
  float* ap = attn.mutable_data_ptr<float>();
  const int64_t S = position + 1, group = nh / nkv;
  // one head's work is S x hs x 2 multiply-adds: below ~64k of them in all, threads cost more than
  // they save. The work pool, not OpenMP: the pool's helper still spins from the projection before,
  // and waking OpenMP's team beside it put three threads on two cores (the layer took twice as long
  // on two threads as on one at 250 cached positions).
  const int threads = B * nh * S * hs < (1 << 16) ? 1 : at::get_num_threads();
  pisces::WorkPool::instance().run(B * nh, 1, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> p(S);
    for (int64_t i = begin; i < end; i++) {
      const int64_t b = i / nh, h = i % nh, kvh = h / group;
      const int64_t cacheRow = (b * nkv + kvh) * maxLength * hs;
      attendOne(base + b * width + h * hs, kp + cacheRow, vp + cacheRow, S, hs, static_cast<float>(L.scale), p.data(), ap + i * hs);
    }
  });
  at::Tensor h = x2.add(projectAll(attn, {&L.o}));  // (B, C)
  // MLP
  at::Tensor gateUp = projectAll(fusedRmsNorm(h, L.postNorm, L.eps), {&L.gate, &L.up});  // (B, 2I)
  const int64_t I = L.gate.outFeatures();
  at::Tensor act = at::empty({B, I}, x2.options());
  const float* gu = gateUp.const_data_ptr<float>();
  float* a = act.mutable_data_ptr<float>();
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < I; i++) {
      const float g = gu[b * 2 * I + i];
      a[b * I + i] = g / (1.0f + std::exp(-g)) * gu[b * 2 * I + I + i];
    }
  return h.add_(projectAll(act, {&L.down})).view({B, 1, C});
}

}  // namespace pisces::fused
