// CPU causal depthwise conv1d, forward and backward (math and shapes: Conv1dParams in native/fused_params.h).
// One (batch, channel) row per work item; dweight/dbias are summed per row into a (batch, dim, width + 1)
// buffer and then over batch in order, so the result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "fused_cpu.h"
#include "parallel.h"

namespace mamba {
namespace {

inline float sigmoidf(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// The padded row xp (width-1 + L steps) of (b, d) in float32.
void padded_row(const Conv1dParams& p, int64_t b, int64_t d, std::vector<float>& xp) {
  const int64_t L = p.seqlen, W1 = p.width - 1;
  const int64_t row = b * p.dim + d;
  xp.resize(static_cast<size_t>(L + W1));
  for (int64_t k = 0; k < W1; ++k) xp[k] = p.initial_state ? ld(p.initial_state, row * W1 + k, p.dtype) : 0.0f;
  for (int64_t t = 0; t < L; ++t) xp[W1 + t] = ld(p.x, row * L + t, p.dtype);
}

}  // namespace

void conv1d_fwd_cpu(const Conv1dParams& p) {
  const int64_t L = p.seqlen, W = p.width, W1 = W - 1;
  parallel_for(p.batch * p.dim, 8, [&](int64_t r0, int64_t r1) {
    std::vector<float> xp;
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / p.dim, d = row % p.dim;
      padded_row(p, b, d, xp);
      float w[4];
      for (int64_t k = 0; k < W; ++k) w[k] = ld(p.weight, d * W + k, p.wdtype);
      const float bias = p.bias ? ld(p.bias, d, p.wdtype) : 0.0f;
      for (int64_t t = 0; t < L; ++t) {
        float y = bias;
        for (int64_t k = 0; k < W; ++k) y += w[k] * xp[t + k];
        st(p.out, row * L + t, p.dtype, p.silu ? y * sigmoidf(y) : y);
      }
      if (p.final_state)
        for (int64_t k = 0; k < W1; ++k) st(p.final_state, row * W1 + k, p.dtype, xp[L + k]);
    }
  });
}

void conv1d_bwd_cpu(const Conv1dParams& p) {
  const int64_t L = p.seqlen, W = p.width, W1 = W - 1, D = p.dim;
  std::vector<float> partial(static_cast<size_t>(p.batch * D * (W + 1)), 0.0f);
  parallel_for(p.batch * D, 8, [&](int64_t r0, int64_t r1) {
    std::vector<float> xp, g(static_cast<size_t>(L)), dxp;
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t b = row / D, d = row % D;
      padded_row(p, b, d, xp);
      float w[4];
      for (int64_t k = 0; k < W; ++k) w[k] = ld(p.weight, d * W + k, p.wdtype);
      const float bias = p.bias ? ld(p.bias, d, p.wdtype) : 0.0f;
      float* acc = partial.data() + row * (W + 1);  // dweight[0..W), dbias
      for (int64_t t = 0; t < L; ++t) {
        float gt = ld(p.dout, row * L + t, p.dtype);
        if (p.silu) {
          float y = bias;
          for (int64_t k = 0; k < W; ++k) y += w[k] * xp[t + k];
          const float s = sigmoidf(y);
          gt *= s * (1.0f + y * (1.0f - s));
        }
        g[t] = gt;
        for (int64_t k = 0; k < W; ++k) acc[k] += gt * xp[t + k];
        acc[W] += gt;
      }
      // dxp[j] = sum_k g[j - k] w[k], plus the gradient of the final state on its steps.
      dxp.assign(static_cast<size_t>(L + W1), 0.0f);
      for (int64_t j = 0; j < L + W1; ++j) {
        float s = 0.0f;
        for (int64_t k = 0; k < W; ++k)
          if (j - k >= 0 && j - k < L) s += g[j - k] * w[k];
        if (p.dfinal_state && j >= L) s += ld(p.dfinal_state, row * W1 + (j - L), p.dtype);
        dxp[j] = s;
      }
      for (int64_t t = 0; t < L; ++t) st(p.dx, row * L + t, p.dtype, dxp[W1 + t]);
      if (p.dinitial_state)
        for (int64_t k = 0; k < W1; ++k) st(p.dinitial_state, row * W1 + k, p.dtype, dxp[k]);
    }
  });
  for (int64_t d = 0; d < D; ++d) {
    for (int64_t k = 0; k <= W; ++k) {
      if (k == W && !p.dbias) continue;
      float s = 0.0f;
      for (int64_t b = 0; b < p.batch; ++b) s += partial[(b * D + d) * (W + 1) + k];
      if (k < W) st(p.dweight, d * W + k, p.wdtype, s);
      else st(p.dbias, d, p.wdtype, s);
    }
  }
}

}  // namespace mamba
