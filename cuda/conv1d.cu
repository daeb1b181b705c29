// CUDA causal depthwise conv1d (kernel width 2..4, optional bias and SiLU, optional initial/final state for
// segments), forward and backward; math and shapes in Conv1dParams (native/fused_params.h), CPU twin in
// native/cpu/conv1d_cpu.cc. Grid (batch * dim rows, chunks of the sequence); a thread owns VEC consecutive
// steps (one 16-byte vector when L allows) and reads the width-1 neighbouring steps as scalars (L1 hits).
// The backward recomputes the pre-activation instead of saving it, writes dx in one pass and reduces
// dweight/dbias per block into scratch; a second kernel adds the partials over batch and chunks in a fixed
// order, so the gradients are deterministic.
#include "fused.h"
#include "fused_common.cuh"

namespace mamba {
namespace {
using namespace fused;

constexpr int kThreads = 128;

__device__ __forceinline__ float silu_grad(float y) {
  const float s = 1.0f / (1.0f + __expf(-y));
  return s * (1.0f + y * (1.0f - s));
}

// Padded input xp at sequence position idx (xp index idx + width - 1): the initial state (or 0) before 0,
// 0 after the end.
template <typename T, int W>
__device__ __forceinline__ float x_at(const T* x, const T* h0, int64_t L, int64_t idx) {
  if (idx >= 0) return idx < L ? to_f(x[idx]) : 0.0f;
  return h0 ? to_f(h0[W - 1 + idx]) : 0.0f;
}

template <typename T, int W, int VEC>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_kernel(Conv1dParams p) {
  const int64_t row = blockIdx.x, d = row % p.dim, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* h0 = p.initial_state ? static_cast<const T*>(p.initial_state) + row * (W - 1) : nullptr;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  const int64_t t0 = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * VEC;
  if (t0 < L) {
    float xs[VEC + W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) xs[k] = x_at<T, W>(x, h0, L, t0 - (W - 1) + k);
    float cur[VEC];
    load_vec<VEC>(x + t0, cur);
#pragma unroll
    for (int k = 0; k < VEC; ++k) xs[W - 1 + k] = cur[k];
    float o[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      float y = bias;
#pragma unroll
      for (int k = 0; k < W; ++k) y += w[k] * xs[i + k];
      o[i] = p.silu ? y / (1.0f + __expf(-y)) : y;
    }
    store_vec<VEC>(static_cast<T*>(p.out) + row * L + t0, o);
  }
  if (p.final_state && blockIdx.y == 0 && threadIdx.x < W - 1) {
    const int k = threadIdx.x;
    static_cast<T*>(p.final_state)[row * (W - 1) + k] = from_f<T>(x_at<T, W>(x, h0, L, L - (W - 1) + k));
  }
}

// Gradient of the pre-activation sum at position s (0 outside [0, L)).
template <typename T, int W>
__device__ __forceinline__ float g_at(const Conv1dParams& p, const T* x, const T* h0, const T* dy, const float (&w)[W],
                                      float bias, int64_t s) {
  if (s < 0 || s >= p.seqlen) return 0.0f;
  float g = to_f(dy[s]);
  if (p.silu) {
    float y = bias;
#pragma unroll
    for (int k = 0; k < W; ++k) y += w[k] * x_at<T, W>(x, h0, p.seqlen, s - (W - 1) + k);
    g *= silu_grad(y);
  }
  return g;
}

template <typename T, int W, int VEC>
__global__ void __launch_bounds__(kThreads) conv1d_bwd_kernel(Conv1dParams p, float* partial) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x, d = row % p.dim, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* dy = static_cast<const T*>(p.dout) + row * L;
  const T* h0 = p.initial_state ? static_cast<const T*>(p.initial_state) + row * (W - 1) : nullptr;
  const T* dfin = p.dfinal_state ? static_cast<const T*>(p.dfinal_state) + row * (W - 1) : nullptr;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  float acc[W + 1];  // dweight[0..W), dbias
#pragma unroll
  for (int k = 0; k <= W; ++k) acc[k] = 0.0f;
  const int64_t t0 = (int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * VEC;
  if (t0 < L) {
    // Inputs at t0 - (W-1) .. t0 + VEC - 1 + (W-1) and dout at t0 .. t0 + VEC - 1 + (W-1).
    float xs[VEC + 2 * (W - 1)], dys[VEC + W - 1];
    float cx[VEC], cd[VEC];
    load_vec<VEC>(x + t0, cx);
    load_vec<VEC>(dy + t0, cd);
#pragma unroll
    for (int k = 0; k < W - 1; ++k) {
      xs[k] = x_at<T, W>(x, h0, L, t0 - (W - 1) + k);
      xs[W - 1 + VEC + k] = x_at<T, W>(x, h0, L, t0 + VEC + k);
      dys[VEC + k] = t0 + VEC + k < L ? to_f(dy[t0 + VEC + k]) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      xs[W - 1 + i] = cx[i];
      dys[i] = cd[i];
    }
    float g[VEC + W - 1];
#pragma unroll
    for (int s = 0; s < VEC + W - 1; ++s) {
      float gs = dys[s];
      if (p.silu) {
        float y = bias;
#pragma unroll
        for (int k = 0; k < W; ++k) y += w[k] * xs[s + k];
        gs *= silu_grad(y);
      }
      g[s] = gs;
    }
    float dx[VEC];
#pragma unroll
    for (int i = 0; i < VEC; ++i) {
      float v = 0.0f;
#pragma unroll
      for (int k = 0; k < W; ++k) v += g[i + W - 1 - k] * w[k];
      const int64_t j = t0 + i + (W - 1) - L;  // index into the final state, when >= 0
      if (dfin && j >= 0) v += to_f(dfin[j]);
      dx[i] = v;
#pragma unroll
      for (int k = 0; k < W; ++k) acc[k] += g[i] * xs[i + k];
      acc[W] += g[i];
    }
    store_vec<VEC>(static_cast<T*>(p.dx) + row * L + t0, dx);
  }
#pragma unroll
  for (int k = 0; k <= W; ++k) acc[k] = block_sum(acc[k], red);
  if (threadIdx.x == 0) {
    float* mine = partial + (row * gridDim.y + blockIdx.y) * (W + 1);
#pragma unroll
    for (int k = 0; k <= W; ++k) mine[k] = acc[k];
  }
  if (p.dinitial_state && blockIdx.y == 0 && threadIdx.x < W - 1) {
    const int j = threadIdx.x;  // padded index < W - 1
    float v = 0.0f;
#pragma unroll
    for (int k = 0; k < W; ++k)
      if (j - k >= 0) v += g_at<T, W>(p, x, h0, dy, w, bias, j - k) * w[k];
    if (dfin && j >= L) v += to_f(dfin[j - L]);
    static_cast<T*>(p.dinitial_state)[row * (W - 1) + j] = from_f<T>(v);
  }
}

// dweight[d, k] (k < W) and dbias[d] (k == W): partial (batch, dim, chunks, W + 1) summed over batch and chunks.
template <int W>
__global__ void conv1d_param_grad_kernel(const float* partial, Conv1dParams p, int64_t chunks) {
  const int64_t n = p.dim * (W + 1);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = e / (W + 1);
    const int k = static_cast<int>(e % (W + 1));
    if (k == W && !p.dbias) continue;
    float s = 0.0f;
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t c = 0; c < chunks; ++c) s += partial[((b * p.dim + d) * chunks + c) * (W + 1) + k];
    if (k < W) store_any(p.dweight, d * W + k, p.wdtype, s);
    else store_any(p.dbias, d, p.wdtype, s);
  }
}

template <typename T, int W>
void launch(const Conv1dParams& p, cudaStream_t s, bool backward) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = p.seqlen % V == 0 && aligned(p.x, 16) && aligned(p.out ? p.out : p.dx, 16) &&
                   (!backward || aligned(p.dout, 16));
  const int step = vec ? V : 1;
  const int64_t chunks = (p.seqlen + int64_t(kThreads) * step - 1) / (int64_t(kThreads) * step);
  if (chunks > 65535) fail(ErrorKind::Shape, backward ? "causalConv1dBackward" : "causalConv1d", "x", "causalConv1d: sequence too long for the CUDA kernel");
  dim3 grid(static_cast<unsigned>(p.batch * p.dim), static_cast<unsigned>(chunks));
  if (!backward) {
    if (vec) conv1d_fwd_kernel<T, W, V><<<grid, kThreads, 0, s>>>(p);
    else conv1d_fwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p);
    check_launch("causalConv1d");
    return;
  }
  Scratch partial(static_cast<size_t>(p.batch * p.dim * chunks * (W + 1)) * sizeof(float), "causalConv1dBackward");
  if (vec) conv1d_bwd_kernel<T, W, V><<<grid, kThreads, 0, s>>>(p, partial.as<float>());
  else conv1d_bwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p, partial.as<float>());
  check_launch("causalConv1dBackward");
  conv1d_param_grad_kernel<W><<<cuda::grid_for(p.dim * (W + 1)), 256, 0, s>>>(partial.as<float>(), p, chunks);
  check_launch("causalConv1dBackward");
}

template <typename T>
void by_width(const Conv1dParams& p, cudaStream_t s, bool backward) {
  switch (p.width) {
    case 2: return launch<T, 2>(p, s, backward);
    case 3: return launch<T, 3>(p, s, backward);
    case 4: return launch<T, 4>(p, s, backward);
    default: fail(ErrorKind::Shape, "causalConv1d", "weight", "causalConv1d: kernel width must be 2, 3 or 4");
  }
}

}  // namespace

void conv1d_fwd_cuda(const Conv1dParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "causalConv1d", by_width<T>(p, static_cast<cudaStream_t>(stream), false));
}

void conv1d_bwd_cuda(const Conv1dParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "causalConv1dBackward", by_width<T>(p, static_cast<cudaStream_t>(stream), true));
}

}  // namespace mamba
