// Reductions into global memory that return nothing (PTX red). atomicAdd with an unused result is left to ptxas,
// which kept a returning ATOM in the chained fast scan backward (its results held registers and the warp waited on
// them: S2 fwd+bwd 1.50 -> 1.34 ms once written as red, docs/perf.md seventh session); the PTX of the general scan
// backward and the embedding backward had returning atoms too. Host-compiled code (the CPU emulation in
// cuda/bench/emu) falls back to atomicAdd.
#pragma once
#include <cuda_runtime.h>

namespace mamba {

__device__ __forceinline__ void red_add(float* acc, float v) {
#ifdef __CUDA_ARCH__
  asm volatile("red.global.add.f32 [%0], %1;" ::"l"(acc), "f"(v) : "memory");
#else
  atomicAdd(acc, v);
#endif
}

// acc[0..3] += v: one vector red on sm_90 (acc 16-byte aligned), four scalar ones before.
__device__ __forceinline__ void red_add4(float* acc, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(acc), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
               : "memory");
#else
  red_add(acc, v.x);
  red_add(acc + 1, v.y);
  red_add(acc + 2, v.z);
  red_add(acc + 3, v.w);
#endif
}

__device__ __forceinline__ void red_add(unsigned long long* acc, unsigned long long v) {
#ifdef __CUDA_ARCH__
  asm volatile("red.global.add.u64 [%0], %1;" ::"l"(acc), "l"(v) : "memory");
#else
  atomicAdd(acc, v);
#endif
}

}  // namespace mamba
