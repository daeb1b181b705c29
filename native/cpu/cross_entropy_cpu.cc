// CPU cross-entropy from logits: fused log-softmax + NLL (+ label smoothing), forward and backward
// (CrossEntropyParams in native/fused_params.h: torch.nn.functional.cross_entropy semantics). Row sums are
// float32; the sum over rows is float64 in row order, so the result does not depend on the thread count.
#include <cmath>
#include <limits>
#include <vector>

#include "fused_cpu.h"
#include "parallel.h"

namespace mamba {

int64_t cross_entropy_fwd_cpu(const CrossEntropyParams& p) {
  const int64_t V = p.vocab;
  for (int64_t i = 0; i < p.n; ++i) {
    const int32_t t = p.targets[i];
    if (t != p.ignore_index && (t < 0 || t >= V)) return i;
  }
  const float s = p.label_smoothing;
  std::vector<float> loss(static_cast<size_t>(p.n));
  parallel_for(p.n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t base = i * V;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < V; ++c) m = std::fmax(m, ld(p.logits, base + c, p.dtype));
      float se = 0.0f, sx = 0.0f;
      for (int64_t c = 0; c < V; ++c) {
        const float v = ld(p.logits, base + c, p.dtype);
        se += std::exp(v - m);
        sx += v;
      }
      const float lse = m + std::log(se);
      p.lse[i] = lse;
      const int32_t t = p.targets[i];
      if (t == p.ignore_index) {
        loss[i] = 0.0f;
        continue;
      }
      const float nll = lse - ld(p.logits, base + t, p.dtype);
      loss[i] = s == 0.0f ? nll : (1.0f - s) * nll + s * (lse - sx / static_cast<float>(V));
    }
  });
  double total = 0.0, count = 0.0;
  for (int64_t i = 0; i < p.n; ++i) {
    total += loss[i];
    if (p.targets[i] != p.ignore_index) count += 1.0;
  }
  *p.count = static_cast<float>(count);
  if (p.reduction == Reduction::None) {
    for (int64_t i = 0; i < p.n; ++i) st(p.loss, i, p.dtype, loss[i]);
  } else {
    st(p.loss, 0, p.dtype, static_cast<float>(p.reduction == Reduction::Mean ? total / count : total));
  }
  return -1;
}

void cross_entropy_bwd_cpu(const CrossEntropyParams& p) {
  const int64_t V = p.vocab;
  const float s = p.label_smoothing;
  const float scale = p.reduction == Reduction::None ? 1.0f
                      : p.reduction == Reduction::Sum ? ld(p.dloss, 0, p.dtype)
                                                      : ld(p.dloss, 0, p.dtype) / *p.count;
  parallel_for(p.n, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t base = i * V;
      const int32_t t = p.targets[i];
      if (t == p.ignore_index) {
        for (int64_t c = 0; c < V; ++c) st(p.dlogits, base + c, p.dtype, 0.0f);
        continue;
      }
      const float g = p.reduction == Reduction::None ? ld(p.dloss, i, p.dtype) : scale;
      const float lse = p.lse[i];
      const float off = s / static_cast<float>(V);
      for (int64_t c = 0; c < V; ++c) {
        float d = std::exp(ld(p.logits, base + c, p.dtype) - lse) - off;
        if (c == t) d -= 1.0f - s;
        st(p.dlogits, base + c, p.dtype, g * d);
      }
    }
  });
}

}  // namespace mamba
