// CPU reductions along one block of axes and softmax, with the plain params structs they share with
// the CUDA launchers (cuda/reduce_extra.h). Every kernel sees its input as (outer, R, inner): R is the
// product of the reduced (contiguous) axes; the TypeScript layer permutes first when the axes are not
// adjacent. Float dtypes in, float32 state inside (native/cpu/reduce_extra_ops.h holds the per-element
// math, shared by both devices). Deterministic: every output's order of accumulation depends only on
// the shape. JS side: lib/ops/reduce_extra.ts; tests: test/ops/reduce_extra.test.ts.
#pragma once
#include <cstdint>

#include "../dtype.h"

namespace mamba {

// The op codes cross the N-API boundary as these values.
enum class AxisReduceOp : int32_t { Max = 0, Min, LogSumExp };

// x (outer, R, inner) -> out (outer, inner) in x's dtype. Max/Min may also write index (outer, inner),
// the first position along R of the result (NaN counts as the largest and the smallest value, as in
// PyTorch); LogSumExp of R = 0 is -inf; Max/Min need R >= 1. (mean is sum / n: lib/ops/reduce.ts.)
struct AxisReduceParams {
  int64_t outer = 0, R = 0, inner = 0;
  DType dtype = DType::Float32;
  AxisReduceOp op = AxisReduceOp::Max;
  const void* x = nullptr;
  void* out = nullptr;
  int32_t* index = nullptr;
};

// Along R of (outer, R, inner):
//   forward:  out = softmax(x) = exp(x - max) / sum exp(x - max), or log_softmax(x) when log
//   backward: x = the forward's output y, g = its gradient; out = y * (g - sum(g * y)), or for log:
//             g - exp(y) * sum(g)
struct SoftmaxParams {
  int64_t outer = 0, R = 0, inner = 0;
  DType dtype = DType::Float32;
  bool log = false;
  const void* x = nullptr;
  const void* g = nullptr;
  void* out = nullptr;
};

// The gradient of Max/Min: g, index (outer, inner) -> out (outer, R, inner), zero except
// out[o, index[o, i], i] = g[o, i].
struct ArgScatterParams {
  int64_t outer = 0, R = 0, inner = 0;
  DType dtype = DType::Float32;
  const void* g = nullptr;
  const int32_t* index = nullptr;
  void* out = nullptr;
};

void axis_reduce_cpu(const AxisReduceParams& p);
void softmax_cpu(const SoftmaxParams& p);
void softmax_bwd_cpu(const SoftmaxParams& p);
void arg_scatter_cpu(const ArgScatterParams& p);

}  // namespace mamba
