// CUDA cross-entropy from logits: fused log-softmax + NLL with ignore_index, label smoothing and
// none/mean/sum reduction (torch.nn.functional.cross_entropy), forward and backward; math and shapes in
// CrossEntropyParams (native/fused_params.h), CPU twin in native/cpu/cross_entropy_cpu.cc.
// Forward: one block per row reads the logits once (16-byte vectors, several loads in flight per thread)
// keeping an online max / sum of exponentials and the sum of logits (for smoothing); it writes the row's
// float32 log-sum-exp (saved for the backward) and loss. One more block adds the row losses in a fixed
// order and counts the non-ignored targets (the mean's divisor, also saved), so the forward never
// synchronizes with the host. Backward: one block per row reads the logits once more and writes
// dlogits = g * (exp(logit - lse) - (1 - s) [c == target] - s / V) in the logits dtype; no probabilities
// are stored in between. Out-of-range targets (not ignore_index) give a NaN loss and NaN gradient rows.
#include "fused.h"
#include "fused_common.cuh"

namespace mamba {
namespace {
using namespace fused;

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // vectors loaded per thread before they are used

__device__ __forceinline__ float nan_f() { return __int_as_float(0x7fc00000); }

// Merges (m2, s2) into the running (m, s): s is a sum of exp(v - m).
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  const float a = m == -INFINITY ? 0.0f : s * __expf(m - M);
  const float b = m2 == -INFINITY ? 0.0f : s2 * __expf(m2 - M);
  m = M;
  s = a + b;
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) ce_fwd_kernel(CrossEntropyParams p, float* row_loss) {
  __shared__ float red[32], wm[32], ws[32];
  const int64_t row = blockIdx.x, V = p.vocab, nvec = V / VEC;
  const T* x = static_cast<const T*>(p.logits) + row * V;
  float m = -INFINITY, s = 0.0f, sx = 0.0f;
  for (int64_t base = threadIdx.x; base < nvec; base += int64_t(kUnroll) * kThreads) {
    float v[kUnroll][VEC];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t idx = base + int64_t(u) * kThreads;
      if (idx < nvec) {
        load_vec<VEC>(x + idx * VEC, v[u]);
      } else {
#pragma unroll
        for (int k = 0; k < VEC; ++k) v[u][k] = -INFINITY;
      }
    }
    float mx = m;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int k = 0; k < VEC; ++k) mx = fmaxf(mx, v[u][k]);
    if (mx > m) {
      s = m == -INFINITY ? 0.0f : s * __expf(m - mx);
      m = mx;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (base + int64_t(u) * kThreads >= nvec) break;
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        s += __expf(v[u][k] - m);
        sx += v[u][k];
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    wm[warp] = m;
    ws[warp] = s;
  }
  sx = block_sum(sx, red);  // its barriers also publish wm / ws
  if (threadIdx.x != 0) return;
  m = wm[0];
  s = ws[0];
  for (int w = 1; w < kThreads / 32; ++w) merge(m, s, wm[w], ws[w]);
  const float lse = m + logf(s);
  p.lse[row] = lse;
  const int32_t t = p.targets[row];
  float loss;
  if (t == p.ignore_index) {
    loss = 0.0f;
  } else if (t < 0 || t >= V) {
    loss = nan_f();
  } else {
    const float nll = lse - to_f(x[t]);
    const float e = p.label_smoothing;
    loss = e == 0.0f ? nll : (1.0f - e) * nll + e * (lse - sx / static_cast<float>(V));
  }
  row_loss[row] = loss;
  if (p.reduction == Reduction::None) static_cast<T*>(p.loss)[row] = from_f<T>(loss);
}

// One block: the non-ignored count and, for mean / sum, the reduced loss.
template <typename T>
__global__ void ce_reduce_kernel(CrossEntropyParams p, const float* row_loss) {
  __shared__ float red[32];
  float tot = 0.0f, cnt = 0.0f;
  for (int64_t i = threadIdx.x; i < p.n; i += blockDim.x) {
    tot += row_loss[i];
    cnt += p.targets[i] != p.ignore_index ? 1.0f : 0.0f;
  }
  tot = block_sum(tot, red);
  cnt = block_sum(cnt, red);
  if (threadIdx.x != 0) return;
  *p.count = cnt;
  if (p.reduction != Reduction::None) static_cast<T*>(p.loss)[0] = from_f<T>(p.reduction == Reduction::Mean ? tot / cnt : tot);
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads) ce_bwd_kernel(CrossEntropyParams p) {
  const int64_t row = blockIdx.x, V = p.vocab, nvec = V / VEC;
  const T* x = static_cast<const T*>(p.logits) + row * V;
  T* dx = static_cast<T*>(p.dlogits) + row * V;
  const int32_t t = p.targets[row];
  if (t == p.ignore_index) {
    float z[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) z[k] = 0.0f;
    for (int64_t idx = threadIdx.x; idx < nvec; idx += kThreads) store_vec<VEC>(dx + idx * VEC, z);
    return;
  }
  float g = p.reduction == Reduction::None ? to_f(static_cast<const T*>(p.dloss)[row]) : to_f(static_cast<const T*>(p.dloss)[0]);
  if (p.reduction == Reduction::Mean) g /= *p.count;
  if (t < 0 || t >= V) g = nan_f();
  const float lse = p.lse[row], off = p.label_smoothing / static_cast<float>(V), hit = 1.0f - p.label_smoothing;
  for (int64_t base = threadIdx.x; base < nvec; base += int64_t(kUnroll) * kThreads) {
    float v[kUnroll][VEC];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t idx = base + int64_t(u) * kThreads;
      if (idx < nvec) load_vec<VEC>(x + idx * VEC, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t idx = base + int64_t(u) * kThreads;
      if (idx >= nvec) break;
      float d[VEC];
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float onehot = idx * VEC + k == t ? hit : 0.0f;
        d[k] = g * (__expf(v[u][k] - lse) - off - onehot);
      }
      store_vec<VEC>(dx + idx * VEC, d);
    }
  }
}

template <typename T>
bool vectorised(const CrossEntropyParams& p, const void* out) {
  return p.vocab % (16 / sizeof(T)) == 0 && aligned(p.logits, 16) && aligned(out, 16);
}

template <typename T>
void fwd(const CrossEntropyParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  Scratch rows(static_cast<size_t>(p.n) * sizeof(float), "crossEntropy");
  if (vectorised<T>(p, p.logits)) ce_fwd_kernel<T, V><<<static_cast<unsigned>(p.n), kThreads, 0, s>>>(p, rows.as<float>());
  else ce_fwd_kernel<T, 1><<<static_cast<unsigned>(p.n), kThreads, 0, s>>>(p, rows.as<float>());
  check_launch("crossEntropy");
  ce_reduce_kernel<T><<<1, 1024, 0, s>>>(p, rows.as<float>());
  check_launch("crossEntropy");
}

template <typename T>
void bwd(const CrossEntropyParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  if (vectorised<T>(p, p.dlogits)) ce_bwd_kernel<T, V><<<static_cast<unsigned>(p.n), kThreads, 0, s>>>(p);
  else ce_bwd_kernel<T, 1><<<static_cast<unsigned>(p.n), kThreads, 0, s>>>(p);
  check_launch("crossEntropyBackward");
}

}  // namespace

void cross_entropy_fwd_cuda(const CrossEntropyParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "crossEntropy", fwd<T>(p, static_cast<cudaStream_t>(stream)));
}

void cross_entropy_bwd_cuda(const CrossEntropyParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "crossEntropyBackward", bwd<T>(p, static_cast<cudaStream_t>(stream)));
}

}  // namespace mamba
