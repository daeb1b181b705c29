// Helpers shared by the .cu files: CUDA error checks that throw mamba::Error (never exit) and a
// grid-stride launch shape for the small elementwise kernels.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../native/error.h"

namespace mamba {
namespace cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what) {
  if (e == cudaErrorMemoryAllocation)
    fail(ErrorKind::OutOfMemory, what, "", std::string(what) + ": CUDA out of memory");
  fail(ErrorKind::Device, what, "", std::string(what) + ": CUDA error " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}


// Elementwise launches: 256 threads, enough blocks to cover the device a few times; kernels loop.
inline unsigned grid_for(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535LL * 8) blocks = 65535LL * 8;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace cuda
}  // namespace mamba
