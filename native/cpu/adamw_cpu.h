// CPU kernel of the fused AdamW step (math in native/adamw_ops.h, N-API layer in native/ops/adamw.cc).
#pragma once
#include "../adamw_ops.h"

namespace mamba {

// Updates p.param, p.exp_avg and p.exp_avg_sq in place over p.n elements; each element is independent,
// so the result does not depend on the thread count.
void adamw_step_cpu(const AdamWParams& p);

}  // namespace mamba
