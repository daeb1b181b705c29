// CUDA axis reductions and softmax (declarations in reduce_extra.h; per-element math in
// native/cpu/reduce_extra_ops.h, shared with the CPU). The input is (outer, R, inner):
// - inner == 1, R <= 1024: a warp per row; lanes walk the row with stride 32, then a shuffle butterfly.
// - inner == 1, longer rows: a block of 512 per row (warp butterflies, then every thread folds the 16
//   warp states in order). With few long rows each row is split over P blocks, which write partial
//   states that a second kernel folds (a warp per row).
// - inner > 1: blocks of 32 columns x TY threads along R (8, or 32 when there are few column tiles);
//   coalesced across columns; the TY partial states are folded in order through shared memory. With few
//   column tiles and a long R, R is split over P blocks the same way (a thread per column folds them).
// Softmax reads its input twice (state, then map); when split, the folded states go to a buffer and a
// third kernel maps the elements. Launch shapes depend only on the tensor shape and no atomics are used,
// so results are bitwise repeatable.
#include <algorithm>
#include <cstring>

#include "../native/cpu/reduce_extra_ops.h"
#include "common.cuh"
#include "launch.h"
#include "reduce_extra.h"

namespace mamba {
namespace {

cudaStream_t S() { return static_cast<cudaStream_t>(cuda::stream()); }

constexpr int kRowBlock = 512;
constexpr int64_t kWarpRowMax = 1024;

template <class State>
__device__ __forceinline__ State shfl_xor_state(State s, int mask) {
  static_assert(sizeof(State) % 4 == 0, "states are whole 32-bit words");
  constexpr int kWords = sizeof(State) / 4;
  int w[kWords];
  memcpy(w, &s, sizeof(State));
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_xor_sync(0xffffffffu, w[k], mask);
  memcpy(&s, w, sizeof(State));
  return s;
}

template <class Op>
__device__ __forceinline__ typename Op::State warp_fold(const Op& op, typename Op::State s) {
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) s = op.combine(s, shfl_xor_state(s, m));
  return s;
}

// A warp per row of R contiguous elements.
template <class Op>
__global__ void rows_warp_kernel(Op op, int64_t outer, int64_t R) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); row < outer; row += warps) {
    const int64_t base = row * R;
    typename Op::State s = op.init();
    for (int64_t r = lane; r < R; r += 32) s = op.push(s, base + r, r);
    s = warp_fold(op, s);
    if constexpr (Op::kMap) {
      for (int64_t r = lane; r < R; r += 32) op.map(s, base + r);
    } else if (lane == 0) {
      op.write(s, row);
    }
  }
}

// A block per row piece: blockIdx.y picks the piece [p * chunk, (p + 1) * chunk) of each row. With one
// piece the block writes (or maps) the row itself; otherwise it stores its state in partial[row * P + p].
template <class Op>
__global__ void rows_block_kernel(Op op, int64_t outer, int64_t R, int64_t chunk, typename Op::State* partial) {
  __shared__ typename Op::State warp_states[kRowBlock / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int64_t p = blockIdx.y, P = gridDim.y;
  const int64_t r_begin = p * chunk, r_end = min(R, r_begin + chunk);
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const int64_t base = row * R;
    typename Op::State s = op.init();
    for (int64_t r = r_begin + threadIdx.x; r < r_end; r += blockDim.x) s = op.push(s, base + r, r);
    s = warp_fold(op, s);
    if (lane == 0) warp_states[warp] = s;
    __syncthreads();
    s = warp_states[0];
    for (int w = 1; w < nwarps; ++w) s = op.combine(s, warp_states[w]);
    __syncthreads();
    if (P > 1) {
      if (threadIdx.x == 0) partial[row * P + p] = s;
    } else if constexpr (Op::kMap) {
      for (int64_t r = threadIdx.x; r < R; r += blockDim.x) op.map(s, base + r);
    } else if (threadIdx.x == 0) {
      op.write(s, row);
    }
  }
}

// Folds the P partial states of each row (a warp per row); writes the result, or for a map op stores the
// row's state in final[row].
template <class Op>
__global__ void fold_partials_kernel(Op op, const typename Op::State* partial, int64_t outer, int64_t P, typename Op::State* final) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); row < outer; row += warps) {
    typename Op::State s = op.init();
    for (int64_t p = lane; p < P; p += 32) s = op.combine(s, partial[row * P + p]);
    s = warp_fold(op, s);
    if (lane == 0) {
      if constexpr (Op::kMap) final[row] = s;
      else op.write(s, row);
    }
  }
}

// Map ops over split rows: block (row, p) maps piece p of the row with the row's folded state.
template <class Op>
__global__ void map_rows_kernel(Op op, const typename Op::State* final, int64_t outer, int64_t R, int64_t chunk) {
  const int64_t r_begin = blockIdx.y * chunk, r_end = min(R, r_begin + chunk);
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const typename Op::State s = final[row];
    for (int64_t r = r_begin + threadIdx.x; r < r_end; r += blockDim.x) op.map(s, row * R + r);
  }
}

// inner > 1: a block covers 32 columns of one outer index; threadIdx.y walks the piece
// [p * chunk, (p + 1) * chunk) of R (p = blockIdx.y) with stride blockDim.y. With one piece the block
// writes (or maps) the columns itself; otherwise it stores its states in partial[(o * P + p) * inner + col].
template <class Op>
__global__ void cols_kernel(Op op, int64_t outer, int64_t R, int64_t inner, int64_t chunk, typename Op::State* partial) {
  __shared__ typename Op::State states[32][32];
  const int64_t tiles_per_outer = (inner + 31) / 32, tiles = outer * tiles_per_outer;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t p = blockIdx.y, P = gridDim.y;
  const int64_t r_begin = p * chunk, r_end = min(R, r_begin + chunk);
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const int64_t o = t / tiles_per_outer, col = (t - o * tiles_per_outer) * 32 + tx;
    const bool valid = col < inner;
    typename Op::State s = op.init();
    if (valid)
      for (int64_t r = r_begin + ty; r < r_end; r += blockDim.y) s = op.push(s, (o * R + r) * inner + col, r);
    states[ty][tx] = s;
    __syncthreads();
    s = states[0][tx];
    for (int y = 1; y < int(blockDim.y); ++y) s = op.combine(s, states[y][tx]);
    if (valid) {
      if (P > 1) {
        if (ty == 0) partial[(o * P + p) * inner + col] = s;
      } else if constexpr (Op::kMap) {
        for (int64_t r = ty; r < R; r += blockDim.y) op.map(s, (o * R + r) * inner + col);
      } else if (ty == 0) {
        op.write(s, o * inner + col);
      }
    }
    __syncthreads();
  }
}

// Folds the P partial states of each column (o, col) in piece order (a thread per column, coalesced);
// writes the result, or for a map op stores the state in final[o * inner + col].
template <class Op>
__global__ void fold_col_partials_kernel(Op op, const typename Op::State* partial, int64_t outer, int64_t P, int64_t inner, typename Op::State* final) {
  const int64_t n = outer * inner;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = idx / inner, col = idx - o * inner;
    typename Op::State s = op.init();
    for (int64_t p = 0; p < P; ++p) s = op.combine(s, partial[(o * P + p) * inner + col]);
    if constexpr (Op::kMap) final[idx] = s;
    else op.write(s, idx);
  }
}

// Map ops over split columns: every element (o, r, col) with its column's folded state.
template <class Op>
__global__ void map_cols_kernel(Op op, const typename Op::State* final, int64_t outer, int64_t R, int64_t inner) {
  const int64_t n = outer * R * inner, per_outer = R * inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / per_outer, col = (k - o * per_outer) % inner;
    op.map(final[o * inner + col], k);
  }
}

unsigned capped_grid(int64_t blocks) {
  constexpr int64_t kMax = 65535LL * 16;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMax ? kMax : blocks));
}

// Split launches aim at this many blocks (~8 per SM of 132, two waves of 256-thread blocks).
constexpr int64_t kSplitTargetBlocks = 2048;

template <class Op>
void launch(const Op& op, int64_t outer, int64_t R, int64_t inner, const char* fn) {
  using State = typename Op::State;
  if (outer * inner == 0 || (Op::kMap && R == 0)) return;
  State* partial = nullptr;
  State* final = nullptr;
  if (inner > 1) {
    const int64_t tiles = outer * ((inner + 31) / 32);
    int64_t P = 1;
    // Few column tiles and a long R: split R into pieces of at least 16 rows per thread (TY = 8).
    if (tiles < 512) P = std::max<int64_t>(1, std::min((R + 127) / 128, (kSplitTargetBlocks + tiles - 1) / tiles));
    const int64_t chunk = (R + P - 1) / P;
    P = (R + chunk - 1) / chunk;
    if (P <= 1) {
      const int ty = tiles >= 1024 ? 8 : 32;
      cols_kernel<Op><<<capped_grid(tiles), dim3(32, ty), 0, S()>>>(op, outer, R, inner, R, nullptr);
    } else {
      partial = static_cast<State*>(cuda::alloc(static_cast<size_t>(outer * P * inner) * sizeof(State), fn));
      if (Op::kMap) final = static_cast<State*>(cuda::alloc(static_cast<size_t>(outer * inner) * sizeof(State), fn));
      cols_kernel<Op><<<dim3(capped_grid(tiles), static_cast<unsigned>(P)), dim3(32, 8), 0, S()>>>(op, outer, R, inner, chunk, partial);
      fold_col_partials_kernel<Op><<<cuda::grid_for(outer * inner), 256, 0, S()>>>(op, partial, outer, P, inner, final);
      if constexpr (Op::kMap) map_cols_kernel<Op><<<cuda::grid_for(outer * R * inner), 256, 0, S()>>>(op, final, outer, R, inner);
    }
  } else if (R <= kWarpRowMax) {
    rows_warp_kernel<Op><<<capped_grid((outer + 7) / 8), 256, 0, S()>>>(op, outer, R);
  } else {
    // Split rows only when there are too few of them to fill the device.
    int64_t P = 1;
    if (outer < 1024) {
      P = (R + 8 * kRowBlock - 1) / (8 * kRowBlock);
      P = std::max<int64_t>(1, std::min(P, (1024 + outer - 1) / outer));
    }
    const int64_t chunk = (R + P - 1) / P;
    P = (R + chunk - 1) / chunk;
    const dim3 grid(capped_grid(std::min<int64_t>(outer, 65535)), static_cast<unsigned>(P));
    if (P == 1) {
      rows_block_kernel<Op><<<grid, kRowBlock, 0, S()>>>(op, outer, R, chunk, nullptr);
    } else {
      partial = static_cast<State*>(cuda::alloc(static_cast<size_t>(outer * P) * sizeof(State), fn));
      if (Op::kMap) final = static_cast<State*>(cuda::alloc(static_cast<size_t>(outer) * sizeof(State), fn));
      rows_block_kernel<Op><<<grid, kRowBlock, 0, S()>>>(op, outer, R, chunk, partial);
      fold_partials_kernel<Op><<<capped_grid((outer + 7) / 8), 256, 0, S()>>>(op, partial, outer, P, final);
      if constexpr (Op::kMap) map_rows_kernel<Op><<<grid, kRowBlock, 0, S()>>>(op, final, outer, R, chunk);
    }
  }
  cuda::check_last(fn);
  // Stream-ordered: the blocks are reused only after the kernels above.
  if (partial) cuda::free(partial);
  if (final) cuda::free(final);
}

template <DType DT>
__global__ void arg_scatter_kernel(ArgScatterParams p) {
  const int64_t n = p.outer * p.R * p.inner, per_outer = p.R * p.inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / per_outer, rem = k - o * per_outer, r = rem / p.inner, i = rem - r * p.inner;
    const int64_t src = o * p.inner + i;
    store_t<DT>(p.out, k, p.index[src] == r ? load_t<DT>(p.g, src) : 0.0f);
  }
}

}  // namespace

void axis_reduce_cuda(const AxisReduceParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    switch (p.op) {
      case AxisReduceOp::Max:
        launch(MaxMinOp<DT>{p.x, p.out, p.index, 1.0f}, p.outer, p.R, p.inner, "max");
        break;
      case AxisReduceOp::Min:
        launch(MaxMinOp<DT>{p.x, p.out, p.index, -1.0f}, p.outer, p.R, p.inner, "min");
        break;
      case AxisReduceOp::LogSumExp: launch(LogSumExpOp<DT>{p.x, p.out}, p.outer, p.R, p.inner, "logsumexp"); break;
    }
  });
}

void softmax_cuda(const SoftmaxParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    launch(SoftmaxOp<DT>{p.x, p.out, p.log}, p.outer, p.R, p.inner, "softmax");
  });
}

void softmax_bwd_cuda(const SoftmaxParams& p) {
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    launch(SoftmaxBwdOp<DT>{p.x, p.g, p.out, p.log}, p.outer, p.R, p.inner, "softmaxBackward");
  });
}

void arg_scatter_cuda(const ArgScatterParams& p) {
  const int64_t n = p.outer * p.R * p.inner;
  if (n == 0) return;
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    arg_scatter_kernel<DT><<<cuda::grid_for(n), 256, 0, S()>>>(p);
  });
  cuda::check_last("argScatter");
}

}  // namespace mamba
