// CUDA layout launchers (kernels in cuda/shape.cu) over the params of native/cpu/shape_cpu.h, which
// the CPU kernels share. Plain C++, no CUDA headers. All enqueue on the library stream; only
// first_bad_index_cuda waits for it (it reads its answer back).
#pragma once
#include <cstdint>

#include "../native/cpu/shape_cpu.h"

namespace mamba {

void strided_copy_cuda(const StridedCopyParams& p);
void index_select_cuda(const IndexParams& p);
void index_add_cuda(const IndexParams& p);
// The first j with index[j] outside [0, rows), or -1; copies one number back (synchronizes the stream).
int64_t first_bad_index_cuda(const int32_t* index, int64_t n, int64_t rows);

}  // namespace mamba
