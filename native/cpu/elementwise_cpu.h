// CPU elementwise and sum kernels over contiguous float tensors (float32 math, any float dtype).
// Per-element formulas: native/elementwise_ops.h (shared with cuda/elementwise.cu).
#pragma once
#include <cstdint>

#include "../dtype.h"
#include "../elementwise_ops.h"

namespace mamba {

// out[i] = f(x[i]); n elements
void unary_cpu(UnaryOp op, const void* x, DType dt, void* out, int64_t n, float alpha, float beta);
// out[i] = g[i] * f'(x[i])
void unary_bwd_cpu(UnaryOp op, const void* x, const void* g, DType dt, void* out, int64_t n, float alpha, float beta);
// out[i] = a[off_a(i)] op b[off_b(i)] over the broadcast shape (bi.ndim == 0: same shapes, contiguous)
void binary_cpu(BinaryOp op, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi);
// out[i] = cond[off_c(i)] != 0 ? a[off_a(i)] : b[off_b(i)]; cond of any dtype
void where_cpu(const void* cond, DType cond_dt, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi);
// x viewed as (outer, r, inner) -> out (outer, inner): sum over r in float32, fixed order (deterministic)
void sum_cpu(const void* x, DType dt, void* out, int64_t outer, int64_t r, int64_t inner);

}  // namespace mamba
