// CUDA embedding lookup and its scatter-add backward; shapes in EmbeddingParams (native/fused_params.h),
// CPU twin in native/cpu/embedding_cpu.cc. The forward copies 16-byte vectors of the looked-up rows.
// The backward adds each dout row into a zeroed float32 (vocab, dim) accumulator with float atomics (vector
// atomics on sm_90), then casts to the weight dtype. With `deterministic` it instead adds fixed-point int64
// values (scale 2^s from the largest |dout|, so no sum can overflow): integer addition is associative, so the
// result is bitwise repeatable, and the float32 rounding happens once at the end.
// Ids are not range-checked on the device (no synchronisation): an out-of-range id gives a NaN row in the
// forward and contributes nothing to the backward.
#include <cmath>

#include "fused.h"
#include "fused_common.cuh"
#include "red.cuh"

namespace mamba {
namespace {
using namespace fused;

template <typename T, int VEC>
__global__ void embedding_fwd_kernel(EmbeddingParams p) {
  const int64_t per_row = p.dim / VEC, n = p.n * per_row;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / per_row, c = (e % per_row) * VEC;
    const int32_t id = p.ids[i];
    Pack<T, VEC> v;
    if (id >= 0 && id < p.vocab) {
      v = *reinterpret_cast<const Pack<T, VEC>*>(static_cast<const T*>(p.weight) + id * p.dim + c);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) v.v[k] = from_f<T>(__int_as_float(0x7fc00000));
    }
    *reinterpret_cast<Pack<T, VEC>*>(static_cast<T*>(p.out) + i * p.dim + c) = v;
  }
}

template <typename T, int VEC>
__global__ void embedding_bwd_atomic_kernel(EmbeddingParams p, float* acc) {
  const int64_t per_row = p.dim / VEC, n = p.n * per_row;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / per_row, c = (e % per_row) * VEC;
    const int32_t id = p.ids[i];
    if (id < 0 || id >= p.vocab) continue;
    float g[VEC];
    load_vec<VEC>(static_cast<const T*>(p.dout) + i * p.dim + c, g);
    float* dst = acc + id * p.dim + c;
#if __CUDA_ARCH__ >= 900
    constexpr bool kVector = VEC % 4 == 0;
#else
    constexpr bool kVector = false;
#endif
    if constexpr (kVector) {
#pragma unroll
      for (int k = 0; k < VEC; k += 4) red_add4(dst + k, make_float4(g[k], g[k + 1], g[k + 2], g[k + 3]));
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) red_add(dst + k, g[k]);
    }
  }
}

// Largest |dout| as float bits (non-negative floats order like their bit patterns).
template <typename T>
__global__ void max_abs_kernel(const T* g, int64_t n, unsigned* out) {
  float m = 0.0f;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(to_f(g[e])));
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
}

// The fixed-point exponent: values are stored as round(g * 2^s), with s chosen so n * max|g| * 2^s < 2^62.
__device__ __forceinline__ int fixed_shift(unsigned max_bits, int64_t n) {
  const float m = __uint_as_float(max_bits);
  if (!(m > 0.0f) || isinf(m)) return 0;
  int e;
  frexpf(m, &e);  // m < 2^e
  const int logn = 64 - __clzll(static_cast<unsigned long long>(n));  // n < 2^logn
  return 62 - e - logn;
}

template <typename T>
__global__ void embedding_bwd_fixed_kernel(EmbeddingParams p, unsigned long long* acc, const unsigned* max_bits) {
  const float scale = ldexpf(1.0f, fixed_shift(*max_bits, p.n));
  const int64_t n = p.n * p.dim;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / p.dim, c = e % p.dim;
    const int32_t id = p.ids[i];
    if (id < 0 || id >= p.vocab) continue;
    const long long q = llrintf(to_f(static_cast<const T*>(p.dout)[e]) * scale);
    red_add(acc + id * p.dim + c, static_cast<unsigned long long>(q));
  }
}

template <typename T>
__global__ void fixed_to_float_kernel(const unsigned long long* acc, int64_t n, int64_t count, const unsigned* max_bits, T* out) {
  const float m = __uint_as_float(*max_bits);
  const float inv = ldexpf(1.0f, -fixed_shift(*max_bits, count));
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    // A NaN or infinite dout cannot be represented in fixed point: the whole gradient becomes NaN.
    const float v = (m == m && !isinf(m)) ? static_cast<float>(static_cast<long long>(acc[e])) * inv : __int_as_float(0x7fc00000);
    out[e] = from_f<T>(v);
  }
}

template <typename T>
void fwd(const EmbeddingParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  if (p.dim % V == 0 && aligned(p.weight, 16) && aligned(p.out, 16))
    embedding_fwd_kernel<T, V><<<cuda::grid_for(p.n * p.dim / V), 256, 0, s>>>(p);
  else
    embedding_fwd_kernel<T, 1><<<cuda::grid_for(p.n * p.dim), 256, 0, s>>>(p);
  check_launch("embedding");
}

template <typename T>
void bwd(const EmbeddingParams& p, cudaStream_t s) {
  const char* fn = "embeddingBackward";
  const int64_t total = p.vocab * p.dim;
  if (p.deterministic) {
    Scratch acc(static_cast<size_t>(total) * 8 + 16, fn);
    auto* sums = acc.as<unsigned long long>();
    auto* max_bits = reinterpret_cast<unsigned*>(sums + total);
    cuda::check(cudaMemsetAsync(acc.ptr, 0, static_cast<size_t>(total) * 8 + 16, s), fn);
    max_abs_kernel<T><<<cuda::grid_for(p.n * p.dim), 256, 0, s>>>(static_cast<const T*>(p.dout), p.n * p.dim, max_bits);
    check_launch(fn);
    embedding_bwd_fixed_kernel<T><<<cuda::grid_for(p.n * p.dim), 256, 0, s>>>(p, sums, max_bits);
    check_launch(fn);
    fixed_to_float_kernel<T><<<cuda::grid_for(total), 256, 0, s>>>(sums, total, p.n, max_bits, static_cast<T*>(p.dweight));
    check_launch(fn);
    return;
  }
  const bool direct = p.dtype == DType::Float32;
  Scratch tmp(direct ? 0 : static_cast<size_t>(total) * sizeof(float), fn);
  float* acc = direct ? static_cast<float*>(p.dweight) : tmp.as<float>();
  cuda::check(cudaMemsetAsync(acc, 0, static_cast<size_t>(total) * sizeof(float), s), fn);
  constexpr int V = 16 / sizeof(T);
  if (p.dim % V == 0 && aligned(p.dout, 16) && aligned(acc, 16))
    embedding_bwd_atomic_kernel<T, V><<<cuda::grid_for(p.n * p.dim / V), 256, 0, s>>>(p, acc);
  else
    embedding_bwd_atomic_kernel<T, 1><<<cuda::grid_for(p.n * p.dim), 256, 0, s>>>(p, acc);
  check_launch(fn);
  if (!direct) cuda::cast_cuda(acc, DType::Float32, p.dweight, p.dtype, total);
}

}  // namespace

void embedding_fwd_cuda(const EmbeddingParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "embedding", fwd<T>(p, static_cast<cudaStream_t>(stream)));
}

void embedding_bwd_cuda(const EmbeddingParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "embeddingBackward", bwd<T>(p, static_cast<cudaStream_t>(stream)));
}

}  // namespace mamba
