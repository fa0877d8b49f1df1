// The few-row float32 CPU linear kernel (token-by-token decoding).
// Reference: at::linear (KernelMode aten); parity: test/linear.test.ts.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "work_pool.h"

// linear(x, w, b?) = x w^T + b. For a few rows on the CPU (token-by-token decoding) the product
// is matrix-vector-like and bound by reading w. libtorch's BLAS (MKL) runs it on one thread, and
// on this AMD machine its M = 8 path reads only ~3 GB/s (measured: tools/bench notes in
// packages/llama/bench/RESULTS.md). So few-row float32 products on the CPU take this kernel: w is
// read once, in tiles of 4 output rows, each tile multiplied against every row of x while it sits
// in L1; the output rows are split across the intra-op threads. Needs AVX2 + FMA; CPUs without
// them keep at::linear. Sums run in a different order than BLAS, so results differ by float32
// rounding; test/linear.test.ts compares this path with at::linear.

// Dot products of NR rows of w with MR rows of x, 8 lanes at a time. `next` (the following tile's
// rows, or null) is prefetched a cache line per row every 16 floats: short rows (K = 576) leave the
// hardware prefetcher too little run-up, and this measured ~15% more read bandwidth.
template <int NR, int MR>
__attribute__((target("avx2,fma"))) void tileAvx2(const float* x, int64_t xStride, const float* w, int64_t K,
                                                   float* y, int64_t yStride, const float* bias, const float* next) {
  __m256 acc[NR][MR];
#pragma GCC unroll 4
  for (int n = 0; n < NR; n++)
#pragma GCC unroll 2
    for (int m = 0; m < MR; m++) acc[n][m] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if (next && (k & 15) == 0)
#pragma GCC unroll 4
      for (int n = 0; n < NR; n++) _mm_prefetch(reinterpret_cast<const char*>(next + n * K + k), _MM_HINT_T0);
    __m256 wv[NR];
#pragma GCC unroll 4
    for (int n = 0; n < NR; n++) wv[n] = _mm256_loadu_ps(w + n * K + k);
#pragma GCC unroll 2
    for (int m = 0; m < MR; m++) {
      __m256 xv = _mm256_loadu_ps(x + m * xStride + k);
#pragma GCC unroll 4
      for (int n = 0; n < NR; n++) acc[n][m] = _mm256_fmadd_ps(wv[n], xv, acc[n][m]);
    }
  }
  for (int n = 0; n < NR; n++)
    for (int m = 0; m < MR; m++) {
      __m128 lo = _mm256_castps256_ps128(acc[n][m]), hi = _mm256_extractf128_ps(acc[n][m], 1);
      __m128 s = _mm_add_ps(lo, hi);
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
      float sum = _mm_cvtss_f32(s);
      for (int64_t kk = k; kk < K; kk++) sum += w[n * K + kk] * x[m * xStride + kk];
      y[m * yStride + n] = sum + (bias ? bias[n] : 0.0f);
    }
}

template <int NR>
__attribute__((target("avx2,fma"))) void rowsAvx2(const float* x, int64_t M, const float* w, int64_t K, float* y,
                                                   int64_t N, const float* bias, const float* next) {
  int64_t m = 0;
  for (; m + 2 <= M; m += 2) tileAvx2<NR, 2>(x + m * K, K, w, K, y + m * N, N, bias, m == 0 ? next : nullptr);
  if (m < M) tileAvx2<NR, 1>(x + m * K, K, w, K, y + m * N, N, bias, m == 0 ? next : nullptr);
}

at::Tensor fewRowLinear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
  const int64_t K = w.size(1), N = w.size(0), M = x.numel() / K;
  at::Tensor x2 = x.reshape({M, K}).contiguous();
  at::Tensor bc = b && b->defined() ? b->contiguous() : at::Tensor();
  at::Tensor out = at::empty({M, N}, x.options());
  const float* xp = x2.const_data_ptr<float>();
  const float* wp = w.const_data_ptr<float>();
  const float* bp = bc.defined() ? bc.const_data_ptr<float>() : nullptr;
  float* yp = out.mutable_data_ptr<float>();
  const int64_t tiles = (N + 3) / 4;
  // chunks of ~64 KiB of w, claimed by whichever thread is running (work_pool.h: a descheduled
  // thread does not hold up the product on a busy machine)
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K));
  pisces::WorkPool::instance().run(tiles, chunk, at::get_num_threads(), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      const int64_t n0 = t * 4, rows = std::min<int64_t>(4, N - n0);
      const float* bt = bp ? bp + n0 : nullptr;
      const float* next = n0 + 8 <= N ? wp + (n0 + 4) * K : nullptr;
      if (rows == 4) rowsAvx2<4>(xp, M, wp + n0 * K, K, yp + n0, N, bt, next);
      else
        for (int64_t r = 0; r < rows; r++) rowsAvx2<1>(xp, M, wp + (n0 + r) * K, K, yp + n0 + r, N, bt ? bt + r : nullptr, nullptr);
    }
  });
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  return out.view(shape);
}

bool fewRowApplies(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!avx2 || !x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || w.dim() != 2 || !w.is_contiguous()) return false;
  if (x.dim() < 1 || x.size(-1) != w.size(1) || w.size(1) == 0) return false;
  if (b && b->defined() && (b->device() != w.device() || b->scalar_type() != at::kFloat || b->dim() != 1 || b->size(0) != w.size(0))) return false;
  return true;
}

bool useFewRow(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
  if (!fewRowApplies(x, w, b)) return false;
  bool grad = c10::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b && b->defined() && b->requires_grad()));
  if (grad) return false;
  const int64_t rows = x.numel() / w.size(1);
  return rows >= 1 && rows <= 16;
}

