// Plain parameter structs of the fused ops (RMSNorm, causal depthwise conv1d, embedding, cross-entropy,
// softplus + bias), filled by native/ops/fused.cc and read by the CPU kernels (native/cpu/*_cpu.cc) and the
// CUDA launchers (cuda/fused.h). No napi.h, no CUDA headers. Tensors are contiguous and row-major; the shape
// of each tensor is written next to its pointer. Every op accumulates in float32 whatever the dtypes.
// The float64 references live in the tests (test/ops/<op>.test.ts); the math is in docs/kernels/fused.md.
#pragma once
#include <cstdint>

#include "dtype.h"

namespace mamba {

// RMSNorm over the last dim, with an optional residual add (mamba_ssm's fused add + norm):
//   r = x + residual (or x);  rstd = 1 / sqrt(mean(r^2) + eps);  out = r * rstd * weight.
// Backward: dr = rstd * (weight * dout - rhat * mean(weight * dout * rhat)) + dresidual_out, with rhat = r * rstd;
// dx = dresidual = dr; dweight = sum over rows of dout * rhat.
struct RmsNormParams {
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
  DType dtype = DType::Float32;     // x, out, dx
  DType rdtype = DType::Float32;    // residual, residual_out, r, dresidual_out, dresidual
  DType wdtype = DType::Float32;    // weight, dweight
  // forward
  const void* x = nullptr;          // (rows, cols) dtype
  const void* residual = nullptr;   // (rows, cols) rdtype, optional
  const void* weight = nullptr;     // (cols) wdtype
  void* out = nullptr;              // (rows, cols) dtype
  void* residual_out = nullptr;     // (rows, cols) rdtype, optional: x + residual (or x) rounded to rdtype
  float* rstd = nullptr;            // (rows) float32
  // backward (weight and rstd as above)
  const void* r = nullptr;          // (rows, cols) rdtype: the forward's residual_out, or x when there was none
  const void* dout = nullptr;       // (rows, cols) dtype
  const void* dresidual_out = nullptr;  // (rows, cols) rdtype, optional
  void* dx = nullptr;               // (rows, cols) dtype
  void* dresidual = nullptr;        // (rows, cols) rdtype, optional
  void* dweight = nullptr;          // (cols) wdtype
};

// Causal depthwise conv1d, PyTorch Conv1d(dim, dim, width, groups=dim, padding=width-1)[..., :L]:
//   xp = [initial_state (width-1 steps, or zeros), x];  y_t = sum_k weight[d,k] * xp[t+k] + bias[d];
//   out_t = silu(y_t) if silu else y_t;  final_state = the last width-1 steps of xp.
struct Conv1dParams {
  int64_t batch = 0, dim = 0, seqlen = 0;
  int width = 4;                    // 2..4
  bool silu = false;
  DType dtype = DType::Float32;     // x, out, initial/final state, their gradients
  DType wdtype = DType::Float32;    // weight, bias, dweight, dbias
  const void* x = nullptr;          // (batch, dim, seqlen) dtype
  const void* weight = nullptr;     // (dim, width) wdtype
  const void* bias = nullptr;       // (dim) wdtype, optional
  const void* initial_state = nullptr;  // (batch, dim, width-1) dtype, optional
  void* out = nullptr;              // (batch, dim, seqlen) dtype
  void* final_state = nullptr;      // (batch, dim, width-1) dtype, optional
  // backward (inputs above re-read)
  const void* dout = nullptr;       // (batch, dim, seqlen) dtype
  const void* dfinal_state = nullptr;  // (batch, dim, width-1) dtype, optional
  void* dx = nullptr;               // (batch, dim, seqlen) dtype
  void* dweight = nullptr;          // (dim, width) wdtype
  void* dbias = nullptr;            // (dim) wdtype, when bias
  void* dinitial_state = nullptr;   // (batch, dim, width-1) dtype, optional
};

// Embedding lookup: out[i, :] = weight[ids[i], :]. Backward: dweight[v, :] = sum over i with ids[i] == v of dout[i, :].
struct EmbeddingParams {
  int64_t n = 0, vocab = 0, dim = 0;
  DType dtype = DType::Float32;     // weight, out, dout, dweight
  bool deterministic = false;       // CUDA backward: integer (fixed-point) atomics instead of float atomics
  const int32_t* ids = nullptr;     // (n)
  const void* weight = nullptr;     // (vocab, dim)
  void* out = nullptr;              // (n, dim)
  const void* dout = nullptr;       // (n, dim)
  void* dweight = nullptr;          // (vocab, dim)
};

// Cross-entropy from logits, torch.nn.functional.cross_entropy with class-index targets:
//   lse_i = logsumexp(logits[i]);  nll_i = lse_i - logits[i, t_i];  smooth_i = lse_i - mean_c logits[i, c];
//   loss_i = (1 - s) * nll_i + s * smooth_i, and 0 where t_i == ignore_index;
//   reduction: none -> loss (n); sum -> sum_i loss_i; mean -> sum_i loss_i / count(t_i != ignore_index).
// Backward: dlogits[i, c] = g_i * (softmax[i, c] - (1 - s) [c == t_i] - s / V), zero on ignored rows, with
// g_i = dloss_i (none), dloss (sum) or dloss / count (mean).
enum class Reduction : int { None = 0, Mean = 1, Sum = 2 };
struct CrossEntropyParams {
  int64_t n = 0, vocab = 0;
  int32_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
  float label_smoothing = 0.0f;
  DType dtype = DType::Float32;     // logits, loss, dloss, dlogits
  const void* logits = nullptr;     // (n, vocab)
  const int32_t* targets = nullptr; // (n)
  void* loss = nullptr;             // (n) for none, else (1)
  float* lse = nullptr;             // (n) float32, saved for the backward
  float* count = nullptr;           // (1) float32: number of non-ignored targets, saved for the backward
  const void* dloss = nullptr;      // like loss
  void* dlogits = nullptr;          // (n, vocab)
};

// delta' = softplus(delta + bias[d]) with softplus(v) = v > 20 ? v : log1p(exp(v)).
// Backward: ddelta = dout * sigmoid(delta + bias[d]); dbias[d] = sum over batch and time of that (in float32).
struct SoftplusBiasParams {
  int64_t batch = 0, dim = 0, seqlen = 0;
  DType dtype = DType::Float32;     // delta, out, dout, ddelta
  DType bdtype = DType::Float32;    // bias, dbias
  const void* delta = nullptr;      // (batch, dim, seqlen)
  const void* bias = nullptr;       // (dim)
  void* out = nullptr;              // (batch, dim, seqlen)
  const void* dout = nullptr;       // (batch, dim, seqlen)
  void* ddelta = nullptr;           // (batch, dim, seqlen)
  void* dbias = nullptr;            // (dim)
};

}  // namespace mamba
