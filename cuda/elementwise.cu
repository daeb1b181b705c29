// CUDA elementwise and sum kernels (declarations in elementwise.h). Formulas come from
// native/elementwise_ops.h, shared with the CPU kernels. Elementwise kernels are grid-stride loops
// templated on dtype and op. sum reduces (outer, r, inner): a thread, warp or block per row when the reduced
// axis is innermost (16-byte vector loads), tiles of 32 columns otherwise (coalesced across the inner axis);
// long reductions over few outputs are split over many blocks with a fixed-order second pass. No atomics:
// deterministic.
#include <algorithm>
#include <type_traits>
#include <utility>

#include "../native/elem.h"
#include "common.cuh"
#include "elementwise.h"
#include "launch.h"
#include "range_reduce.cuh"

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

// ---- sum: (outer, r, inner) -> (outer, inner), float32 accumulation, fixed order ----
// Launch shapes depend only on (outer, r, inner) and the inputs' 16-byte alignment (storage from the
// allocator is 256-byte aligned), never on timing, and there are no atomics: the same shape sums in the
// same order every run. Long reductions over few outputs are split into pieces: each block writes a
// float32 partial sum, and a second kernel adds a row's (or column's) partials in piece order.

constexpr int kSumThreads = 256;
// Blocks to aim for when splitting: ~8 resident blocks of 256 threads on each of 132 SMs, two waves.
constexpr int64_t kSumTargetBlocks = 2048;
// Elements per block piece of a long row (never fewer): 64 per thread, so the fixed cost of a block
// (its reduction and partial store) stays small against its loads.
constexpr int64_t kSumMinRowChunk = 64 * kSumThreads;

using reduce::block_sum;
using reduce::warp_sum;

// inner == 1, r < 32: a thread per row.
template <DType DT>
__global__ void sum_short_rows_kernel(const void* x, void* out, int64_t outer, int64_t r) {
  for (int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; row < outer; row += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
    for (int64_t k = 0; k < r; ++k) acc += load_t<DT>(x, row * r + k);
    store_t<DT>(out, row, acc);
  }
}

// inner == 1, 32 <= r <= 2048: a warp per row.
template <DType DT>
__global__ void sum_warp_rows_kernel(const void* x, void* out, int64_t outer, int64_t r) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); row < outer; row += warps) {
    const float acc = warp_sum(reduce::range_part<DT, false>(x, row * r, (row + 1) * r, lane, 32));
    if (lane == 0) store_t<DT>(out, row, acc);
  }
}

// inner == 1, long rows: block (p, y) sums piece p = [p * chunk, (p + 1) * chunk) of rows y, y + gridDim.y,
// ... With one piece it stores the row's sum, otherwise partial[row * P + p].
template <DType DT>
__global__ void sum_rows_kernel(const void* x, void* out, float* partial, int64_t outer, int64_t r, int64_t chunk) {
  const int64_t p = blockIdx.x, P = gridDim.x;
  const int64_t b = p * chunk, e = min(r, b + chunk);
  for (int64_t row = blockIdx.y; row < outer; row += gridDim.y) {
    const float acc = block_sum(reduce::range_part<DT, false>(x, row * r + b, row * r + e, threadIdx.x, blockDim.x));
    if (threadIdx.x == 0) {
      if (P == 1) store_t<DT>(out, row, acc);
      else partial[row * P + p] = acc;
    }
  }
}

// Adds each row's P partials (a warp per row, lanes in a fixed stride, then the butterfly).
template <DType DT>
__global__ void sum_row_partials_kernel(const float* partial, void* out, int64_t outer, int64_t P) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); row < outer; row += warps) {
    float acc = 0.0f;
    for (int64_t k = lane; k < P; k += 32) acc += partial[row * P + k];
    acc = warp_sum(acc);
    if (lane == 0) store_t<DT>(out, row, acc);
  }
}

// inner > 1: a block of 32 columns x blockDim.y threads along r (coalesced across columns); blockIdx.y
// picks the piece [p * chunk, (p + 1) * chunk) of r. The blockDim.y sums of a column are added in order
// through shared memory; with one piece the block stores the column's sum, otherwise
// partial[(o * P + p) * inner + c].
template <DType DT>
__global__ void sum_cols_kernel(const void* x, void* out, float* partial, int64_t outer, int64_t r, int64_t inner, int64_t chunk) {
  __shared__ float part[8][33];
  const int64_t tiles_per_outer = (inner + 31) / 32, tiles = outer * tiles_per_outer;
  const int tx = threadIdx.x, ty = threadIdx.y, TY = blockDim.y;
  const int64_t p = blockIdx.y, P = gridDim.y;
  const int64_t b = p * chunk, e = min(r, b + chunk);
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t o = t / tiles_per_outer, c = (t - o * tiles_per_outer) * 32 + tx;
    float acc = 0.0f;
    if (c < inner) {
      const int64_t base = o * r * inner + c;
      int64_t k = b + ty;
      for (; k + 3 * TY < e; k += 4 * TY) {
        const float v0 = load_t<DT>(x, base + k * inner), v1 = load_t<DT>(x, base + (k + TY) * inner);
        const float v2 = load_t<DT>(x, base + (k + 2 * TY) * inner), v3 = load_t<DT>(x, base + (k + 3 * TY) * inner);
        acc += v0;
        acc += v1;
        acc += v2;
        acc += v3;
      }
      for (; k < e; k += TY) acc += load_t<DT>(x, base + k * inner);
    }
    if (TY > 1) {
      part[ty][tx] = acc;
      __syncthreads();
      if (ty == 0)
        for (int y = 1; y < TY; ++y) acc += part[y][tx];
      __syncthreads();
    }
    if (ty == 0 && c < inner) {
      if (P == 1) store_t<DT>(out, o * inner + c, acc);
      else partial[(o * P + p) * inner + c] = acc;
    }
  }
}

// Adds the P partials of each output (o, c) in piece order: a thread per output, coalesced across c.
template <DType DT>
__global__ void sum_col_partials_kernel(const float* partial, void* out, int64_t outer, int64_t P, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = idx / inner, c = idx - o * inner;
    float acc = 0.0f;
    for (int64_t k = 0; k < P; ++k) acc += partial[(o * P + k) * inner + c];
    store_t<DT>(out, idx, acc);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

unsigned capped_blocks(int64_t blocks) {
  constexpr int64_t kMax = 65535LL * 16;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMax ? kMax : blocks));
}

template <DType DT>
void launch_sum(const void* x, void* out, int64_t outer, int64_t r, int64_t inner) {
  if (inner == 1 && r < 32) {
    sum_short_rows_kernel<DT><<<cuda::grid_for(outer), kSumThreads, 0, S()>>>(x, out, outer, r);
    return;
  }
  if (inner == 1 && r <= 2048 && outer >= 4 * kSumTargetBlocks) {
    // Enough rows for a warp each to fill the device (>= 1024 blocks of 8 warps).
    sum_warp_rows_kernel<DT><<<capped_blocks(ceil_div(outer, kSumThreads / 32)), kSumThreads, 0, S()>>>(x, out, outer, r);
    return;
  }
  float* partial = nullptr;
  if (inner == 1) {
    int64_t P = 1;
    if (outer < kSumTargetBlocks) P = std::max<int64_t>(1, std::min(ceil_div(r, kSumMinRowChunk), ceil_div(kSumTargetBlocks, outer)));
    // Pieces of a multiple of 8 elements: 16-byte aligned whenever the row start is.
    const int64_t chunk = ceil_div(ceil_div(r, P), 8) * 8;
    P = ceil_div(r, chunk);
    if (P > 1) partial = static_cast<float*>(cuda::alloc(static_cast<size_t>(outer * P) * sizeof(float), "sum"));
    const dim3 grid(static_cast<unsigned>(P), static_cast<unsigned>(std::min<int64_t>(outer, 65535)));
    sum_rows_kernel<DT><<<grid, kSumThreads, 0, S()>>>(x, out, partial, outer, r, chunk);
    if (P > 1) sum_row_partials_kernel<DT><<<capped_blocks(ceil_div(outer, kSumThreads / 32)), kSumThreads, 0, S()>>>(partial, out, outer, P);
  } else {
    const int64_t tiles = outer * ceil_div(inner, 32);
    const int ty = r >= 64 ? 8 : r >= 16 ? 4 : r >= 4 ? 2 : 1;
    int64_t P = 1;
    // At least 16 rows per thread in a piece.
    if (tiles < kSumTargetBlocks) P = std::max<int64_t>(1, std::min(ceil_div(r, 16 * ty), ceil_div(kSumTargetBlocks, tiles)));
    const int64_t chunk = ceil_div(r, P);
    P = ceil_div(r, chunk);
    if (P > 1) partial = static_cast<float*>(cuda::alloc(static_cast<size_t>(outer * P * inner) * sizeof(float), "sum"));
    const dim3 grid(capped_blocks(tiles), static_cast<unsigned>(P));
    sum_cols_kernel<DT><<<grid, dim3(32, ty), 0, S()>>>(x, out, partial, outer, r, inner, chunk);
    if (P > 1) sum_col_partials_kernel<DT><<<cuda::grid_for(outer * inner), kSumThreads, 0, S()>>>(partial, out, outer, P, inner);
  }
  if (partial) {
    cuda::check_last("sum");
    cuda::free(partial);  // stream-ordered: the next user of the block runs after the kernels above
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
  dispatch_float(dt, [&](auto c) { launch_sum<decltype(c)::value>(x, out, outer, r, inner); });
  cuda::check_last("sum");
}

}  // namespace mamba
