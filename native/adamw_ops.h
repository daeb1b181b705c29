// The per-element math of the fused AdamW step, shared by the CPU kernel (cpu/adamw_cpu.cc) and the CUDA
// kernel (cuda/adamw.cu) so both devices compute one formula: PyTorch's torch.optim.AdamW (single-tensor,
// amsgrad off, maximize off), with the gradient first multiplied by `grad_scale` (gradient clipping folded
// into the step). The step count, bias corrections and decay factor are computed once on the host in double
// and passed in as floats. Multiplications and additions go through mul_rn / add_rn, which on the device
// are __fmul_rn / __fadd_rn: nvcc would otherwise contract them into FMAs that the host compiler does not
// form, and the two devices would round differently. sqrt and division are IEEE on both, so the CPU and
// CUDA kernels are meant to give the same bits. Reference: the float64 AdamW in test/optim/adamw.test.ts.
#pragma once
#include <cmath>
#include <cstdint>

#include "dtype.h"
#include "half.h"

namespace mamba {

// One tensor's step. param, exp_avg, exp_avg_sq are float32 and updated in place; grad (n elements) may be
// float32, float16 or bfloat16 (mixed precision: fp32 master weights, 16-bit gradients).
struct AdamWParams {
  float* param = nullptr;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  const void* grad = nullptr;
  DType grad_dtype = DType::Float32;
  int64_t n = 0;
  float decay = 1.0f;              // 1 - lr * weight_decay (decoupled weight decay)
  float beta1 = 0.9f;
  float one_minus_beta1 = 0.1f;
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;
  float step_size = 0.0f;          // lr / (1 - beta1^step)
  float bias_correction2_sqrt = 1.0f;  // sqrt(1 - beta2^step)
  float eps = 1e-8f;
  float grad_scale = 1.0f;
};

MAMBA_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

MAMBA_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

MAMBA_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

MAMBA_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

// Updates element i of param / exp_avg / exp_avg_sq given the float32 value of its gradient.
// Order of operations as in torch/optim/adamw.py (_single_tensor_adamw):
//   p *= 1 - lr*wd; m.lerp_(g, 1-b1); v = v*b2 + (1-b2)*g*g; p -= step_size * m / (sqrt(v)/sqrt(bc2) + eps)
MAMBA_HD void adamw_element(const AdamWParams& p, int64_t i, float g_raw) {
  const float g = mul_rn(g_raw, p.grad_scale);
  const float w = mul_rn(p.param[i], p.decay);
  // m.lerp_(g, 1 - beta1) as ATen computes it: from the nearer end, so weight 0 or 1 is exact
  const float m0 = p.exp_avg[i];
  const float diff = add_rn(g, -m0);
  const float m = p.one_minus_beta1 < 0.5f ? add_rn(m0, mul_rn(p.one_minus_beta1, diff)) : add_rn(g, -mul_rn(diff, p.beta1));
  const float v = add_rn(mul_rn(p.exp_avg_sq[i], p.beta2), mul_rn(mul_rn(g, g), p.one_minus_beta2));
  const float denom = add_rn(div_rn(sqrt_rn(v), p.bias_correction2_sqrt), p.eps);
  p.exp_avg[i] = m;
  p.exp_avg_sq[i] = v;
  p.param[i] = add_rn(w, -mul_rn(p.step_size, div_rn(m, denom)));
}

}  // namespace mamba
