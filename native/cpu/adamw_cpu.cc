// CPU fused AdamW step: one pass over param / exp_avg / exp_avg_sq with the gradient read in its own dtype
// (float32, float16 or bfloat16). Per-element math: native/adamw_ops.h, shared with cuda/adamw.cu.
#include "adamw_cpu.h"

#include "../elem.h"
#include "parallel.h"

namespace mamba {

void adamw_step_cpu(const AdamWParams& p) {
  dispatch_float(p.grad_dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    parallel_for(p.n, 1 << 15, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) adamw_element(p, i, load_t<DT>(p.grad, i));
    });
  });
}

}  // namespace mamba
