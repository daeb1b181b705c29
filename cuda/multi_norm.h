// CUDA launcher of the multi-tensor sum of squares (plain C++ declaration; kernels in multi_norm.cu). Used by
// the gradient norm (lib/optim/clip.ts through `multiNormSq` in native/ops/adamw.cc). Enqueued on the library
// stream; never synchronizes.
#pragma once
#include <cstdint>
#include <vector>

#include "../native/dtype.h"

namespace mamba {

struct MultiNormTensor {
  const void* data = nullptr;  // contiguous device memory
  int64_t n = 0;               // elements
  DType dtype = DType::Float32;  // float32, float16 or bfloat16
};

// *out (one float32 on the device) := the float32 sum over all tensors of the squares of their elements,
// in a fixed order (a partial per chunk of 64K elements, then one block adding the partials in list order):
// bitwise the same every run for the same list of shapes and dtypes.
void multi_norm_sq_cuda(const std::vector<MultiNormTensor>& tensors, float* out);

}  // namespace mamba
