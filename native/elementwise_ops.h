// Per-element math of the elementwise ops, shared by the CPU kernels (cpu/elementwise_cpu.cc) and the
// CUDA kernels (cuda/elementwise.cu) so both devices compute the same formula in float32.
// Forward: unary_fwd(op, x, alpha, beta); backward: unary_bwd(op, x, g, ...) = g * f'(x) in one pass;
// binary ops: binary_fwd(op, a, b). The op codes cross the N-API boundary as these enum values.
#pragma once
#include <cmath>
#include <cstdint>

#include "half.h"

namespace mamba {

enum class UnaryOp : int32_t {
  Neg = 0, Exp, Log, Sqrt, Rsqrt, Abs, Silu, Softplus, Sigmoid, Tanh, Relu, Gelu,
  Clamp,      // alpha = min, beta = max (either may be +-inf)
  PowScalar,  // x ^ alpha
  AddScalar,  // x + alpha
  MulScalar,  // x * alpha
  RSubScalar, // alpha - x
  RDivScalar, // alpha / x
  Square,
};
constexpr int kNumUnaryOps = 19;

// Left returns a: with a broadcast index it copies a into the larger output shape (broadcastTo).
enum class BinaryOp : int32_t { Add = 0, Sub, Mul, Div, Pow, Left };
constexpr int kNumBinaryOps = 6;

#if defined(__CUDA_ARCH__)
#define MAMBA_MATH(name) name##f
#else
#define MAMBA_MATH(name) std::name
#endif

MAMBA_HD float sigmoid_f(float x) { return 1.0f / (1.0f + MAMBA_MATH(exp)(-x)); }

// softplus(x) = log(1 + e^x), linear above 20 as in PyTorch and mamba_ssm.
MAMBA_HD float softplus_f(float x) { return x > 20.0f ? x : MAMBA_MATH(log1p)(MAMBA_MATH(exp)(x)); }

MAMBA_HD float unary_fwd(UnaryOp op, float x, float alpha, float beta) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return MAMBA_MATH(exp)(x);
    case UnaryOp::Log: return MAMBA_MATH(log)(x);
    case UnaryOp::Sqrt: return MAMBA_MATH(sqrt)(x);
    case UnaryOp::Rsqrt: return 1.0f / MAMBA_MATH(sqrt)(x);
    case UnaryOp::Abs: return MAMBA_MATH(fabs)(x);
    case UnaryOp::Silu: return x * sigmoid_f(x);
    case UnaryOp::Softplus: return softplus_f(x);
    case UnaryOp::Sigmoid: return sigmoid_f(x);
    case UnaryOp::Tanh: return MAMBA_MATH(tanh)(x);
    case UnaryOp::Relu: return x > 0.0f ? x : (x == x ? 0.0f : x);
    case UnaryOp::Gelu: return 0.5f * x * (1.0f + MAMBA_MATH(erf)(x * 0.70710678118654752f));
    case UnaryOp::Clamp: return x != x ? x : (x < alpha ? alpha : (x > beta ? beta : x));
    case UnaryOp::PowScalar: return MAMBA_MATH(pow)(x, alpha);
    case UnaryOp::AddScalar: return x + alpha;
    case UnaryOp::MulScalar: return x * alpha;
    case UnaryOp::RSubScalar: return alpha - x;
    case UnaryOp::RDivScalar: return alpha / x;
    case UnaryOp::Square: return x * x;
  }
  return x;
}

// g * d f(x) / dx
MAMBA_HD float unary_bwd(UnaryOp op, float x, float g, float alpha, float beta) {
  switch (op) {
    case UnaryOp::Neg: return -g;
    case UnaryOp::Exp: return g * MAMBA_MATH(exp)(x);
    case UnaryOp::Log: return g / x;
    case UnaryOp::Sqrt: return g * 0.5f / MAMBA_MATH(sqrt)(x);
    case UnaryOp::Rsqrt: { float r = 1.0f / MAMBA_MATH(sqrt)(x); return g * -0.5f * r * r * r; }
    case UnaryOp::Abs: return x > 0.0f ? g : (x < 0.0f ? -g : 0.0f);
    case UnaryOp::Silu: { float s = sigmoid_f(x); return g * s * (1.0f + x * (1.0f - s)); }
    case UnaryOp::Softplus: return x > 20.0f ? g : g * sigmoid_f(x);
    case UnaryOp::Sigmoid: { float s = sigmoid_f(x); return g * s * (1.0f - s); }
    case UnaryOp::Tanh: { float t = MAMBA_MATH(tanh)(x); return g * (1.0f - t * t); }
    case UnaryOp::Relu: return x > 0.0f ? g : 0.0f;
    case UnaryOp::Gelu: {
      float cdf = 0.5f * (1.0f + MAMBA_MATH(erf)(x * 0.70710678118654752f));
      float pdf = 0.39894228040143268f * MAMBA_MATH(exp)(-0.5f * x * x);
      return g * (cdf + x * pdf);
    }
    case UnaryOp::Clamp: return (x >= alpha && x <= beta) ? g : 0.0f;
    case UnaryOp::PowScalar: return alpha == 0.0f ? 0.0f : g * alpha * MAMBA_MATH(pow)(x, alpha - 1.0f);
    case UnaryOp::AddScalar: return g;
    case UnaryOp::MulScalar: return g * alpha;
    case UnaryOp::RSubScalar: return -g;
    case UnaryOp::RDivScalar: return -g * alpha / (x * x);
    case UnaryOp::Square: return g * 2.0f * x;
  }
  (void)beta;
  return g;
}

MAMBA_HD float binary_fwd(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return MAMBA_MATH(pow)(a, b);
    case BinaryOp::Left: return a;
  }
  return a;
}

// Broadcast indexing for up to kMaxDims dims: out index -> input offsets through per-input strides
// (stride 0 on broadcast dims). Host code collapses adjacent dims first.
constexpr int kMaxDims = 8;
struct BroadcastIndex {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[3][kMaxDims] = {};  // up to three inputs (where: cond, a, b)
};

MAMBA_HD void broadcast_offsets(const BroadcastIndex& bi, int64_t i, int n_inputs, int64_t* off) {
  for (int k = 0; k < n_inputs; ++k) off[k] = 0;
  for (int d = bi.ndim - 1; d >= 0; --d) {
    int64_t q = i / bi.shape[d];
    int64_t r = i - q * bi.shape[d];
    i = q;
    for (int k = 0; k < n_inputs; ++k) off[k] += r * bi.stride[k][d];
  }
}

}  // namespace mamba
