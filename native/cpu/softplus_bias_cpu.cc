// CPU softplus(delta + bias[d]) and its backward (SoftplusBiasParams in native/fused_params.h). dbias is
// summed per (batch, channel) row and then over batch in order, so it does not depend on the thread count.
#include <cmath>
#include <vector>

#include "fused_cpu.h"
#include "parallel.h"

namespace mamba {

void softplus_bias_fwd_cpu(const SoftplusBiasParams& p) {
  const int64_t L = p.seqlen;
  parallel_for(p.batch * p.dim, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float b = ld(p.bias, row % p.dim, p.bdtype);
      for (int64_t t = 0; t < L; ++t) {
        const float v = ld(p.delta, row * L + t, p.dtype) + b;
        st(p.out, row * L + t, p.dtype, v > 20.0f ? v : std::log1p(std::exp(v)));
      }
    }
  });
}

void softplus_bias_bwd_cpu(const SoftplusBiasParams& p) {
  const int64_t L = p.seqlen, D = p.dim;
  std::vector<float> rows(static_cast<size_t>(p.batch * D));
  parallel_for(p.batch * D, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float b = ld(p.bias, row % D, p.bdtype);
      float acc = 0.0f;
      for (int64_t t = 0; t < L; ++t) {
        const float v = ld(p.delta, row * L + t, p.dtype) + b;
        const float g = ld(p.dout, row * L + t, p.dtype) / (1.0f + std::exp(-v));
        st(p.ddelta, row * L + t, p.dtype, g);
        acc += g;
      }
      rows[row] = acc;
    }
  });
  for (int64_t d = 0; d < D; ++d) {
    float s = 0.0f;
    for (int64_t b = 0; b < p.batch; ++b) s += rows[b * D + d];
    st(p.dbias, d, p.bdtype, s);
  }
}

}  // namespace mamba
