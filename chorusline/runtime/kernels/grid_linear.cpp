// Weight-only quantised linear layers with fp32 activations, for CPU decode steps.
//
// Why: a decode step of a small model reads every weight once, so on a CPU its speed is
// the speed at which weights stream from memory. The bundled GGUFs store their weights on
// 4-bit and 8-bit group grids; dequantised to fp32 they cost 4-8x the bytes they need.
// These kernels read the grid (4 or 8 bits per weight plus one scale per group of 32),
// rebuild each weight in fp32 in registers and multiply it with fp32 activations, so the
// result is the fp32 reference's up to summation order: no activation is rounded, unlike
// llama.cpp's 8-bit activations or torch's bf16-only int4 kernel.
//
//   grid4: w = scale * q + zero, q in 0..15. Groups go in pairs (an odd count is padded
//          with a zero group): 32 bytes as 8 uint32 lanes, lane L holding in nibble
//          4 * h + i the weight 8 * i + L of the pair's group h.
//   grid8: w = scale * q, q in -127..127. A group's 32 bytes as 8 uint32 lanes, lane L
//          holding in byte i the weight 8 * i + L.
//
// Both layouts put 8 consecutive weights in the 8 lanes of one AVX2 register after a
// shift and a mask, so rebuilding weights takes no shuffles (the widening byte shuffles
// of a plain layout were the kernels' bottleneck).
//
// x [M, K] fp32, contiguous; out [M, N]. Rows of x are taken in tiles of up to 8, so a
// tile's weights are rebuilt once and used for every row of it. Output rows are split
// across torch's intra-op threads. An AVX2+FMA path is chosen at run time; elsewhere a
// portable loop computes the same products (in another summation order).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

constexpr int64_t kGroup = 32;
constexpr int64_t kTile = 8;

// ---- portable path --------------------------------------------------------------------

// One group's rebuilt weights times the same 32 columns of each of the m rows of x.
void accumulate_group(const float (&w)[kGroup], const float* x, int64_t m, int64_t k,
                      float* acc) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    float dot = 0;
    for (int j = 0; j < kGroup; ++j) dot += w[j] * xr[j];
    acc[r] += dot;
  }
}

void grid4_rows_portable(const float* x, int64_t m, int64_t k, const uint32_t* q,
                         const float* sz, float* out, int64_t n_out, int64_t n0,
                         int64_t n1) {
  const int64_t groups = k / kGroup, pairs = (groups + 1) / 2;
  float w[kGroup];
  for (int64_t n = n0; n < n1; ++n) {
    float acc[kTile] = {0};
    for (int64_t g = 0; g < groups; ++g) {
      const uint32_t* lanes = q + (n * pairs + g / 2) * 8;
      const int shift = 16 * int(g % 2);
      const float s = sz[(n * 2 * pairs + g) * 2], z = sz[(n * 2 * pairs + g) * 2 + 1];
      for (int i = 0; i < 4; ++i)
        for (int l = 0; l < 8; ++l)
          w[8 * i + l] = s * float((lanes[l] >> (shift + 4 * i)) & 0xF) + z;
      accumulate_group(w, x + g * kGroup, m, k, acc);
    }
    for (int64_t r = 0; r < m; ++r) out[r * n_out + n] = acc[r];
  }
}

void grid8_rows_portable(const float* x, int64_t m, int64_t k, const int8_t* q,
                         const float* s, float* out, int64_t n_out, int64_t n0,
                         int64_t n1) {
  const int64_t groups = k / kGroup;
  float w[kGroup];
  for (int64_t n = n0; n < n1; ++n) {
    float acc[kTile] = {0};
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* b = q + n * k + g * kGroup;
      const float d = s[n * groups + g];
      for (int i = 0; i < 4; ++i)
        for (int l = 0; l < 8; ++l) w[8 * i + l] = d * float(b[4 * l + i]);
      accumulate_group(w, x + g * kGroup, m, k, acc);
    }
    for (int64_t r = 0; r < m; ++r) out[r * n_out + n] = acc[r];
  }
}

// ---- AVX2 + FMA path ------------------------------------------------------------------

#define CL_AVX2 __attribute__((target("avx2,fma")))

CL_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// Multiplies one group's rebuilt weights w[4] into M rows' accumulators. With few rows
// a single accumulator per row would wait on FMA latency, so C chains per row are kept.
template <int M, int C>
CL_AVX2 inline void fma_rows(const __m256 (&w)[4], const float* x, int64_t k,
                             __m256 (&acc)[M][C]) {
  for (int r = 0; r < M; ++r) {
    const float* xr = x + r * k;
    for (int i = 0; i < 4; ++i)
      acc[r][i % C] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xr + 8 * i), acc[r][i % C]);
  }
}

template <int M, int C>
CL_AVX2 inline void store_rows(__m256 (&acc)[M][C], float* out, int64_t n_out, int64_t n) {
  for (int r = 0; r < M; ++r) {
    __m256 t = acc[r][0];
    for (int c = 1; c < C; ++c) t = _mm256_add_ps(t, acc[r][c]);
    out[r * n_out + n] = hsum(t);
  }
}

template <int M, int C>
CL_AVX2 void grid4_rows_avx2(const float* x, int64_t k, const uint32_t* q, const float* sz,
                             float* out, int64_t n_out, int64_t n0, int64_t n1) {
  const int64_t groups = k / kGroup, pairs = (groups + 1) / 2;
  const __m256i nibble = _mm256_set1_epi32(0x0F);
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[M][C];
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    const uint32_t* qn = q + n * pairs * 8;
    const float* szn = sz + n * pairs * 4;
    for (int64_t g = 0; g < groups; ++g) {
      __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qn + (g / 2) * 8));
      if (g % 2) v = _mm256_srli_epi32(v, 16);
      const __m256 s = _mm256_broadcast_ss(szn + 2 * g);
      const __m256 z = _mm256_broadcast_ss(szn + 2 * g + 1);
      __m256 w[4];
      w[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, nibble)), s, z);
      w[1] = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 4), nibble)), s, z);
      w[2] = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8), nibble)), s, z);
      w[3] = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 12), nibble)), s, z);
      fma_rows<M, C>(w, x + g * kGroup, k, acc);
    }
    store_rows<M, C>(acc, out, n_out, n);
  }
}

template <int M, int C>
CL_AVX2 void grid8_rows_avx2(const float* x, int64_t k, const int8_t* q, const float* s,
                             float* out, int64_t n_out, int64_t n0, int64_t n1) {
  const int64_t groups = k / kGroup;
  for (int64_t n = n0; n < n1; ++n) {
    __m256 acc[M][C];
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    const int8_t* qn = q + n * k;
    const float* sn = s + n * groups;
    for (int64_t g = 0; g < groups; ++g) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qn + g * 32));
      const __m256 d = _mm256_broadcast_ss(sn + g);
      __m256 w[4];
      w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24)), d);
      w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 16), 24)), d);
      w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 8), 24)), d);
      w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(v, 24)), d);
      fma_rows<M, C>(w, x + g * kGroup, k, acc);
    }
    store_rows<M, C>(acc, out, n_out, n);
  }
}

// One tile of up to kTile rows of x: picks the instantiation for its row count.
template <typename Fn>
void dispatch_tile(int64_t m, Fn&& f) {
  switch (m) {
    case 1: f.template operator()<1, 4>(); break;
    case 2: f.template operator()<2, 4>(); break;
    case 3: f.template operator()<3, 2>(); break;
    case 4: f.template operator()<4, 2>(); break;
    case 5: f.template operator()<5, 1>(); break;
    case 6: f.template operator()<6, 1>(); break;
    case 7: f.template operator()<7, 1>(); break;
    default: f.template operator()<8, 1>(); break;
  }
}

// CHORUSLINE_KERNELS_PORTABLE=1 takes the portable path even where AVX2 exists, so the
// tests can hold the two paths to the same values.
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          std::getenv("CHORUSLINE_KERNELS_PORTABLE") == nullptr;
  return yes;
}

void check_x(const at::Tensor& x, int64_t k) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "grid linear: x must be a contiguous [M, K] float32 tensor");
  TORCH_CHECK(x.size(1) == k, "grid linear: x has ", x.size(1), " columns, weights ", k);
  TORCH_CHECK(k % kGroup == 0, "grid linear: K must be a multiple of 32");
}

// Grain: rows of output per task; small enough that two threads share a 576-row layer.
constexpr int64_t kGrain = 32;

// Splits the output rows over torch's threads and the rows of x into tiles, and computes
// each (tile, row range) with ``portable(xt, rows, ot, n0, n1)`` or, on AVX2, with
// ``avx2.template operator()<M, C>(xt, ot, n0, n1)``.
template <typename Portable, typename Avx2>
at::Tensor run_tiles(const at::Tensor& x, int64_t n_out, int64_t k, Portable&& portable,
                     Avx2&& avx2) {
  const int64_t m = x.size(0);
  at::Tensor out = at::empty({m, n_out}, x.options());
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool fast = has_avx2();
  at::parallel_for(0, n_out, kGrain, [&](int64_t n0, int64_t n1) {
    for (int64_t r0 = 0; r0 < m; r0 += kTile) {
      const int64_t rows = std::min(kTile, m - r0);
      const float* xt = xp + r0 * k;
      float* ot = op + r0 * n_out;
      if (!fast) {
        portable(xt, rows, ot, n0, n1);
        continue;
      }
      dispatch_tile(rows, [&]<int M, int C>() { avx2.template operator()<M, C>(xt, ot, n0, n1); });
    }
  });
  return out;
}

at::Tensor grid4_linear(const at::Tensor& x, const at::Tensor& q, const at::Tensor& sz,
                        int64_t k) {
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kInt && q.is_contiguous(),
              "grid4: q must be a contiguous [N, pairs * 8] int32 tensor");
  const int64_t n_out = q.size(0), pairs = (k / kGroup + 1) / 2;
  check_x(x, k);
  TORCH_CHECK(q.size(1) == pairs * 8, "grid4: q has ", q.size(1), " lanes a row, K needs ",
              pairs * 8);
  TORCH_CHECK(sz.scalar_type() == at::kFloat && sz.is_contiguous() &&
                  sz.numel() == n_out * pairs * 4,
              "grid4: sz must be a contiguous [N, 2 * pairs, 2] float32 tensor");
  const uint32_t* qp = reinterpret_cast<const uint32_t*>(q.data_ptr<int32_t>());
  const float* szp = sz.data_ptr<float>();
  return run_tiles(
      x, n_out, k,
      [&](const float* xt, int64_t rows, float* ot, int64_t n0, int64_t n1) {
        grid4_rows_portable(xt, rows, k, qp, szp, ot, n_out, n0, n1);
      },
      [&]<int M, int C>(const float* xt, float* ot, int64_t n0, int64_t n1) {
        grid4_rows_avx2<M, C>(xt, k, qp, szp, ot, n_out, n0, n1);
      });
}

at::Tensor grid8_linear(const at::Tensor& x, const at::Tensor& q, const at::Tensor& s) {
  TORCH_CHECK(q.dim() == 2 && q.scalar_type() == at::kChar && q.is_contiguous(),
              "grid8: q must be a contiguous [N, K] int8 tensor");
  const int64_t n_out = q.size(0), k = q.size(1);
  check_x(x, k);
  TORCH_CHECK(s.scalar_type() == at::kFloat && s.is_contiguous() &&
                  s.numel() == n_out * (k / kGroup),
              "grid8: s must be a contiguous [N, K/32] float32 tensor");
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  return run_tiles(
      x, n_out, k,
      [&](const float* xt, int64_t rows, float* ot, int64_t n0, int64_t n1) {
        grid8_rows_portable(xt, rows, k, qp, sp, ot, n_out, n0, n1);
      },
      [&]<int M, int C>(const float* xt, float* ot, int64_t n0, int64_t n1) {
        grid8_rows_avx2<M, C>(xt, k, qp, sp, ot, n_out, n0, n1);
      });
}

std::string grid_isa() { return has_avx2() ? "avx2" : "portable"; }

}  // namespace

TORCH_LIBRARY(chorusline, m) {
  // Which path the grid kernels take on this CPU (for tests and the benchmark's report).
  m.def("grid_isa() -> str", grid_isa);
  m.def("grid4_linear(Tensor x, Tensor q, Tensor sz, int k) -> Tensor");
  m.def("grid8_linear(Tensor x, Tensor q, Tensor s) -> Tensor");
}

TORCH_LIBRARY_IMPL(chorusline, CPU, m) {
  m.impl("grid4_linear", grid4_linear);
  m.impl("grid8_linear", grid8_linear);
}
