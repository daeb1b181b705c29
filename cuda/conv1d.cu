// CUDA causal depthwise conv1d (kernel width 2..4, optional bias and SiLU, optional initial/final state for
// segments), forward and backward; math and shapes in Conv1dParams (native/fused_params.h), CPU twin in
// native/cpu/conv1d_cpu.cc; design notes and measurements in docs/kernels/fused.md.
// Vector path (L a multiple of the 16-byte vector width, aligned pointers): grid (dim, G), 128 threads; a block
// owns channel d (or 1/G of it), its warps walk (batch, segment) items of 32 x 4 vectors, each lane with 4
// independent 16-byte loads per tensor in flight; neighbours by one rotate shuffle per halo step; the backward
// sums dweight/dbias in registers over all the block's items and writes them once (G = 1) or as one partial
// per block (G > 1, added in block order by a second kernel): deterministic for a given device.
// Scalar path (any L or alignment): grid (batch * dim rows, chunks of 128 steps), one step per thread, the
// neighbours read as scalars (L1 hits); dweight/dbias partials per block, summed in a fixed order.
#include <algorithm>
#include <climits>
#include <cstring>

#include "fused.h"
#include "fused_common.cuh"

namespace mamba {
namespace {
using namespace fused;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;

// sigmoid with the approximate reciprocal: 1 / (1 + inf) = 0 for y < ~-88, as the exact quotient.
__device__ __forceinline__ float sigmoid_f(float y) { return __fdividef(1.0f, 1.0f + __expf(-y)); }
__device__ __forceinline__ float silu_f(float y) { return y * sigmoid_f(y); }
__device__ __forceinline__ float silu_grad(float y) {
  const float s = sigmoid_f(y);
  return s * (1.0f + y * (1.0f - s));
}

// Adds acc over the block (warp shuffles, then the warps in order: deterministic); thread 0's acc holds the
// sums on return.
template <int N>
__device__ __forceinline__ void block_sums(float (&acc)[N]) {
  __shared__ float red[N][kWarps];
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
      float s = red[k][0];
#pragma unroll
      for (int w = 1; w < kWarps; ++w) s += red[k][w];
      acc[k] = s;
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
      o[i] = p.silu ? silu_f(y) : y;
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
  block_sums<W + 1>(acc);
  if (threadIdx.x == 0)
#pragma unroll
    for (int k = 0; k <= W; ++k) partial[(row * gridDim.y + blockIdx.y) * (W + 1) + k] = acc[k];
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

// ---- vector path: L a multiple of V = 16 / sizeof(T), 16-byte aligned x / out / dout / dx ----
// A block (kWarps warps) owns one channel d (or a 1/G share of it, grid.y = G); its warps walk the channel's
// items, item j = (batch b = j / nseg, segment s = j % nseg), with a stride of G * kWarps warps. A segment is
// kVecs * 32 consecutive 16-byte vectors of row (b, d); lane l holds vectors s * 32 * kVecs + i * 32 + l,
// i < kVecs, all loaded (2 * kVecs loads in the backward) before the first use. Vectors past the row end
// hold zeros (the causal padding on the right, and g = 0 there). Neighbours: the previous vector's last W-1
// steps come from lane l-1 (lane 0: lane 31 of vector i-1) by one rotate shuffle each; only lane 0 of
// vector 0 reads them from memory (or the initial state). The backward shuffles g (the gradient of the
// pre-activation) from the right instead of recomputing SiLU' there; lane 31 of the last vector computes the
// W-1 g values after the segment from a memory halo.

constexpr int kVecs = 4;    // 16-byte vectors per lane per tensor per item

// Resident blocks per SM the backward vector kernel is compiled for (its register cap): 1 lets ptxas use
// ~96 registers (5 blocks/SM, no spills); 6 caps it at 80 (a few bytes of spills in some instantiations).
#ifndef MAMBA_CONV1D_BWD_MIN_BLOCKS
#define MAMBA_CONV1D_BWD_MIN_BLOCKS 1
#endif

template <typename T> struct Vec16;  // element count of 16 bytes, and the float32 <-> 16-byte conversions
template <> struct Vec16<float> {
  static constexpr int N = 4;
  static __device__ __forceinline__ void unpack(const uint4& r, float (&f)[4]) {
    f[0] = __uint_as_float(r.x); f[1] = __uint_as_float(r.y); f[2] = __uint_as_float(r.z); f[3] = __uint_as_float(r.w);
  }
  static __device__ __forceinline__ uint4 pack(const float (&f)[4]) {
    return make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
  }
};
// 16-bit types: element 2k in the low half of word k (little-endian), as in memory.
template <> struct Vec16<__nv_bfloat16> {
  static constexpr int N = 8;
  static __device__ __forceinline__ void unpack(const uint4& r, float (&f)[8]) {
    const unsigned u[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      f[2 * k] = __uint_as_float(u[k] << 16);
      f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
    }
  }
  static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    unsigned u;
    memcpy(&u, &h, 4);
    return u;
  }
  static __device__ __forceinline__ uint4 pack(const float (&f)[8]) {
    return make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
  }
};
template <> struct Vec16<__half> {
  static constexpr int N = 8;
  static __device__ __forceinline__ void unpack(const uint4& r, float (&f)[8]) {
    const unsigned u[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      f[2 * k] = __half2float(__ushort_as_half(static_cast<unsigned short>(u[k] & 0xffffu)));
      f[2 * k + 1] = __half2float(__ushort_as_half(static_cast<unsigned short>(u[k] >> 16)));
    }
  }
  static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    unsigned u;
    memcpy(&u, &h, 4);
    return u;
  }
  static __device__ __forceinline__ uint4 pack(const float (&f)[8]) {
    return make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
  }
};

// The value lane - 1 holds (lane 0: lane 31's) and the value lane + 1 holds (lane 31: lane 0's).
__device__ __forceinline__ float from_left(float v, int lane) { return __shfl_sync(0xffffffffu, v, (lane + 31) & 31); }
__device__ __forceinline__ float from_right(float v, int lane) { return __shfl_sync(0xffffffffu, v, (lane + 1) & 31); }

// Lane 0: the W-1 input steps before a segment starting at step t0 of row `row` (x points at the row): from x,
// or before step 0 from the initial conv state h0 (batch*dim, W-1) if given, else zeros. Other lanes: zeros.
template <typename T, int W>
__device__ __forceinline__ void left_halo(const T* x, const void* h0, int64_t row, int64_t t0, int lane,
                                          float (&halo)[W - 1]) {
#pragma unroll
  for (int k = 0; k < W - 1; ++k) halo[k] = 0.0f;
  if (lane != 0) return;
  if (t0 > 0) {
#pragma unroll
    for (int k = 0; k < W - 1; ++k) halo[k] = to_f(x[t0 - (W - 1) + k]);
  } else if (h0) {
    const T* h = static_cast<const T*>(h0) + row * (W - 1);
#pragma unroll
    for (int k = 0; k < W - 1; ++k) halo[k] = to_f(h[k]);
  }
}

// The W-1 + V input steps a lane's vector of V steps needs: the last W-1 steps of the previous lane's vector (lane
// 0: the segment's left halo for its first vector, else lane 31's previous vector, kept in prev), then its own c.
template <int V, int W>
__device__ __forceinline__ void conv_window(const float (&c)[V], int lane, bool first, const float (&halo)[W - 1],
                                            float (&prev)[W - 1], float (&xs)[V + W - 1]) {
#pragma unroll
  for (int k = 0; k < W - 1; ++k) {
    const float r = from_left(c[V - (W - 1) + k], lane);
    xs[k] = lane != 0 ? r : first ? halo[k] : prev[k];
    prev[k] = r;
  }
#pragma unroll
  for (int k = 0; k < V; ++k) xs[W - 1 + k] = c[k];
}

template <typename T, int W, bool SILU>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_vec_kernel(Conv1dParams p, int64_t nseg) {
  using VT = Vec16<T>;
  constexpr int V = VT::N, SV = 32 * kVecs;  // steps per vector, vectors per segment
  static_assert(V >= W - 1, "the neighbours must come from one vector");
  const int64_t d = blockIdx.x, L = p.seqlen, nvec = L / V, items = p.batch * nseg;
  const int lane = threadIdx.x & 31;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  const int64_t nw = int64_t(gridDim.y) * kWarps;
  for (int64_t j = int64_t(blockIdx.y) * kWarps + (threadIdx.x >> 5); j < items; j += nw) {  // warp-uniform
    const int64_t b = j / nseg, s = j - b * nseg, row = b * p.dim + d;
    const T* x = static_cast<const T*>(p.x) + row * L;
    const int64_t v0 = s * SV + lane;  // this lane's vector i is v0 + 32 i
    uint4 raw[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t v = v0 + 32 * i;
      raw[i] = v < nvec ? *reinterpret_cast<const uint4*>(x + v * V) : make_uint4(0u, 0u, 0u, 0u);
    }
    float halo[W - 1];  // lane 0: the W-1 steps before the segment (initial state or zeros before step 0)
    left_halo<T, W>(x, p.initial_state, row, s * SV * V, lane, halo);
    T* out = static_cast<T*>(p.out) + row * L;
    float prev[W - 1];  // lane 0: the last W-1 steps of lane 31's previous vector
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      float xs[V + W - 1];  // steps t0 - (W-1) .. t0 + V - 1
      float c[V];
      VT::unpack(raw[i], c);
      conv_window<V, W>(c, lane, i == 0, halo, prev, xs);
      const int64_t v = v0 + 32 * i;
      if (v < nvec) {
        float o[V];
#pragma unroll
        for (int t = 0; t < V; ++t) {
          float y = bias;
#pragma unroll
          for (int k = 0; k < W; ++k) y = fmaf(w[k], xs[t + k], y);
          o[t] = SILU ? silu_f(y) : y;
        }
        *reinterpret_cast<uint4*>(out + v * V) = VT::pack(o);
        if (p.final_state && v == nvec - 1) {  // L >= V >= W-1: the final state is the row's last W-1 steps
          T* fin = static_cast<T*>(p.final_state) + row * (W - 1);
#pragma unroll
          for (int k = 0; k < W - 1; ++k) fin[k] = from_f<T>(c[V - (W - 1) + k]);
        }
      }
    }
  }
}

// g = dL/dy at one step from the pre-activation's inputs xs[0..W) and dout.
template <int W, bool SILU>
__device__ __forceinline__ float grad_y(const float (&w)[W], float bias, const float* xs, float dy) {
  if (!SILU) return dy;
  float y = bias;
#pragma unroll
  for (int k = 0; k < W; ++k) y = fmaf(w[k], xs[k], y);
  return dy * silu_grad(y);
}

// Backward over the same items: dx written per vector; dweight/dbias summed in registers over all the items
// of the block, then over the block; written directly (G = 1) or as one partial per block (G > 1, summed by
// conv1d_param_grad_kernel in block order).
template <typename T, int W, bool SILU>
__global__ void __launch_bounds__(kThreads, MAMBA_CONV1D_BWD_MIN_BLOCKS) conv1d_bwd_vec_kernel(Conv1dParams p, int64_t nseg, float* partial) {
  using VT = Vec16<T>;
  constexpr int V = VT::N, SV = 32 * kVecs;
  static_assert(V >= W - 1, "the neighbours must come from one vector");
  const int64_t d = blockIdx.x, L = p.seqlen, nvec = L / V, items = p.batch * nseg;
  const int lane = threadIdx.x & 31;
  float w[W];
#pragma unroll
  for (int k = 0; k < W; ++k) w[k] = load_any(p.weight, d * W + k, p.wdtype);
  const float bias = p.bias ? load_any(p.bias, d, p.wdtype) : 0.0f;
  float acc[W + 1];  // dweight[0..W), dbias
#pragma unroll
  for (int k = 0; k <= W; ++k) acc[k] = 0.0f;
  const int64_t nw = int64_t(gridDim.y) * kWarps;
  for (int64_t j = int64_t(blockIdx.y) * kWarps + (threadIdx.x >> 5); j < items; j += nw) {  // warp-uniform
    const int64_t b = j / nseg, s = j - b * nseg, row = b * p.dim + d;
    const T* x = static_cast<const T*>(p.x) + row * L;
    const T* dy = static_cast<const T*>(p.dout) + row * L;
    const int64_t v0 = s * SV + lane;
    uint4 rx[kVecs], rd[kVecs];
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      const int64_t v = v0 + 32 * i;
      const bool in = v < nvec;
      rx[i] = in ? *reinterpret_cast<const uint4*>(x + v * V) : make_uint4(0u, 0u, 0u, 0u);
      rd[i] = in ? *reinterpret_cast<const uint4*>(dy + v * V) : make_uint4(0u, 0u, 0u, 0u);
    }
    // Lane 0: x for the W-1 steps before the segment. Lane 31: x and dout for the W-1 steps after it (0 past L).
    float xl[W - 1], xr[W - 1], dr[W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) xr[k] = dr[k] = 0.0f;
    left_halo<T, W>(x, p.initial_state, row, s * SV * V, lane, xl);
    if (lane == 31) {
      const int64_t t = (s + 1) * SV * V;
#pragma unroll
      for (int k = 0; k < W - 1; ++k)
        if (t + k < L) {
          xr[k] = to_f(x[t + k]);
          dr[k] = to_f(dy[t + k]);
        }
    }
    T* dxr = static_cast<T*>(p.dx) + row * L;
    float prev[W - 1];   // lane 0: the last W-1 x steps of lane 31's previous vector
    float gp[V];         // g of the previous vector
    float qp[W - 1];     // the first W-1 g of lane + 1's previous vector
    float xt[W - 1];     // the last W-1 x steps of the current vector
    // dx of vector i from its g (gv), the first W-1 g of the next vector (gn), and the final-state gradient.
    auto emit = [&](int i, const float (&gv)[V], const float (&gn)[W - 1]) {
      const int64_t v = v0 + 32 * i;
      if (v >= nvec) return;
      float gs[V + W - 1];
#pragma unroll
      for (int k = 0; k < V; ++k) gs[k] = gv[k];
#pragma unroll
      for (int k = 0; k < W - 1; ++k) gs[V + k] = gn[k];
      float o[V];
#pragma unroll
      for (int t = 0; t < V; ++t) {
        float a = 0.0f;
#pragma unroll
        for (int k = 0; k < W; ++k) a = fmaf(w[k], gs[t + W - 1 - k], a);
        o[t] = a;
      }
      if (p.dfinal_state && v == nvec - 1) {  // the row's last W-1 steps are the final state
        const T* dfin = static_cast<const T*>(p.dfinal_state) + row * (W - 1);
#pragma unroll
        for (int t = V - (W - 1); t < V; ++t) o[t] += to_f(dfin[t - (V - (W - 1))]);
      }
      *reinterpret_cast<uint4*>(dxr + v * V) = VT::pack(o);
    };
#pragma unroll
    for (int i = 0; i < kVecs; ++i) {
      float xs[V + W - 1], g[V], dv[V];
      float c[V];
      VT::unpack(rx[i], c);
      VT::unpack(rd[i], dv);
      conv_window<V, W>(c, lane, i == 0, xl, prev, xs);
#pragma unroll
      for (int t = 0; t < V; ++t) {
        g[t] = grad_y<W, SILU>(w, bias, xs + t, dv[t]);
#pragma unroll
        for (int k = 0; k < W; ++k) acc[k] = fmaf(g[t], xs[t + k], acc[k]);
        acc[W] += g[t];
      }
      float q[W - 1];
#pragma unroll
      for (int k = 0; k < W - 1; ++k) q[k] = from_right(g[k], lane);
      if (i > 0) {  // the previous vector's right neighbour is lane + 1's previous vector, or (lane 31) lane 0's
        float gn[W - 1];
#pragma unroll
        for (int k = 0; k < W - 1; ++k) gn[k] = lane != 31 ? qp[k] : q[k];
        emit(i - 1, gp, gn);
      }
      if (p.dinitial_state && i == 0 && s == 0 && lane == 0) {  // vector 0 of the row holds steps 0..W-2
        T* dh0 = static_cast<T*>(p.dinitial_state) + row * (W - 1);
#pragma unroll
        for (int m = 0; m < W - 1; ++m) {
          float a = 0.0f;
#pragma unroll
          for (int k = 0; k <= m; ++k) a = fmaf(w[k], g[m - k], a);
          dh0[m] = from_f<T>(a);
        }
      }
#pragma unroll
      for (int k = 0; k < V; ++k) gp[k] = g[k];
#pragma unroll
      for (int k = 0; k < W - 1; ++k) {
        qp[k] = q[k];
        xt[k] = c[V - (W - 1) + k];
      }
    }
    // The last vector: lane 31's right neighbour is the next segment; its first W-1 g come from the halo
    // (computed on every lane, used on lane 31 only).
    float gh[W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) {
      float xw[W];  // steps e + k - (W-1) .. e + k, e = the first step after the segment
#pragma unroll
      for (int m = 0; m < W; ++m) xw[m] = k + m < W - 1 ? xt[k + m] : xr[k + m - (W - 1)];
      gh[k] = grad_y<W, SILU>(w, bias, xw, dr[k]);
    }
    float gn[W - 1];
#pragma unroll
    for (int k = 0; k < W - 1; ++k) gn[k] = lane != 31 ? qp[k] : gh[k];
    emit(kVecs - 1, gp, gn);
  }
  block_sums<W + 1>(acc);
  if (threadIdx.x != 0) return;
  if (partial) {
    float* dst = partial + (d * gridDim.y + blockIdx.y) * (W + 1);
#pragma unroll
    for (int k = 0; k <= W; ++k) dst[k] = acc[k];
  } else {
#pragma unroll
    for (int k = 0; k < W; ++k) store_any(p.dweight, d * W + k, p.wdtype, acc[k]);
    if (p.dbias) store_any(p.dbias, d, p.wdtype, acc[W]);
  }
}

// dweight[d, k] (k < W) and dbias[d] (k == W): partial (outer, dim, chunks, W + 1) summed over outer and chunks
// in order. Scalar path: outer = batch, chunks = sequence chunks; vector path: outer = 1, chunks = G.
template <int W>
__global__ void conv1d_param_grad_kernel(const float* partial, Conv1dParams p, int64_t outer, int64_t chunks) {
  const int64_t n = p.dim * (W + 1);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = e / (W + 1);
    const int k = static_cast<int>(e % (W + 1));
    if (k == W && !p.dbias) continue;
    float s = 0.0f;
    for (int64_t b = 0; b < outer; ++b)
      for (int64_t c = 0; c < chunks; ++c) s += partial[((b * p.dim + d) * chunks + c) * (W + 1) + k];
    if (k < W) store_any(p.dweight, d * W + k, p.wdtype, s);
    else store_any(p.dbias, d, p.wdtype, s);
  }
}

// Blocks per channel (G) for the vector kernels: the power of two, each warp keeping at least one item, with
// the fewest (waves of resident blocks) x (items per warp + 1), the smaller G on ties; the + 1 stands for a
// block's start (weights, the first loads with nothing to overlap). A model of the time, not a measurement;
// it depends on the SM count and the kernel's occupancy, so the grid (and the order of the dweight sums)
// is fixed for a given shape and device.
int64_t groups_for(int64_t dim, int64_t items, int64_t resident) {
  const int64_t gmax = std::min<int64_t>((items + kWarps - 1) / kWarps, 65535);
  int64_t best = 1, best_cost = INT64_MAX;
  for (int64_t g = 1; g <= gmax; g *= 2) {
    const int64_t waves = (dim * g + resident - 1) / resident;
    const int64_t per_warp = (items + kWarps * g - 1) / (kWarps * g);
    if (waves * (per_warp + 1) < best_cost) {
      best_cost = waves * (per_warp + 1);
      best = g;
    }
  }
  return best;
}

template <typename Kernel>
int64_t resident_blocks(Kernel kernel, const char* fn) {
  int per_sm = 0;
  cuda::check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0), fn);
  return int64_t(std::max(per_sm, 1)) * sm_count();
}

template <typename T, int W, bool SILU>
void launch_vec(const Conv1dParams& p, cudaStream_t s, bool backward, const char* fn) {
  constexpr int64_t V = Vec16<T>::N, SV = 32 * kVecs;
  const int64_t nvec = p.seqlen / V, nseg = (nvec + SV - 1) / SV, items = p.batch * nseg;
  if (!backward) {
    static const int64_t resident = resident_blocks(conv1d_fwd_vec_kernel<T, W, SILU>, fn);
    const dim3 grid(static_cast<unsigned>(p.dim), static_cast<unsigned>(groups_for(p.dim, items, resident)));
    conv1d_fwd_vec_kernel<T, W, SILU><<<grid, kThreads, 0, s>>>(p, nseg);
    check_launch(fn);
    return;
  }
  static const int64_t resident = resident_blocks(conv1d_bwd_vec_kernel<T, W, SILU>, fn);
  const int64_t groups = groups_for(p.dim, items, resident);
  const dim3 grid(static_cast<unsigned>(p.dim), static_cast<unsigned>(groups));
  Scratch partial(groups > 1 ? static_cast<size_t>(p.dim * groups * (W + 1)) * sizeof(float) : 0, fn);
  conv1d_bwd_vec_kernel<T, W, SILU><<<grid, kThreads, 0, s>>>(p, nseg, partial.as<float>());
  check_launch(fn);
  if (groups == 1) return;
  conv1d_param_grad_kernel<W><<<cuda::grid_for(p.dim * (W + 1)), 256, 0, s>>>(partial.as<float>(), p, 1, groups);
  check_launch(fn);
}

template <typename T, int W>
void launch(const Conv1dParams& p, cudaStream_t s, bool backward) {
  constexpr int V = 16 / sizeof(T);
  const char* fn = backward ? "causalConv1dBackward" : "causalConv1d";
  const bool vec = p.seqlen % V == 0 && aligned(p.x, 16) && aligned(p.out ? p.out : p.dx, 16) &&
                   (!backward || aligned(p.dout, 16));
  if (vec && p.dim <= INT32_MAX) {
    if (p.silu) launch_vec<T, W, true>(p, s, backward, fn);
    else launch_vec<T, W, false>(p, s, backward, fn);
    return;
  }
  // Scalar path: grid (batch * dim rows, chunks of kThreads steps), one step per thread.
  const int64_t chunks = (p.seqlen + kThreads - 1) / kThreads;
  if (chunks > 65535) fail(ErrorKind::Shape, fn, "x", "causalConv1d: sequence too long for the CUDA kernel");
  dim3 grid(static_cast<unsigned>(p.batch * p.dim), static_cast<unsigned>(chunks));
  if (!backward) {
    conv1d_fwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p);
    check_launch(fn);
    return;
  }
  Scratch partial(static_cast<size_t>(p.batch * p.dim * chunks * (W + 1)) * sizeof(float), fn);
  conv1d_bwd_kernel<T, W, 1><<<grid, kThreads, 0, s>>>(p, partial.as<float>());
  check_launch(fn);
  conv1d_param_grad_kernel<W><<<cuda::grid_for(p.dim * (W + 1)), 256, 0, s>>>(partial.as<float>(), p, p.batch, chunks);
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
