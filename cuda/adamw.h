// CUDA launcher of the fused AdamW step (plain C++ declaration; kernel in adamw.cu, CPU twin in
// native/cpu/adamw_cpu.cc, per-element math in native/adamw_ops.h). Enqueued on the library stream.
#pragma once
#include "../native/adamw_ops.h"

namespace mamba {

// Updates p.param, p.exp_avg and p.exp_avg_sq (device pointers) in place over p.n elements.
void adamw_step_cuda(const AdamWParams& p);

}  // namespace mamba
