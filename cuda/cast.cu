// dtype conversion kernel (declaration in launch.h); per-element rules in native/elem.h, shared with
// the CPU cast so both devices give the same bits.
#include "../native/elem.h"
#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace cuda {
namespace {

__global__ void cast_kernel(const void* src, DType st, void* dst, DType dt, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    cast_element(src, st, dst, dt, i);
}

}  // namespace

void cast_cuda(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (n <= 0) return;
  cast_kernel<<<grid_for(n), 256, 0, static_cast<cudaStream_t>(stream())>>>(src, st, dst, dt, n);
  check_last("cast");
}

}  // namespace cuda
}  // namespace mamba
