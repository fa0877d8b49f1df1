// Weight-only quantized linear layers with GGML's block formats, kept packed in memory.
// Reference: dequantizeGgml + at::linear (KernelMode aten); parity: test/quantized.test.ts.
#pragma once

#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include "work_pool.h"

// A quantized weight is a uint8 tensor (N, rowBytes): each of the N output rows holds K / B blocks
// in llama.cpp's layout (ggml-common.h), so a row of a GGUF tensor is a row here byte for byte.
//   Q4_0 (type 2):  {f16 d; u8 qs[16]}        w[j] = (lo(qs[j]) - 8) d,  w[j + 16] = (hi(qs[j]) - 8) d
//   Q4_1 (type 3):  {f16 d; f16 m; u8 qs[16]} w[j] = lo(qs[j]) d + m,    w[j + 16] = hi(qs[j]) d + m
//   Q8_0 (type 8):  {f16 d; i8 qs[32]}        w[j] = qs[j] d
//   Q4_K (type 12): 256 values, {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 8 chunks of 32 with
//                   6-bit scale sc and min m each, w = (d sc) q - (dmin m), q a nibble
//   Q6_K (type 14): 256 values, {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: 6-bit q - 32 from a
//                   nibble of ql and 2 bits of qh, an int8 scale per 16 values, w = (d sc) q
// Every format is handled as chunks of 32 values (a whole block, or an eighth of a K-quant block).
// Few-row products (decoding) read the weight packed, at 4.5-8.5 bits per value instead of 32, and
// multiply it as llama.cpp's CPU backend does: each activation row is quantized to 8 bits per block
// of 32 (Q8_0, as gguf-py writes it), and a block's product is an exact integer dot product
// (maddubs) scaled by the two block scales. A first version that dequantized each block to float
// registers instead was compute-bound (no faster than the float32 kernel on a 576 x 8192 weight);
// the integer dot takes a third of its instructions. The results equal x8 W^T in float64 on the
// dequantized x8 and W to float32 rounding (test/quantized.test.ts); x8 differs from x by at most
// half a step of 1/127 of the block's largest value. Many rows (a prompt's prefill) dequantize the
// weight to float32 and use at::linear on the unquantized activations, whose matrix-matrix product
// is compute-bound anyway.

namespace pisces::quant {

struct Format {
  int type;
  const char* name;
  int64_t blockValues;
  int64_t blockBytes;
};

inline const Format* formatOf(int64_t type) {
  static const Format formats[] = {{2, "Q4_0", 32, 18}, {3, "Q4_1", 32, 20}, {8, "Q8_0", 32, 34}, {12, "Q4_K", 256, 144}, {14, "Q6_K", 256, 210}};
  for (const Format& f : formats)
    if (f.type == type) return &f;
  return nullptr;
}

inline float halfToFloat(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return c10::detail::fp16_ieee_to_fp32_value(h);
}

// Checks a packed weight against its format and input width; throws std::invalid_argument naming what is wrong.
inline const Format& checkPacked(const at::Tensor& q, int64_t type, int64_t K) {
  const Format* f = formatOf(type);
  if (!f) throw std::invalid_argument("unsupported quantized type " + std::to_string(type) + " (Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q4_K = 12 and Q6_K = 14 are)");
  if (q.scalar_type() != at::kByte) throw std::invalid_argument("a packed weight must be a uint8 tensor");
  if (q.dim() < 1) throw std::invalid_argument("a packed weight needs at least one dimension");
  if (K <= 0 || K % f->blockValues != 0)
    throw std::invalid_argument(std::string(f->name) + ": the input width " + std::to_string(K) + " must be a positive multiple of " + std::to_string(f->blockValues));
  const int64_t rowBytes = K / f->blockValues * f->blockBytes;
  if (q.size(-1) != rowBytes)
    throw std::invalid_argument(std::string(f->name) + ": a row of " + std::to_string(K) + " values takes " + std::to_string(rowBytes) + " bytes, the packed weight's rows have " +
                                std::to_string(q.size(-1)));
  return *f;
}

__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("f16c"))) inline float halfToFloatF16c(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Activations quantized as llama.cpp does before its integer dot products (quantize_row_q8_0, as
// gguf-py writes it): per block of 32, d = max|x| / 127 (kept as float16), q = roundf(x / d) with
// the unrounded d. q8 (M, K) int8, scale (M, blocks) the float16-rounded d, sums (M, blocks) d * sum(q)
// (Q4_1's min term).
struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> scale, sums;
};

__attribute__((target("f16c"))) inline QuantizedRows quantizeRows(const float* x, int64_t M, int64_t K) {
  const int64_t blocks = K / 32;
  QuantizedRows r{std::vector<int8_t>(M * K), std::vector<float>(M * blocks), std::vector<float>(M * blocks)};
  for (int64_t i = 0; i < M * blocks; i++) {
    const float* xb = x + i * 32;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
      const int v = static_cast<int>(std::round(xb[j] * id));
      r.q[i * 32 + j] = static_cast<int8_t>(v);
      sum += v;
    }
    r.scale[i] = _cvtsh_ss(_cvtss_sh(d, 0));
    r.sums[i] = r.scale[i] * static_cast<float>(sum);
  }
  return r;
}

// Q4_K's 6-bit scale and min of chunk j (ggml's get_scale_min_k4).
inline void scaleMinK4(const uint8_t* q, int j, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// One chunk of 32 weights, decoded: the integer values as bytes (signed, or unsigned where
// `unsignedW`), the int16 multipliers of its two halves (Q6_K's per-16 scales, else 1), the float
// scale d and the float offset mn: w[j] = d * half_scale(j) * q[j] + mn.
struct Chunk {
  __m256i q;
  __m256i scales16;
  float d;
  float mn;
};

// TYPE is a template parameter so that each format's kernel is compiled without the switch: with
// the type a runtime value inside the inner loop, a 1536 x 576 Q4_1 product at one row took 113 us,
// compiled per format 42 us (this machine, busy). decodeChunk(type, ...) dispatches at run time.
template <int TYPE>
__attribute__((target("avx2,f16c"))) inline Chunk decodeChunkOf(const uint8_t* row, int64_t c) {
  constexpr int type = TYPE;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  Chunk k;
  k.scales16 = _mm256_set1_epi16(1);
  k.mn = 0.0f;
  switch (TYPE) {
    case 8: {
      const uint8_t* block = row + c * 34;
      k.q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      k.d = halfToFloatF16c(block);
      break;
    }
    case 2:
    case 3: {
      const uint8_t* block = row + c * (type == 3 ? 20 : 18);
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + (type == 3 ? 4 : 2)));
      const __m256i nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
      k.q = type == 2 ? _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8)) : nibbles;
      k.d = halfToFloatF16c(block);
      if (type == 3) k.mn = halfToFloatF16c(block + 2);
      break;
    }
    case 12: {
      const uint8_t* block = row + (c / 8) * 144;
      const int sub = static_cast<int>(c % 8);
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 16 + (sub / 2) * 32));
      k.q = _mm256_and_si256(sub % 2 ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
      int sc, m;
      scaleMinK4(block + 4, sub, sc, m);
      k.d = halfToFloatF16c(block) * static_cast<float>(sc);
      k.mn = -(halfToFloatF16c(block + 2) * static_cast<float>(m));
      break;
    }
    default: {  // 14, Q6_K
      const uint8_t* block = row + (c / 8) * 210;
      const int sub = static_cast<int>(c % 8), h = sub / 4, j = sub % 4;
      const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + h * 64 + (j % 2) * 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 128 + h * 32));
      const __m256i nib = _mm256_and_si256(j / 2 ? _mm256_srli_epi16(ql, 4) : ql, low4);
      const __m256i high = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), _mm256_set1_epi8(3));
      k.q = _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(high, 4)), _mm256_set1_epi8(32));
      const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192 + h * 8 + 2 * j);
      k.scales16 = _mm256_set_m128i(_mm_set1_epi16(scales[1]), _mm_set1_epi16(scales[0]));
      k.d = halfToFloatF16c(block + 208);
    }
  }
  return k;
}

__attribute__((target("avx2,f16c"))) inline Chunk decodeChunk(int type, const uint8_t* row, int64_t c) {
  switch (type) {
    case 2: return decodeChunkOf<2>(row, c);
    case 3: return decodeChunkOf<3>(row, c);
    case 8: return decodeChunkOf<8>(row, c);
    case 12: return decodeChunkOf<12>(row, c);
    default: return decodeChunkOf<14>(row, c);
  }
}

constexpr bool unsignedFormat(int type) { return type == 3 || type == 12; }

// Eight int32 partial sums of w . q (times Q6_K's per-16 scales) as floats. Exact: the pair sums
// of maddubs stay within int16 (|w| <= 128, |q| <= 127), and the int32 sums within 2^24.
__attribute__((target("avx2"))) inline __m256 dot32(bool unsignedW, const Chunk& w, __m256i q) {
  __m256i pairs;
  if (unsignedW) pairs = _mm256_maddubs_epi16(w.q, q);
  else pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w.q, w.q), _mm256_sign_epi8(q, w.q));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, w.scales16));
}

// y[m][n] for MR activation rows against NR packed weight rows (a tile: NR x MR independent
// accumulators keep the units busy; one row alone is bound by the latency of its sum chain).
template <int TYPE, int NR, int MR>
__attribute__((target("avx2,fma,f16c"))) void tileDot(const uint8_t* rows, int64_t rowBytes, int64_t chunks, const QuantizedRows& xq, int64_t m0,
                                                       int64_t K, float* y, int64_t yStride) {
  __m256 acc[NR][MR];
  float minTerm[NR][MR] = {};
  for (int n = 0; n < NR; n++)
    for (int m = 0; m < MR; m++) acc[n][m] = _mm256_setzero_ps();
  constexpr bool isUnsigned = unsignedFormat(TYPE);
  constexpr bool withMin = TYPE == 3 || TYPE == 12;
  for (int64_t c = 0; c < chunks; c++) {
    __m256i q[MR];
    float dx[MR];
    for (int m = 0; m < MR; m++) {
      q[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq.q.data() + (m0 + m) * K + c * 32));
      dx[m] = xq.scale[(m0 + m) * chunks + c];
    }
#pragma GCC unroll 4
    for (int n = 0; n < NR; n++) {
      const Chunk w = decodeChunkOf<TYPE>(rows + n * rowBytes, c);
#pragma GCC unroll 4
      for (int m = 0; m < MR; m++) acc[n][m] = _mm256_fmadd_ps(_mm256_set1_ps(w.d * dx[m]), dot32(isUnsigned, w, q[m]), acc[n][m]);
      if constexpr (withMin)
        for (int m = 0; m < MR; m++) minTerm[n][m] += w.mn * xq.sums[(m0 + m) * chunks + c];
    }
  }
  for (int n = 0; n < NR; n++)
    for (int m = 0; m < MR; m++) y[m * yStride + n] = hsum(acc[n][m]) + minTerm[n][m];
}

template <int TYPE, int NR>
void tileRows(const uint8_t* rows, int64_t rowBytes, int64_t chunks, const QuantizedRows& xq, int64_t M, int64_t K, float* y, int64_t N) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) tileDot<TYPE, NR, 4>(rows, rowBytes, chunks, xq, m, K, y + m * N, N);
  for (; m + 2 <= M; m += 2) tileDot<TYPE, NR, 2>(rows, rowBytes, chunks, xq, m, K, y + m * N, N);
  if (m < M) tileDot<TYPE, NR, 1>(rows, rowBytes, chunks, xq, m, K, y + m * N, N);
}

// Tiles [begin, end) of 4 output rows (the last tile may be short) of an (N, rowBytes) weight in
// one format, into y (M, stride) from column 0.
// How many tiles ahead tileRange prefetches.
constexpr int64_t kPrefetchTiles = 2;

template <int TYPE>
void tileRange(const uint8_t* qp, int64_t rowBytes, int64_t chunks, const QuantizedRows& xq, int64_t M, int64_t K, float* yp, int64_t N, int64_t stride,
               int64_t begin, int64_t end) {
  for (int64_t t = begin; t < end; t++) {
    const int64_t n0 = t * 4, count = std::min<int64_t>(4, N - n0);
    // a later tile's rows, fetched while this one computes: with the hardware prefetcher alone, 30
    // layers streamed from memory took about twice as long as one layer 30 times from cache (a
    // decode step streams every weight once); measured on a busy machine, so the gain is rough
    if (t + kPrefetchTiles < end) {
      const uint8_t* next = qp + (n0 + 4 * kPrefetchTiles) * rowBytes;
      const int64_t span = std::min<int64_t>(4, N - n0 - 4 * kPrefetchTiles) * rowBytes;
      for (int64_t off = 0; off < span; off += 64) _mm_prefetch(reinterpret_cast<const char*>(next + off), _MM_HINT_T0);
    }
    if (count == 4) tileRows<TYPE, 4>(qp + n0 * rowBytes, rowBytes, chunks, xq, M, K, yp + n0, stride);
    else
      for (int64_t r = 0; r < count; r++) tileRows<TYPE, 1>(qp + (n0 + r) * rowBytes, rowBytes, chunks, xq, M, K, yp + n0 + r, stride);
  }
}

inline void tileRangeOf(int type, const uint8_t* qp, int64_t rowBytes, int64_t chunks, const QuantizedRows& xq, int64_t M, int64_t K, float* yp, int64_t N,
                        int64_t stride, int64_t begin, int64_t end) {
  switch (type) {
    case 2: return tileRange<2>(qp, rowBytes, chunks, xq, M, K, yp, N, stride, begin, end);
    case 3: return tileRange<3>(qp, rowBytes, chunks, xq, M, K, yp, N, stride, begin, end);
    case 8: return tileRange<8>(qp, rowBytes, chunks, xq, M, K, yp, N, stride, begin, end);
    case 12: return tileRange<12>(qp, rowBytes, chunks, xq, M, K, yp, N, stride, begin, end);
    default: return tileRange<14>(qp, rowBytes, chunks, xq, M, K, yp, N, stride, begin, end);
  }
}

// One chunk to 32 floats with AVX2: (d * half_scale) * q + mn, the products and sums of the scalar
// loop in its order. Compiled without FMA so that no multiply-add is contracted: the result equals
// the scalar loop's (and gguf-py's) bit for bit.
__attribute__((target("avx2,f16c"))) inline void dequantizeChunkAvx2(int type, const uint8_t* row, int64_t c, float* out) {
  const Chunk k = decodeChunk(type, row, c);
  alignas(32) int16_t scales[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(scales), k.scales16);
  const __m128i lo = _mm256_castsi256_si128(k.q), hi = _mm256_extracti128_si256(k.q, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  const bool isUnsigned = unsignedFormat(type);
  const __m256 mn = _mm256_set1_ps(k.mn);
  for (int i = 0; i < 4; i++) {
    const __m256 d = _mm256_set1_ps(k.d * static_cast<float>(scales[i < 2 ? 0 : 8]));
    const __m256i ints = isUnsigned ? _mm256_cvtepu8_epi32(parts[i]) : _mm256_cvtepi8_epi32(parts[i]);
    __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(ints));
    if (k.mn != 0.0f) v = _mm256_add_ps(v, mn);
    _mm256_storeu_ps(out + 8 * i, v);
  }
}

// The scalar loop, written from ggml's dequantize_row_* (any CPU).
inline void dequantizeChunkScalar(int type, const uint8_t* row, int64_t c, float* o) {
  switch (type) {
    case 8: {
      const uint8_t* block = row + c * 34;
      const float d = halfToFloat(block);
      const int8_t* qs = reinterpret_cast<const int8_t*>(block + 2);
      for (int j = 0; j < 32; j++) o[j] = d * static_cast<float>(qs[j]);
      return;
    }
    case 2:
    case 3: {
      const bool withMin = type == 3;
      const uint8_t* block = row + c * (withMin ? 20 : 18);
      const float d = halfToFloat(block), mn = withMin ? halfToFloat(block + 2) : 0.0f;
      const uint8_t* qs = block + (withMin ? 4 : 2);
      const int offset = withMin ? 0 : 8;
      for (int j = 0; j < 16; j++) {
        o[j] = d * static_cast<float>((qs[j] & 0x0f) - offset);
        o[j + 16] = d * static_cast<float>((qs[j] >> 4) - offset);
        if (withMin) {
          o[j] += mn;
          o[j + 16] += mn;
        }
      }
      return;
    }
    case 12: {
      const uint8_t* block = row + (c / 8) * 144;
      const int sub = static_cast<int>(c % 8);
      int sc, m;
      scaleMinK4(block + 4, sub, sc, m);
      const float d = halfToFloat(block) * static_cast<float>(sc), dm = halfToFloat(block + 2) * static_cast<float>(m);
      const uint8_t* qs = block + 16 + (sub / 2) * 32;
      for (int j = 0; j < 32; j++) o[j] = d * static_cast<float>(sub % 2 ? qs[j] >> 4 : qs[j] & 0x0f) + -dm;
      return;
    }
    default: {  // 14, Q6_K
      const uint8_t* block = row + (c / 8) * 210;
      const int sub = static_cast<int>(c % 8), h = sub / 4, j = sub % 4;
      const uint8_t* ql = block + h * 64 + (j % 2) * 32;
      const uint8_t* qh = block + 128 + h * 32;
      const int8_t* scales = reinterpret_cast<const int8_t*>(block + 192 + h * 8 + 2 * j);
      const float d = halfToFloat(block + 208);
      for (int l = 0; l < 32; l++) {
        const int q = ((j / 2 ? ql[l] >> 4 : ql[l] & 0x0f) | (((qh[l] >> (2 * j)) & 3) << 4)) - 32;
        o[l] = (d * static_cast<float>(scales[l / 16])) * static_cast<float>(q);
      }
    }
  }
}

// Dequantizes rows of packed blocks to float32: (..., rowBytes) -> (..., K). AVX2 where the CPU has
// it (and `vector`), the scalar loop otherwise; on CUDA the bytes go to the CPU and the floats come back.
inline at::Tensor dequantize(const at::Tensor& packed, int64_t type, int64_t K, bool vector = true) {
  checkPacked(packed, type, K);
  const at::Tensor q = packed.device().is_cpu() ? packed.contiguous() : packed.to(at::kCPU).contiguous();
  const int64_t rows = q.numel() / q.size(-1), chunks = K / 32, rowBytes = q.size(-1);
  std::vector<int64_t> shape(q.sizes().begin(), q.sizes().end());
  shape.back() = K;
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
  const uint8_t* src = q.const_data_ptr<uint8_t>();
  float* dst = out.mutable_data_ptr<float>();
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  const bool useAvx2 = vector && avx2;
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++)
      for (int64_t c = 0; c < chunks; c++) {
        if (useAvx2) dequantizeChunkAvx2(static_cast<int>(type), src + r * rowBytes, c, dst + r * K + c * 32);
        else dequantizeChunkScalar(static_cast<int>(type), src + r * rowBytes, c, dst + r * K + c * 32);
      }
  });
  return packed.device().is_cpu() ? out : out.to(packed.device());
}

// The same dequantization written with ATen operators (any device, any float dtype): the reference
// the kernels are tested against, and the path on CUDA.
inline at::Tensor dequantizeAten(const at::Tensor& packed, int64_t type, int64_t K, at::ScalarType dtype = at::kFloat) {
  const Format& f = checkPacked(packed, type, K);
  // K-quants: the scalar loop (tested against gguf-py) is their reference
  if (type == 12 || type == 14) return dequantize(packed, type, K, /*vector=*/false).to(dtype);
  const int64_t rows = packed.numel() / packed.size(-1), blocks = K / f.blockValues;
  const at::Tensor q = packed.reshape({rows, blocks, f.blockBytes});
  auto field = [&](int64_t start, int64_t length) { return q.narrow(-1, start, length).contiguous(); };
  const at::Tensor d = field(0, 2).view(at::kHalf).to(at::kFloat);  // (rows, blocks, 1)
  at::Tensor w;
  if (type == 8) {
    w = field(2, 32).view(at::kChar).to(at::kFloat).mul(d);
  } else {
    const at::Tensor qs = field(type == 3 ? 4 : 2, 16);
    at::Tensor nibbles = at::cat({qs.bitwise_and(15), qs.bitwise_right_shift(4)}, -1).to(at::kFloat);  // (rows, blocks, 32)
    w = type == 3 ? nibbles.mul(d).add(field(2, 2).view(at::kHalf).to(at::kFloat)) : nibbles.sub(8).mul(d);
  }
  std::vector<int64_t> shape(packed.sizes().begin(), packed.sizes().end());
  shape.back() = K;
  return w.reshape(shape).to(dtype);
}

// Quantizes float32 rows (N, K) to Q8_0, Q4_0 or Q4_1 blocks (N, row bytes), as ggml's
// quantize_row_*_ref and gguf-py do, in float32 (the bytes equal gguf-py's: test/quantized.test.ts).
inline at::Tensor quantize(const at::Tensor& weight, int64_t type) {
  if (type != 2 && type != 3 && type != 8) throw std::invalid_argument("quantizing to type " + std::to_string(type) + " is not supported (Q4_0, Q4_1 and Q8_0 are)");
  if (!at::isFloatingType(weight.scalar_type()) || weight.dim() != 2) throw std::invalid_argument("quantize needs a 2-d floating-point weight (out_features, in_features)");
  const int64_t N = weight.size(0), K = weight.size(1);
  const Format& f = *formatOf(type);
  if (K <= 0 || K % 32 != 0) throw std::invalid_argument(std::string(f.name) + ": in_features " + std::to_string(K) + " must be a positive multiple of 32");
  const at::Tensor w = weight.to(at::kCPU).to(at::kFloat).contiguous();
  const int64_t blocks = K / 32;
  at::Tensor out = at::empty({N, blocks * f.blockBytes}, at::TensorOptions().dtype(at::kByte));
  const float* src = w.const_data_ptr<float>();
  uint8_t* dst = out.mutable_data_ptr<uint8_t>();
  auto putHalf = [](uint8_t* p, float v) {
    const uint16_t h = c10::detail::fp16_ieee_from_fp32_value(v);
    std::memcpy(p, &h, 2);
  };
  at::parallel_for(0, N * blocks, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      const float* x = src + i * 32;
      uint8_t* block = dst + i * f.blockBytes;
      if (type == 8) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        putHalf(block, d);
        for (int j = 0; j < 32; j++) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
      } else if (type == 2) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; j++)
          if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
          }
        const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        putHalf(block, d);
        auto q = [&](float v) { return static_cast<uint8_t>(std::min(15, static_cast<int>(std::trunc(v * id + 8.5f)))); };
        for (int j = 0; j < 16; j++) block[2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
      } else {
        float min = x[0], max = x[0];
        for (int j = 1; j < 32; j++) {
          min = std::min(min, x[j]);
          max = std::max(max, x[j]);
        }
        const float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        putHalf(block, d);
        putHalf(block + 2, min);
        auto q = [&](float v) { return static_cast<uint8_t>(std::min(15, static_cast<int>(std::trunc((v - min) * id + 0.5f)))); };
        for (int j = 0; j < 16; j++) block[4 + j] = q(x[j]) | (q(x[j + 16]) << 4);
      }
    }
  });
  return out;
}

inline bool kernelApplies(const at::Tensor& x, const at::Tensor& q, const std::optional<at::Tensor>& b) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (!avx2 || !x.device().is_cpu() || !q.device().is_cpu() || x.scalar_type() != at::kFloat || q.dim() != 2) return false;
  if (b && b->defined() && (!b->device().is_cpu() || b->scalar_type() != at::kFloat)) return false;
  return true;
}

// A packed weight and its format, one of the products of fewRowMulti.
struct Packed {
  at::Tensor rows;  // (N, rowBytes) uint8, contiguous
  int64_t type;
};

// Several few-row products of the same input, side by side: x (M, K) float32 CPU contiguous, weights
// (N_i, rowBytes_i) -> (M, sum N_i), the columns of weight i from sum_{j<i} N_j. The activations are
// quantized once and all the weights' tiles share one pass of the work pool (the projections q, k, v
// of a decode step: a 192-row weight alone is too small to be worth a second thread).
inline at::Tensor fewRowMulti(const at::Tensor& x2, const std::vector<Packed>& weights) {
  const int64_t M = x2.size(0), K = x2.size(1), chunks = K / 32;
  int64_t total = 0, bytes = 0;
  std::vector<int64_t> firstTile{0}, column{0};
  for (const Packed& w : weights) {
    total += w.rows.size(0);
    bytes += w.rows.numel();
    firstTile.push_back(firstTile.back() + (w.rows.size(0) + 3) / 4);
    column.push_back(total);
  }
  at::Tensor out = at::empty({M, total}, x2.options());
  const QuantizedRows xq = quantizeRows(x2.const_data_ptr<float>(), M, K);
  float* yp = out.mutable_data_ptr<float>();
  // chunks of ~16 KiB of packed weight, claimed by whichever thread is running (work_pool.h)
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, weights[0].rows.size(1)));
  // a small product (under ~128 KiB of weight per activation row) runs on the calling thread:
  // waking a helper costs more than it saves there (measured: a 192 x 576 Q4_1 layer took 66 us threaded)
  const int threads = bytes * M < (128 << 10) ? 1 : at::get_num_threads();
  pisces::WorkPool::instance().run(firstTile.back(), chunk, threads, [&](int64_t begin, int64_t end) {
    for (size_t i = 0; i < weights.size(); i++) {
      const int64_t lo = std::max(begin, firstTile[i]), hi = std::min(end, firstTile[i + 1]);
      if (lo >= hi) continue;
      const Packed& w = weights[i];
      tileRangeOf(static_cast<int>(w.type), w.rows.const_data_ptr<uint8_t>(), w.rows.size(1), chunks, xq, M, K, yp + column[i], w.rows.size(0), total,
                  lo - firstTile[i], hi - firstTile[i]);
    }
  });
  return out;
}

// The fused few-row product: x (..., K) float32 CPU, q (N, rowBytes) -> (..., N).
inline at::Tensor fewRow(const at::Tensor& x, const at::Tensor& packed, int64_t type, const std::optional<at::Tensor>& b) {
  const int64_t K = x.size(-1), N = packed.size(0), M = x.numel() / K;
  at::Tensor out = fewRowMulti(x.reshape({M, K}).contiguous(), {Packed{packed.contiguous(), type}});
  if (b && b->defined()) out.add_(*b);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  return out.view(shape);
}

}  // namespace pisces::quant
