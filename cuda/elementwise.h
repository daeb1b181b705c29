// CUDA elementwise and sum launchers (plain C++ declarations; kernels in elementwise.cu), mirroring
// native/cpu/elementwise_cpu.h. All enqueue on the library stream.
#pragma once
#include <cstdint>

#include "../native/dtype.h"
#include "../native/elementwise_ops.h"

namespace mamba {

void unary_cuda(UnaryOp op, const void* x, DType dt, void* out, int64_t n, float alpha, float beta);
void unary_bwd_cuda(UnaryOp op, const void* x, const void* g, DType dt, void* out, int64_t n, float alpha, float beta);
void binary_cuda(BinaryOp op, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi);
void where_cuda(const void* cond, DType cond_dt, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi);
void sum_cuda(const void* x, DType dt, void* out, int64_t outer, int64_t r, int64_t inner);

}  // namespace mamba
