// CPU RMSNorm with optional residual add, forward and backward (math and shapes: RmsNormParams in
// native/fused_params.h). Rows are independent in the forward; the backward's dweight is summed per fixed
// block of kRowBlock rows and the blocks are then added in order, so the result does not depend on threads.
#include <cmath>
#include <vector>

#include "fused_cpu.h"
#include "parallel.h"

namespace mamba {
namespace {
constexpr int64_t kRowBlock = 32;
}

void rmsnorm_fwd_cpu(const RmsNormParams& p) {
  const int64_t C = p.cols;
  parallel_for(p.rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> r(static_cast<size_t>(C));
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t base = i * C;
      float ss = 0.0f;
      for (int64_t j = 0; j < C; ++j) {
        float v = ld(p.x, base + j, p.dtype);
        if (p.residual) v += ld(p.residual, base + j, p.rdtype);
        if (p.residual_out) st(p.residual_out, base + j, p.rdtype, v);
        r[j] = v;
        ss += v * v;
      }
      const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(C) + p.eps);
      p.rstd[i] = rstd;
      for (int64_t j = 0; j < C; ++j) st(p.out, base + j, p.dtype, r[j] * rstd * ld(p.weight, j, p.wdtype));
    }
  });
}

void rmsnorm_bwd_cpu(const RmsNormParams& p) {
  const int64_t C = p.cols;
  const int64_t nblocks = (p.rows + kRowBlock - 1) / kRowBlock;
  std::vector<float> partial(static_cast<size_t>(nblocks * C), 0.0f);
  std::vector<float> w(static_cast<size_t>(C));
  for (int64_t j = 0; j < C; ++j) w[j] = ld(p.weight, j, p.wdtype);
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> rhat(static_cast<size_t>(C)), wdy(static_cast<size_t>(C));
    for (int64_t b = b0; b < b1; ++b) {
      float* dw = partial.data() + b * C;
      for (int64_t i = b * kRowBlock; i < std::min(p.rows, (b + 1) * kRowBlock); ++i) {
        const int64_t base = i * C;
        const float rstd = p.rstd[i];
        float c = 0.0f;
        for (int64_t j = 0; j < C; ++j) {
          const float dy = ld(p.dout, base + j, p.dtype);
          rhat[j] = ld(p.r, base + j, p.rdtype) * rstd;
          wdy[j] = w[j] * dy;
          c += wdy[j] * rhat[j];
          dw[j] += dy * rhat[j];
        }
        c /= static_cast<float>(C);
        for (int64_t j = 0; j < C; ++j) {
          float dr = rstd * (wdy[j] - rhat[j] * c);
          if (p.dresidual_out) dr += ld(p.dresidual_out, base + j, p.rdtype);
          st(p.dx, base + j, p.dtype, dr);
          if (p.dresidual) st(p.dresidual, base + j, p.rdtype, dr);
        }
      }
    }
  });
  for (int64_t j = 0; j < C; ++j) {
    float s = 0.0f;
    for (int64_t b = 0; b < nblocks; ++b) s += partial[b * C + j];
    st(p.dweight, j, p.wdtype, s);
  }
}

}  // namespace mamba
