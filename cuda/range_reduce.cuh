// Fixed-order float32 reductions over contiguous ranges of a float32 / float16 / bfloat16 tensor, shared by the sum
// kernels (elementwise.cu: sum of x) and the multi-tensor norm (multi_norm.cu: sum of x^2). Deterministic: the
// order of every addition is fixed by the launch shape, never by timing.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../native/elem.h"
#include "common.cuh"

namespace mamba {
namespace reduce {

// Element storage of a dtype: float, or the 16-bit pattern of a half / bfloat16.
template <DType DT>
using elem_t = typename std::conditional<DT == DType::Float32, float, uint16_t>::type;

// x (kSquare false) or x^2 (true) folded into acc.
template <bool kSquare>
__device__ __forceinline__ float fold(float acc, float x) {
  return kSquare ? fmaf(x, x, acc) : acc + x;
}

// The float sum of one 16-byte vector (4 float32 or 8 16-bit values, or their squares), in element order from 0.
template <DType DT, bool kSquare>
__device__ __forceinline__ float vec_part(const uint4& v) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  float acc = 0.0f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if constexpr (DT == DType::Float32) {
      acc = fold<kSquare>(acc, __uint_as_float(w[k]));
    } else {
      const uint16_t lo = static_cast<uint16_t>(w[k] & 0xffffu), hi = static_cast<uint16_t>(w[k] >> 16);
      acc = fold<kSquare>(acc, DT == DType::Float16 ? f16_to_f32(lo) : bf16_to_f32(lo));
      acc = fold<kSquare>(acc, DT == DType::Float16 ? f16_to_f32(hi) : bf16_to_f32(hi));
    }
  }
  return acc;
}

// Thread t of a group of nt threads: its share of the sum of x[b, e) (or of its squares). Scalar loads up to the
// first 16-byte boundary, then 16-byte vectors (4 in flight per thread), then the scalar tail.
template <DType DT, bool kSquare>
__device__ __forceinline__ float range_part(const void* x, int64_t b, int64_t e, int t, int nt) {
  using E = elem_t<DT>;
  constexpr int V = 16 / sizeof(E);
  const E* p = static_cast<const E*>(x);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p + b);
  int64_t head = static_cast<int64_t>(((16 - (addr & 15)) & 15) / sizeof(E));
  if (head > e - b) head = e - b;
  float acc = 0.0f;
  if (t < head) {
    const float a = load_t<DT>(x, b + t);
    acc = kSquare ? a * a : acc + a;
  }
  const int64_t a0 = b + head, nvec = (e - a0) / V;
  const uint4* pv = reinterpret_cast<const uint4*>(p + a0);
  int64_t k = t;
  for (; k + 3 * int64_t(nt) < nvec; k += 4 * int64_t(nt)) {
    const uint4 v0 = __ldg(pv + k), v1 = __ldg(pv + k + nt), v2 = __ldg(pv + k + 2 * nt), v3 = __ldg(pv + k + 3 * nt);
    acc += vec_part<DT, kSquare>(v0);
    acc += vec_part<DT, kSquare>(v1);
    acc += vec_part<DT, kSquare>(v2);
    acc += vec_part<DT, kSquare>(v3);
  }
  for (; k < nvec; k += nt) acc += vec_part<DT, kSquare>(__ldg(pv + k));
  for (int64_t i = a0 + nvec * V + t; i < e; i += nt) acc = fold<kSquare>(acc, load_t<DT>(x, i));
  return acc;
}

__device__ __forceinline__ float warp_sum(float acc) {
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
  return acc;
}

// The block's total (valid in thread 0), warp butterflies then the warp sums in order. Callable in a loop: the
// trailing barrier protects the shared slots from the next call.
__device__ __forceinline__ float block_sum(float acc) {
  __shared__ float warp_sums[32];
  acc = warp_sum(acc);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    acc = warp_sums[0];
    for (int w = 1; w < int(blockDim.x >> 5); ++w) acc += warp_sums[w];
  }
  __syncthreads();
  return acc;
}

}  // namespace reduce
}  // namespace mamba
