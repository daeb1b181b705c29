// CPU driver of the axis reductions and softmax (see reduce_extra_cpu.h; math in reduce_extra_ops.h).
// A task owns one outer index and a tile of up to 64 inner columns, walks R in chunks of 512 with a
// fresh state per chunk and folds the chunks together (pairwise-like rounding for long rows), then
// writes or maps. Tasks never share an output, so the result does not depend on the thread count.
#include "reduce_extra_cpu.h"

#include <algorithm>

#include "parallel.h"
#include "reduce_extra_ops.h"

namespace mamba {
namespace {

template <class Op>
void run(const Op& op, int64_t outer, int64_t R, int64_t inner) {
  using State = typename Op::State;
  constexpr int64_t kCols = 64, kChunk = 512;
  if (outer * inner == 0) return;
  const int64_t tiles = (inner + kCols - 1) / kCols;
  const int64_t work = std::max<int64_t>(1, R * std::min(inner, kCols));
  parallel_for(outer * tiles, std::max<int64_t>(1, (1 << 16) / work), [&](int64_t b, int64_t e) {
    State total[kCols], part[kCols];
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / tiles, c0 = (t - o * tiles) * kCols, w = std::min(kCols, inner - c0);
      for (int64_t k = 0; k < w; ++k) total[k] = op.init();
      for (int64_t r0 = 0; r0 < R; r0 += kChunk) {
        const int64_t r1 = std::min(R, r0 + kChunk);
        for (int64_t k = 0; k < w; ++k) part[k] = op.init();
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t base = (o * R + r) * inner + c0;
          for (int64_t k = 0; k < w; ++k) part[k] = op.push(part[k], base + k, r);
        }
        for (int64_t k = 0; k < w; ++k) total[k] = op.combine(total[k], part[k]);
      }
      if constexpr (Op::kMap) {
        for (int64_t r = 0; r < R; ++r) {
          const int64_t base = (o * R + r) * inner + c0;
          for (int64_t k = 0; k < w; ++k) op.map(total[k], base + k);
        }
      } else {
        for (int64_t k = 0; k < w; ++k) op.write(total[k], o * inner + c0 + k);
      }
    }
  });
}

}  // namespace

void axis_reduce_cpu(const AxisReduceParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    switch (p.op) {
      case AxisReduceOp::Max:
      case AxisReduceOp::Min:
        run(MaxMinOp<DT>{p.x, p.out, p.index, p.op == AxisReduceOp::Max ? 1.0f : -1.0f}, p.outer, p.R, p.inner);
        break;
      case AxisReduceOp::LogSumExp: run(LogSumExpOp<DT>{p.x, p.out}, p.outer, p.R, p.inner); break;
    }
  });
}

void softmax_cpu(const SoftmaxParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    run(SoftmaxOp<DT>{p.x, p.out, p.log}, p.outer, p.R, p.inner);
  });
}

void softmax_bwd_cpu(const SoftmaxParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    run(SoftmaxBwdOp<DT>{p.x, p.g, p.out, p.log}, p.outer, p.R, p.inner);
  });
}

void arg_scatter_cpu(const ArgScatterParams& p) {
  const int64_t n = p.outer * p.R * p.inner;
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t o = k / (p.R * p.inner), rem = k - o * p.R * p.inner, r = rem / p.inner, i = rem - r * p.inner;
        const int64_t src = o * p.inner + i;
        store_t<DT>(p.out, k, p.index[src] == r ? load_t<DT>(p.g, src) : 0.0f);
      }
    });
  });
}

}  // namespace mamba
