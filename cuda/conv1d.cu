// CUDA causal depthwise conv1d (kernel width 2..4, optional bias and SiLU, optional initial/final state for
// segments), forward and backward; math and shapes in Conv1dParams (native/fused_params.h), CPU twin in
// native/cpu/conv1d_cpu.cc. Grid (batch * dim rows, chunks of the sequence), 128 threads.
// Vector path (L a multiple of the 16-byte vector width): a thread owns K vectors of a chunk of 128 * K
// vectors, vector i at index i * 128 + threadIdx.x (every load instruction coalesced, K independent 16-byte
// loads in flight, K = 1, 2 or 4 by L); the W-1 neighbouring steps come from the neighbouring lanes by
// shuffles, only lane 0 (left) and lane 31 (right, backward) load them from memory. Scalar path (any L): a
// thread owns one step and reads the neighbours as scalars (L1 hits).
// The backward recomputes the pre-activation instead of saving it, writes dx in one pass and reduces
// dweight/dbias per block (one barrier) into scratch; a second kernel adds the partials over batch and chunks
// in a fixed order, so the gradients are deterministic.
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

// Adds acc over the block (warp shuffles, then the warps in order: deterministic) and thread 0 writes the N sums.
template <int N>
__device__ __forceinline__ void block_sums_to(const float (&acc)[N], float* out) {
  __shared__ float red[N][kThreads / 32];
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    const float v = warp_sum(acc[k]);
    if ((threadIdx.x & 31) == 0) red[k][warp] = v;
  }
  __syncthreads();
  if (threadIdx.x == 0)
#pragma unroll
    for (int k = 0; k < N; ++k) {
      float s = 0.0f;
      for (int w = 0; w < kThreads / 32; ++w) s += red[k][w];
      out[k] = s;
    }
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
  block_sums_to<W + 1>(acc, partial + (row * gridDim.y + blockIdx.y) * (W + 1));
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

// Vector path: thread vectors i = 0..K-1 at vector index (blockIdx.y * K + i) * kThreads + threadIdx.x
// (step t0 = that * VEC). A vector past L holds zeros (exactly the causal padding on the right), so every
// lane can take part in the shuffles; only vectors with t0 < L are stored.
template <typename T, int W, int VEC, int K>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_vec_kernel(Conv1dParams p) {
  static_assert(VEC >= W - 1, "the neighbours must come from one vector");
  const int64_t row = blockIdx.x, d = row % p.dim, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* h0 = p.initial_state ? static_cast<const T*>(p.initial_state) + row * (W - 1) : nullptr;
  const int lane = threadIdx.x & 31;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  float cur[K][VEC], left[K][W - 1];
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int64_t t0 = ((int64_t(blockIdx.y) * K + i) * kThreads + threadIdx.x) * VEC;
    if (t0 < L) load_vec<VEC>(x + t0, cur[i]);
    else
#pragma unroll
      for (int k = 0; k < VEC; ++k) cur[i][k] = 0.0f;
#pragma unroll
    for (int k = 0; k < W - 1; ++k) left[i][k] = lane == 0 && t0 < L ? x_at<T, W>(x, h0, L, t0 - (W - 1) + k) : 0.0f;
  }
  T* out = static_cast<T*>(p.out) + row * L;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int64_t t0 = ((int64_t(blockIdx.y) * K + i) * kThreads + threadIdx.x) * VEC;
    float xs[VEC + W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) {
      const float nb = __shfl_up_sync(0xffffffffu, cur[i][VEC - (W - 1) + k], 1);
      xs[k] = lane == 0 ? left[i][k] : nb;
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) xs[W - 1 + k] = cur[i][k];
    if (t0 < L) {
      float o[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        float y = bias;
#pragma unroll
        for (int k = 0; k < W; ++k) y += w[k] * xs[j + k];
        o[j] = p.silu ? y / (1.0f + __expf(-y)) : y;
      }
      store_vec<VEC>(out + t0, o);
    }
  }
  if (p.final_state && blockIdx.y == 0 && threadIdx.x < W - 1) {
    const int k = threadIdx.x;
    static_cast<T*>(p.final_state)[row * (W - 1) + k] = from_f<T>(x_at<T, W>(x, h0, L, L - (W - 1) + k));
  }
}

template <typename T, int W, int VEC, int K>
__global__ void __launch_bounds__(kThreads) conv1d_bwd_vec_kernel(Conv1dParams p, float* partial) {
  static_assert(VEC >= W - 1, "the neighbours must come from one vector");
  const int64_t row = blockIdx.x, d = row % p.dim, L = p.seqlen;
  const T* x = static_cast<const T*>(p.x) + row * L;
  const T* dy = static_cast<const T*>(p.dout) + row * L;
  const T* h0 = p.initial_state ? static_cast<const T*>(p.initial_state) + row * (W - 1) : nullptr;
  const T* dfin = p.dfinal_state ? static_cast<const T*>(p.dfinal_state) + row * (W - 1) : nullptr;
  const int lane = threadIdx.x & 31;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  // x at t0 - (W-1) .. t0 + VEC - 1 + (W-1) and dout at t0 .. t0 + VEC - 1 + (W-1): the vectors, plus the
  // edges lane 0 (left x) and lane 31 (right x and dout) load themselves.
  float cx[K][VEC], cd[K][VEC], xl[K][W - 1], xr[K][W - 1], dr[K][W - 1];
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int64_t t0 = ((int64_t(blockIdx.y) * K + i) * kThreads + threadIdx.x) * VEC;
    const bool active = t0 < L;
    if (active) {
      load_vec<VEC>(x + t0, cx[i]);
      load_vec<VEC>(dy + t0, cd[i]);
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) cx[i][k] = cd[i][k] = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < W - 1; ++k) {
      xl[i][k] = lane == 0 && active ? x_at<T, W>(x, h0, L, t0 - (W - 1) + k) : 0.0f;
      xr[i][k] = lane == 31 && active ? x_at<T, W>(x, h0, L, t0 + VEC + k) : 0.0f;
      dr[i][k] = lane == 31 && active && t0 + VEC + k < L ? to_f(dy[t0 + VEC + k]) : 0.0f;
    }
  }
  float acc[W + 1];  // dweight[0..W), dbias
#pragma unroll
  for (int k = 0; k <= W; ++k) acc[k] = 0.0f;
  T* dxp = static_cast<T*>(p.dx) + row * L;
#pragma unroll
  for (int i = 0; i < K; ++i) {
    const int64_t t0 = ((int64_t(blockIdx.y) * K + i) * kThreads + threadIdx.x) * VEC;
    float xs[VEC + 2 * (W - 1)], dys[VEC + W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) {
      const float l = __shfl_up_sync(0xffffffffu, cx[i][VEC - (W - 1) + k], 1);
      const float r = __shfl_down_sync(0xffffffffu, cx[i][k], 1);
      const float rd = __shfl_down_sync(0xffffffffu, cd[i][k], 1);
      xs[k] = lane == 0 ? xl[i][k] : l;
      xs[W - 1 + VEC + k] = lane == 31 ? xr[i][k] : r;
      dys[VEC + k] = lane == 31 ? dr[i][k] : rd;
    }
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      xs[W - 1 + k] = cx[i][k];
      dys[k] = cd[i][k];
    }
    if (t0 < L) {
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
      for (int j = 0; j < VEC; ++j) {
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < W; ++k) v += g[j + W - 1 - k] * w[k];
        const int64_t f = t0 + j + (W - 1) - L;  // index into the final state, when >= 0
        if (dfin && f >= 0) v += to_f(dfin[f]);
        dx[j] = v;
#pragma unroll
        for (int k = 0; k < W; ++k) acc[k] += g[j] * xs[j + k];
        acc[W] += g[j];
      }
      store_vec<VEC>(dxp + t0, dx);
    }
  }
  block_sums_to<W + 1>(acc, partial + (row * gridDim.y + blockIdx.y) * (W + 1));
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

template <typename T, int W, int K>
void launch_vec(const Conv1dParams& p, cudaStream_t s, dim3 grid, float* partial) {
  constexpr int V = 16 / sizeof(T);
  if (partial) conv1d_bwd_vec_kernel<T, W, V, K><<<grid, kThreads, 0, s>>>(p, partial);
  else conv1d_fwd_vec_kernel<T, W, V, K><<<grid, kThreads, 0, s>>>(p);
}

template <typename T, int W>
void launch(const Conv1dParams& p, cudaStream_t s, bool backward) {
  constexpr int V = 16 / sizeof(T);
  const char* fn = backward ? "causalConv1dBackward" : "causalConv1d";
  const bool vec = p.seqlen % V == 0 && aligned(p.x, 16) && aligned(p.out ? p.out : p.dx, 16) &&
                   (!backward || aligned(p.dout, 16));
  // Vectors per thread: as many (up to 4) as fill a 128-thread chunk without leaving whole vectors idle.
  const int64_t L = p.seqlen;
  const int k = !vec ? 1 : L >= int64_t(kThreads) * V * 4 ? 4 : L >= int64_t(kThreads) * V * 2 ? 2 : 1;
  const int64_t step = vec ? int64_t(kThreads) * V * k : kThreads;
  const int64_t chunks = (L + step - 1) / step;
  if (chunks > 65535) fail(ErrorKind::Shape, fn, "x", "causalConv1d: sequence too long for the CUDA kernel");
  dim3 grid(static_cast<unsigned>(p.batch * p.dim), static_cast<unsigned>(chunks));
  Scratch partial(backward ? static_cast<size_t>(p.batch * p.dim * chunks * (W + 1)) * sizeof(float) : 0, fn);
  float* part = backward ? partial.as<float>() : nullptr;
  if (vec && k == 4) launch_vec<T, W, 4>(p, s, grid, part);
  else if (vec && k == 2) launch_vec<T, W, 2>(p, s, grid, part);
  else if (vec) launch_vec<T, W, 1>(p, s, grid, part);
  else if (backward) conv1d_bwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p, part);
  else conv1d_fwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p);
  check_launch(fn);
  if (!backward) return;
  conv1d_param_grad_kernel<W><<<cuda::grid_for(p.dim * (W + 1)), 256, 0, s>>>(part, p, chunks);
  check_launch(fn);
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
