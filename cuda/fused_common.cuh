// Device helpers shared by the fused-op kernels (cuda/{rmsnorm,conv1d,embedding,cross_entropy,softplus_bias}.cu):
// float32 <-> storage conversions (hardware round-to-nearest-even, the same rounding as native/half.h),
// 16-byte vector packs, warp and block sums, the dtype switch that picks a kernel instantiation, and
// stream-ordered scratch from the caching allocator.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../native/dtype.h"
#include "../native/error.h"
#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace fused {

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// One element of a small parameter tensor (weight, bias) whose dtype is only known at run time.
__device__ __forceinline__ float load_any(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::Float16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::BFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void store_any(void* p, int64_t i, DType t, float v) {
  switch (t) {
    case DType::Float16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case DType::BFloat16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// N consecutive elements moved as one (or, for 32-byte packs, two) vector load/store.
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <int N, typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[N]) {
  Pack<T, N> pk = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int k = 0; k < N; ++k) out[k] = to_f(pk.v[k]);
}

template <int N, typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[N]) {
  Pack<T, N> pk;
#pragma unroll
  for (int k = 0; k < N; ++k) pk.v[k] = from_f<T>(in[k]);
  *reinterpret_cast<Pack<T, N>*>(p) = pk;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the same value, added in
// a fixed order, so the result is deterministic. `red` is 32 floats of shared memory; safe to call repeatedly.
__device__ __forceinline__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  const int warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if ((threadIdx.x & 31) == 0) red[warp] = v;
  __syncthreads();
  float s = 0.0f;
  for (int w = 0; w < nwarps; ++w) s += red[w];
  __syncthreads();
  return s;
}

// Elements per 16-byte vector for a dtype.
inline int vec_width(DType t) { return t == DType::Float32 ? 4 : 8; }
inline bool aligned(const void* p, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

inline int sm_count() {
  static int n = [] {
    int dev = 0, c = 0;
    cuda::check(cudaGetDevice(&dev), "sm_count");
    cuda::check(cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev), "sm_count");
    return c;
  }();
  return n;
}

inline void check_launch(const char* what) { cuda::check(cudaGetLastError(), what); }

// Scratch device memory from the caching allocator; freed in stream order when it goes out of scope.
struct Scratch {
  void* ptr = nullptr;
  Scratch(size_t bytes, const char* fn) : ptr(bytes ? cuda::alloc(bytes, fn) : nullptr) {}
  ~Scratch() {
    if (ptr) cuda::free(ptr);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(ptr); }
};

}  // namespace fused
}  // namespace mamba

// Runs the statements with `T` bound to the storage type of a float dtype.
#define FUSED_DISPATCH(dtype, T, fn, ...)                                              \
  switch (dtype) {                                                                     \
    case ::mamba::DType::Float32: { using T = float; __VA_ARGS__; break; }             \
    case ::mamba::DType::Float16: { using T = __half; __VA_ARGS__; break; }            \
    case ::mamba::DType::BFloat16: { using T = __nv_bfloat16; __VA_ARGS__; break; }    \
    default: ::mamba::fail(::mamba::ErrorKind::DType, fn, "", std::string(fn) + ": unsupported dtype"); \
  }
