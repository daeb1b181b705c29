// CUDA fused AdamW step (declaration in adamw.h): a grid-stride loop, one element per iteration, templated
// on the gradient dtype. The math is adamw_element of native/adamw_ops.h, the same function the CPU kernel
// runs, with explicitly rounded device intrinsics so the two devices agree. Memory-bound: 16 bytes read
// and 12 written per float32 element (10 read with 16-bit gradients), no reductions, no atomics.
#include "../native/elem.h"
#include "adamw.h"
#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace {

template <DType DT>
__global__ void adamw_step_kernel(AdamWParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x)
    adamw_element(p, i, load_t<DT>(p.grad, i));
}

}  // namespace

void adamw_step_cuda(const AdamWParams& p) {
  if (p.n <= 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(cuda::stream());
  dispatch_float(p.grad_dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    adamw_step_kernel<DT><<<cuda::grid_for(p.n), 256, 0, s>>>(p);
  });
  cuda::check_last("adamwStep");
}

}  // namespace mamba
