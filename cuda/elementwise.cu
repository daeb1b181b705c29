// CUDA elementwise and sum kernels (declarations in elementwise.h). Formulas come from
// native/elementwise_ops.h, shared with the CPU kernels. Elementwise kernels are grid-stride loops
// templated on dtype and op; sum uses one block per row when the reduced axis is innermost and one
// thread per output column otherwise (coalesced across the inner axis). No atomics: deterministic.
#include <utility>

#include "../native/elem.h"
#include "common.cuh"
#include "elementwise.h"
#include "launch.h"

namespace mamba {
namespace {

cudaStream_t S() { return static_cast<cudaStream_t>(cuda::stream()); }

template <DType DT, UnaryOp OP>
__global__ void unary_kernel(const void* x, void* out, int64_t n, float alpha, float beta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_t<DT>(out, i, unary_fwd(OP, load_t<DT>(x, i), alpha, beta));
}

template <DType DT, UnaryOp OP>
__global__ void unary_bwd_kernel(const void* x, const void* g, void* out, int64_t n, float alpha, float beta) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_t<DT>(out, i, unary_bwd(OP, load_t<DT>(x, i), load_t<DT>(g, i), alpha, beta));
}

template <DType DT, BinaryOp OP, bool BROADCAST>
__global__ void binary_kernel(const void* a, const void* b, void* out, int64_t n, BroadcastIndex bi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (BROADCAST) {
      int64_t off[3];
      broadcast_offsets(bi, i, 2, off);
      store_t<DT>(out, i, binary_fwd(OP, load_t<DT>(a, off[0]), load_t<DT>(b, off[1])));
    } else {
      store_t<DT>(out, i, binary_fwd(OP, load_t<DT>(a, i), load_t<DT>(b, i)));
    }
  }
}

template <DType DT>
__global__ void where_kernel(const void* cond, DType cond_dt, const void* a, const void* b, void* out, int64_t n, BroadcastIndex bi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3] = {i, i, i};
    if (bi.ndim > 0) broadcast_offsets(bi, i, 3, off);
    bool c = load_float(cond, off[0], cond_dt) != 0.0f;
    store_t<DT>(out, i, c ? load_t<DT>(a, off[1]) : load_t<DT>(b, off[2]));
  }
}

// (outer, r) -> (outer): one block per row, fixed-order tree reduction.
template <DType DT>
__global__ void sum_rows_kernel(const void* x, void* out, int64_t r) {
  __shared__ float warp_sums[32];
  const int64_t row = blockIdx.x;
  float acc = 0.0f;
  for (int64_t k = threadIdx.x; k < r; k += blockDim.x) acc += load_t<DT>(x, row * r + k);
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.0f;
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
    if (threadIdx.x == 0) store_t<DT>(out, row, acc);
  }
}

// (outer, r, inner) -> (outer, inner): one thread per output, walking r.
template <DType DT>
__global__ void sum_cols_kernel(const void* x, void* out, int64_t outer, int64_t r, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = idx / inner, i = idx - o * inner;
    float acc = 0.0f;
    for (int64_t k = 0; k < r; ++k) acc += load_t<DT>(x, (o * r + k) * inner + i);
    store_t<DT>(out, idx, acc);
  }
}

// Calls f(std::integral_constant<E, op>{}): the step from a run-time op code to a template argument.
template <typename E, typename F, int... I>
void dispatch_op_impl(E op, F&& f, std::integer_sequence<int, I...>) {
  ((static_cast<int>(op) == I ? (f(std::integral_constant<E, static_cast<E>(I)>{}), 0) : 0), ...);
}

template <typename E, int N, typename F>
void dispatch_op(E op, F&& f) {
  dispatch_op_impl(op, f, std::make_integer_sequence<int, N>{});
}

}  // namespace

void unary_cuda(UnaryOp op, const void* x, DType dt, void* out, int64_t n, float alpha, float beta) {
  if (n <= 0) return;
  dispatch_float(dt, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    dispatch_op<UnaryOp, kNumUnaryOps>(op, [&](auto o) {
      constexpr UnaryOp OP = decltype(o)::value; unary_kernel<DT, OP><<<cuda::grid_for(n), 256, 0, S()>>>(x, out, n, alpha, beta); });
  });
  cuda::check_last("unary");
}

void unary_bwd_cuda(UnaryOp op, const void* x, const void* g, DType dt, void* out, int64_t n, float alpha, float beta) {
  if (n <= 0) return;
  dispatch_float(dt, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    dispatch_op<UnaryOp, kNumUnaryOps>(op, [&](auto o) {
      constexpr UnaryOp OP = decltype(o)::value;
      unary_bwd_kernel<DT, OP><<<cuda::grid_for(n), 256, 0, S()>>>(x, g, out, n, alpha, beta);
    });
  });
  cuda::check_last("unaryBackward");
}

void binary_cuda(BinaryOp op, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi) {
  if (n <= 0) return;
  dispatch_float(dt, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    dispatch_op<BinaryOp, kNumBinaryOps>(op, [&](auto o) {
      constexpr BinaryOp OP = decltype(o)::value;
      if (bi.ndim == 0) binary_kernel<DT, OP, false><<<cuda::grid_for(n), 256, 0, S()>>>(a, b, out, n, bi);
      else binary_kernel<DT, OP, true><<<cuda::grid_for(n), 256, 0, S()>>>(a, b, out, n, bi);
    });
  });
  cuda::check_last("binary");
}

void where_cuda(const void* cond, DType cond_dt, const void* a, const void* b, DType dt, void* out, int64_t n, const BroadcastIndex& bi) {
  if (n <= 0) return;
  dispatch_float(dt, [&](auto c) {
    constexpr DType DT = decltype(c)::value; where_kernel<DT><<<cuda::grid_for(n), 256, 0, S()>>>(cond, cond_dt, a, b, out, n, bi); });
  cuda::check_last("where");
}

void sum_cuda(const void* x, DType dt, void* out, int64_t outer, int64_t r, int64_t inner) {
  if (outer * inner <= 0) return;
  dispatch_float(dt, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    if (inner == 1 && r >= 64) {
      for (int64_t row0 = 0; row0 < outer; row0 += 2147483647LL) {
        unsigned blocks = static_cast<unsigned>(std::min<int64_t>(outer - row0, 2147483647LL));
        sum_rows_kernel<DT><<<blocks, 256, 0, S()>>>(static_cast<const char*>(x) + row0 * r * dtype_size(dt), static_cast<char*>(out) + row0 * dtype_size(dt), r);
      }
    } else {
      sum_cols_kernel<DT><<<cuda::grid_for(outer * inner), 256, 0, S()>>>(x, out, outer, r, inner);
    }
  });
  cuda::check_last("sum");
}

}  // namespace mamba
