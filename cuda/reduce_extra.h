// CUDA launchers of the axis reductions and softmax (kernels in cuda/reduce_extra.cu) over the params
// of native/cpu/reduce_extra_cpu.h, which the CPU kernels share. Plain C++, no CUDA headers. All
// enqueue on the library stream and never synchronize.
#pragma once
#include "../native/cpu/reduce_extra_cpu.h"

namespace mamba {

void axis_reduce_cuda(const AxisReduceParams& p);
void softmax_cuda(const SoftmaxParams& p);
void softmax_bwd_cuda(const SoftmaxParams& p);
void arg_scatter_cuda(const ArgScatterParams& p);

}  // namespace mamba
