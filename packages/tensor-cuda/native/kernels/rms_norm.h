// The fused float32 CPU RMSNorm (one pass per row).
// Reference: at::rms_norm (KernelMode aten); parity: test/fused.test.ts.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "work_pool.h"

// rmsNorm(x, w?, eps?, mode): RMS normalization over the last dimension. libtorch's rms_norm is a
// composite of six operators (~19 us for one 576-wide row on this machine, most of a decode
// step's per-layer overhead); float32 CPU inference takes one pass per row here instead.
// mode 0 auto, 1 always at::rms_norm, 2 force the fused loop. Parity: test/fused.test.ts.
bool fusedRmsNormApplies(const at::Tensor& x, const std::optional<at::Tensor>& w) {
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || x.dim() < 1 || x.size(-1) == 0) return false;
  if (w && (!w->device().is_cpu() || w->scalar_type() != at::kFloat || w->dim() != 1 || w->size(0) != x.size(-1))) return false;
  return true;
}

at::Tensor fusedRmsNorm(const at::Tensor& x, const std::optional<at::Tensor>& w, double eps) {
  at::Tensor xc = x.contiguous();
  at::Tensor wc = w ? w->contiguous() : at::Tensor();
  at::Tensor out = at::empty_like(xc);
  const int64_t D = xc.size(-1), rows = xc.numel() / D;
  const float* xp = xc.const_data_ptr<float>();
  const float* wp = wc.defined() ? wc.const_data_ptr<float>() : nullptr;
  float* yp = out.mutable_data_ptr<float>();
  pisces::WorkPool::instance().run(rows, std::max<int64_t>(1, 32768 / D), at::get_num_threads(), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* xr = xp + r * D;
      float* yr = yp + r * D;
      float ss = 0.0f;
      for (int64_t i = 0; i < D; i++) ss += xr[i] * xr[i];
      const float scale = 1.0f / std::sqrt(ss / static_cast<float>(D) + static_cast<float>(eps));
      if (wp)
        for (int64_t i = 0; i < D; i++) yr[i] = xr[i] * scale * wp[i];
      else
        for (int64_t i = 0; i < D; i++) yr[i] = xr[i] * scale;
    }
  });
  return out;
}

