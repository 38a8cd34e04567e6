// Fused fp32 CPU operations of a decoder layer, for steps of a few tokens.
//
// Why: once the weights stream as 4-bit grids (grid_linear.cpp), a one-token decode step
// of a 30-layer model is no longer bound by its matmuls but by the ~50 small torch
// operations per layer around them (norms, RoPE, the KV write, the gather, two batched
// matmuls and a softmax for attention), each costing a dispatch and a pass over memory.
// These kernels do each group of them in one call, in fp32, in the order of operations
// of the torch code they replace, so they agree with it to rounding.
//
//   add_rms_norm_   x += delta (optional); returns rms_norm(x) * w.
//   rope_store_     rotate-half RoPE on q and k inside qkv, in place, and k, v into the
//                   paged cache at their slots.
//   decode_attention  one query per sequence against its paged keys, under the step's
//                   mask (the same boolean mask the torch path uses: causal, window).
//   silu_mul        silu(gate) * up over gate_up's two halves.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

// Hot loops are compiled twice, for AVX2+FMA and for the baseline, and the loader picks
// one for the CPU it runs on (GCC's function multiversioning).
#define CL_CLONES __attribute__((target_clones("avx2,fma", "default")))

// A dot product in eight lanes, which the compiler turns into one vector accumulator; a
// plain running sum is a serial chain that it may not reorder.
CL_CLONES float dot(const float* a, const float* b, int64_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += a[i + l] * b[i + l];
  float sum = 0;
  for (int l = 0; l < 8; ++l) sum += lanes[l];
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

CL_CLONES void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void check_f32(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous(), what,
              " must be a contiguous float32 tensor");
}

at::Tensor add_rms_norm_(at::Tensor& x, const c10::optional<at::Tensor>& delta,
                         const at::Tensor& w, double eps) {
  check_f32(x, "x");
  check_f32(w, "w");
  TORCH_CHECK(x.dim() == 2 && w.numel() == x.size(1), "add_rms_norm_: x [T, H], w [H]");
  const int64_t rows = x.size(0), width = x.size(1);
  const float* dp = nullptr;
  if (delta.has_value()) {
    check_f32(*delta, "delta");
    TORCH_CHECK(delta->sizes() == x.sizes(), "add_rms_norm_: delta must match x");
    dp = delta->data_ptr<float>();
  }
  at::Tensor out = at::empty_like(x);
  float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* xr = xp + r * width;
      if (dp != nullptr) {
        const float* d = dp + r * width;
        for (int64_t i = 0; i < width; ++i) xr[i] += d[i];
      }
      const float sum = dot(xr, xr, width);
      const float inv = 1.0f / std::sqrt(sum / float(width) + float(eps));
      float* o = op + r * width;
      for (int64_t i = 0; i < width; ++i) o[i] = wp[i] * (xr[i] * inv);
    }
  });
  return out;
}

void rope_store_(at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& cos,
                 const at::Tensor& sin, int64_t heads, int64_t kv_heads, at::Tensor& k_cache,
                 at::Tensor& v_cache, const at::Tensor& slots) {
  check_f32(qkv, "qkv");
  check_f32(cos, "cos");
  check_f32(sin, "sin");
  check_f32(k_cache, "k_cache");
  check_f32(v_cache, "v_cache");
  TORCH_CHECK(positions.scalar_type() == at::kLong && slots.scalar_type() == at::kLong,
              "rope_store_: positions and slots must be int64");
  const int64_t tokens = qkv.size(0), dim = cos.size(1), half = dim / 2;
  TORCH_CHECK(qkv.size(1) == (heads + 2 * kv_heads) * dim, "rope_store_: qkv width");
  TORCH_CHECK(k_cache.size(0) == kv_heads && k_cache.size(-1) == dim,
              "rope_store_: cache must be [KVH, blocks, block_size, D]");
  const int64_t cache_slots = k_cache.numel() / (kv_heads * dim);
  float* qp = qkv.data_ptr<float>();
  const int64_t* pos = positions.data_ptr<int64_t>();
  const int64_t* slot = slots.data_ptr<int64_t>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* kc = k_cache.data_ptr<float>();
  float* vc = v_cache.data_ptr<float>();
  const int64_t width = qkv.size(1);
  for (int64_t t = 0; t < tokens; ++t) {
    TORCH_CHECK(slot[t] >= 0 && slot[t] < cache_slots, "rope_store_: slot out of range");
    TORCH_CHECK(pos[t] >= 0 && pos[t] < cos.size(0), "rope_store_: position out of range");
  }
  at::parallel_for(0, tokens, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* row = qp + t * width;
      const float* c = cp + pos[t] * dim;
      const float* s = sp + pos[t] * dim;
      for (int64_t h = 0; h < heads + kv_heads; ++h) {
        float* x = row + h * dim;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];
          x[i] = x1 * c[i] + (-x2) * s[i];
          x[i + half] = x2 * c[i + half] + x1 * s[i + half];
        }
      }
      for (int64_t h = 0; h < kv_heads; ++h) {
        const float* k = row + (heads + h) * dim;
        const float* v = row + (heads + kv_heads + h) * dim;
        std::copy(k, k + dim, kc + (h * cache_slots + slot[t]) * dim);
        std::copy(v, v + dim, vc + (h * cache_slots + slot[t]) * dim);
      }
    }
  });
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache,
                            const at::Tensor& v_cache, const at::Tensor& block_index,
                            const at::Tensor& mask, double scale) {
  check_f32(q, "q");
  check_f32(k_cache, "k_cache");
  check_f32(v_cache, "v_cache");
  TORCH_CHECK(block_index.scalar_type() == at::kLong && block_index.is_contiguous(),
              "decode_attention: block_index must be contiguous int64");
  TORCH_CHECK(mask.scalar_type() == at::kBool && mask.is_contiguous(),
              "decode_attention: mask must be contiguous bool");
  const int64_t seqs = q.size(0), heads = q.size(1), dim = q.size(2);
  const int64_t kv_heads = k_cache.size(0), block_size = k_cache.size(2);
  const int64_t blocks = k_cache.size(1), width = block_index.size(1);
  const int64_t span = width * block_size, group = heads / kv_heads;
  TORCH_CHECK(block_index.size(0) == seqs && mask.numel() == seqs * span,
              "decode_attention: block_index [B, W] and mask [B, W * block_size]");
  const float* qp = q.data_ptr<float>();
  const float* kp = k_cache.data_ptr<float>();
  const float* vp = v_cache.data_ptr<float>();
  const int64_t* bi = block_index.data_ptr<int64_t>();
  const bool* mp = mask.data_ptr<bool>();
  for (int64_t i = 0; i < block_index.numel(); ++i)
    TORCH_CHECK(bi[i] >= 0 && bi[i] < blocks, "decode_attention: block id out of range");
  at::Tensor out = at::zeros({seqs, heads * dim}, q.options());
  float* op = out.data_ptr<float>();
  const float fscale = float(scale);
  at::parallel_for(0, seqs * kv_heads, 1, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores(static_cast<size_t>(span * group));
    std::vector<int64_t> live(static_cast<size_t>(span));
    for (int64_t work = w0; work < w1; ++work) {
      const int64_t b = work / kv_heads, h = work % kv_heads;
      int64_t n = 0;
      for (int64_t p = 0; p < span; ++p)
        if (mp[b * span + p]) live[size_t(n++)] = p;
      if (n == 0) continue;
      const float* qh = qp + (b * heads + h * group) * dim;
      auto row = [&](const float* cache, int64_t p) {
        const int64_t block = bi[b * width + p / block_size];
        return cache + ((h * blocks + block) * block_size + p % block_size) * dim;
      };
      for (int64_t j = 0; j < n; ++j) {
        const float* k = row(kp, live[size_t(j)]);
        for (int64_t g = 0; g < group; ++g)
          scores[size_t(g * n + j)] = dot(qh + g * dim, k, dim) * fscale;
      }
      for (int64_t g = 0; g < group; ++g) {
        float* sg = scores.data() + g * n;
        const float top = *std::max_element(sg, sg + n);
        float total = 0;
        for (int64_t j = 0; j < n; ++j) total += (sg[j] = std::exp(sg[j] - top));
        const float inv = 1.0f / total;
        for (int64_t j = 0; j < n; ++j) sg[j] *= inv;
      }
      float* oh = op + (b * heads + h * group) * dim;
      for (int64_t j = 0; j < n; ++j) {
        const float* v = row(vp, live[size_t(j)]);
        for (int64_t g = 0; g < group; ++g)
          axpy(scores[size_t(g * n + j)], v, oh + g * dim, dim);
      }
    }
  });
  return out;
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  check_f32(gate_up, "gate_up");
  const int64_t rows = gate_up.size(0), inner = gate_up.size(1) / 2;
  at::Tensor out = at::empty({rows, inner}, gate_up.options());
  const float* gp = gate_up.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, rows * inner, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r = i / inner, c = i % inner;
      const float g = gp[r * 2 * inner + c], u = gp[r * 2 * inner + inner + c];
      op[i] = g / (1.0f + std::exp(-g)) * u;
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(chorusline, m) {
  m.def("add_rms_norm_(Tensor(a!) x, Tensor? delta, Tensor w, float eps) -> Tensor");
  m.def("rope_store_(Tensor(a!) qkv, Tensor positions, Tensor cos, Tensor sin, int heads, "
        "int kv_heads, Tensor(b!) k_cache, Tensor(c!) v_cache, Tensor slots) -> ()");
  m.def("decode_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_index, "
        "Tensor mask, float scale) -> Tensor");
  m.def("silu_mul(Tensor gate_up) -> Tensor");
}

TORCH_LIBRARY_IMPL(chorusline, CPU, m) {
  m.impl("add_rms_norm_", add_rms_norm_);
  m.impl("rope_store_", rope_store_);
  m.impl("decode_attention", decode_attention);
  m.impl("silu_mul", silu_mul);
}
