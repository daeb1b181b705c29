// Device helpers shared by the selective-scan forward and backward kernels: the tiling constants, dtype
// load/store of a lane's run of kItems consecutive time steps, B/C slab staging into shared memory, the
// cross-lane affine scans, and small math helpers. See docs/kernels/selective_scan.md for the design.
//
// Tiling used by both directions: a block owns kWarps channels of one batch row b (all inside one B/C group);
// warp w owns channel d, and lane l owns time steps [c*kChunk + l*kItems, +kItems) of the current chunk c,
// so one warp-chunk spans kCkptPerChunk checkpoint intervals (kScanCheckpointChunk steps each). States are walked in
// slabs of kSlab whose B/C rows (kSlab, kChunk) are staged once per block in shared memory as fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include "../native/params.h"
#include "red.cuh"

namespace mamba {
namespace ss {

constexpr int kWarps = 8;                   // channels per block
constexpr int kThreads = kWarps * 32;
constexpr int kItems = 8;                   // consecutive time steps per lane
constexpr int kChunk = 32 * kItems;         // time steps per warp-chunk
constexpr int kSlab = 16;                   // states staged in shared memory at a time
constexpr float kLog2e = 1.4426950408889634f;
// Minimum resident blocks per SM asked of the compiler (caps registers at 65536 / (kThreads * n)). The backward
// needs ~200 registers uncapped (one block per SM); capped at 128 it spills ~150 bytes per thread to L1 but keeps
// twice the warps resident. Override at build time (-DMAMBA_SS_BWD_MIN_BLOCKS=1) to compare on the GPU.
#ifndef MAMBA_SS_FWD_MIN_BLOCKS
#define MAMBA_SS_FWD_MIN_BLOCKS 2
#endif
#ifndef MAMBA_SS_BWD_MIN_BLOCKS
#define MAMBA_SS_BWD_MIN_BLOCKS 2
#endif
// A warp-chunk spans kCkptPerChunk checkpoint intervals; the lanes starting one are kLanesPerCkpt apart.
constexpr int kCkptPerChunk = kChunk / kScanCheckpointChunk;
constexpr int kLanesPerCkpt = kScanCheckpointChunk / kItems;
static_assert(kChunk % kScanCheckpointChunk == 0 && kScanCheckpointChunk % kItems == 0,
              "checkpoints fall on lane boundaries of a warp-chunk");
static_assert(kThreads == kChunk, "the backward reduces one time step per thread");

__host__ __device__ inline int num_chunks(int L) { return L <= 0 ? 0 : (L + kChunk - 1) / kChunk; }
// Device copy of scan_num_checkpoints (params.h is host-only).
__host__ __device__ inline int num_ckpts(int L) {
  return L <= 0 ? 0 : (L + kScanCheckpointChunk - 1) / kScanCheckpointChunk;
}

// Storage type of the activations (u, delta, z, B, C, out and their gradients) and its fp32 conversions.
template <DType kType> struct IO;
template <> struct IO<DType::Float32> {
  using raw = float;
  static __device__ __forceinline__ float load(raw x) { return x; }
  static __device__ __forceinline__ raw store(float x) { return x; }
};
template <> struct IO<DType::Float16> {
  using raw = uint16_t;
  static __device__ __forceinline__ float load(raw x) { return __half2float(__ushort_as_half(x)); }
  static __device__ __forceinline__ raw store(float x) { return __half_as_ushort(__float2half_rn(x)); }
};
template <> struct IO<DType::BFloat16> {
  using raw = uint16_t;
  static __device__ __forceinline__ float load(raw x) { return __uint_as_float(static_cast<uint32_t>(x) << 16); }
  static __device__ __forceinline__ raw store(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
};

// True when rows of length L starting at `ptr` allow 16-byte vector access of kItems-aligned runs.
__host__ __device__ inline bool rows_vectorizable(const void* ptr, int L) {
  return ptr != nullptr && (reinterpret_cast<uintptr_t>(ptr) % 16 == 0) && (L % kItems == 0);
}

// v[i] = row[t0 + i] for t0 + i < L, else 0. `vec`: see rows_vectorizable (then t0 + kItems <= L or t0 >= L).
template <class Io>
__device__ __forceinline__ void load_items(const typename Io::raw* row, int t0, int L, bool vec, float (&v)[kItems]) {
  if (vec && t0 + kItems <= L) {
    if constexpr (sizeof(typename Io::raw) == 4) {
      const float4 a = *reinterpret_cast<const float4*>(row + t0);
      const float4 b = *reinterpret_cast<const float4*>(row + t0 + 4);
      v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
      v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
      const uint4 a = *reinterpret_cast<const uint4*>(row + t0);
      const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        v[2 * i] = Io::load(static_cast<typename Io::raw>(w[i] & 0xffffu));
        v[2 * i + 1] = Io::load(static_cast<typename Io::raw>(w[i] >> 16));
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i) v[i] = t0 + i < L ? Io::load(row[t0 + i]) : 0.f;
  }
}

// row[t0 + i] = v[i] for t0 + i < L.
template <class Io>
__device__ __forceinline__ void store_items(typename Io::raw* row, int t0, int L, bool vec, const float (&v)[kItems]) {
  if (vec && t0 + kItems <= L) {
    if constexpr (sizeof(typename Io::raw) == 4) {
      *reinterpret_cast<float4*>(row + t0) = make_float4(v[0], v[1], v[2], v[3]);
      *reinterpret_cast<float4*>(row + t0 + 4) = make_float4(v[4], v[5], v[6], v[7]);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        w[i] = static_cast<uint32_t>(Io::store(v[2 * i])) | (static_cast<uint32_t>(Io::store(v[2 * i + 1])) << 16);
      *reinterpret_cast<uint4*>(row + t0) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kItems; ++i)
      if (t0 + i < L) row[t0 + i] = Io::store(v[i]);
  }
}

#ifndef MAMBA_SS_ASYNC_STAGE
#define MAMBA_SS_ASYNC_STAGE 1
#endif

// 16-byte global -> shared copy that completes asynchronously; src_bytes 0 fills zeros. cp.async needs
// sm_80: older targets (the sm_75 build of the default architecture list) copy synchronously instead.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
#if __CUDA_ARCH__ >= 800
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
#else
  *static_cast<int4*>(dst) = src_bytes ? *static_cast<const int4*>(src) : make_int4(0, 0, 0, 0);
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

// Stages the B/C slab of one (chunk, state slab) unit into fp32 shared memory (kSlab, kChunk), one run of kItems steps per
// thread and row. When a matrix's rows allow 16-byte copies, the next unit is prefetched with cp.async into a raw-dtype
// buffer while the current one is scanned; each thread copies and later converts the same runs, so it only waits
// for its own copies, and the caller's barriers order the fp32 buffers. Other rows are loaded synchronously.
template <class Io>
struct SlabStager {
  using raw = typename Io::raw;
  static constexpr int kRuns = kChunk / kItems;  // runs per state row
  static constexpr int kRawBytes = 2 * kSlab * kChunk * static_cast<int>(sizeof(raw));  // shared bytes needed
  raw* rawB;
  raw* rawC;
  const raw* Bg;
  const raw* Cg;
  int L, N;
  bool varB, varC, asyncB, asyncC;

  __device__ SlabStager(void* raw_smem, const raw* B, const raw* C, int L_, int N_, bool var_b, bool var_c,
                        bool vec_b, bool vec_c)
      : rawB(static_cast<raw*>(raw_smem)), rawC(static_cast<raw*>(raw_smem) + kSlab * kChunk), Bg(B), Cg(C), L(L_),
        N(N_), varB(var_b), varC(var_c), asyncB(MAMBA_SS_ASYNC_STAGE && var_b && vec_b),
        asyncC(MAMBA_SS_ASYNC_STAGE && var_c && vec_c) {}

  // Starts the copies of unit (c0, s0): steps [c0, c0 + kChunk), states [s0, s0 + kSlab).
  __device__ void issue(int c0, int s0) {
    if (!asyncB && !asyncC) return;
    const int ns = min(kSlab, N - s0);
#pragma unroll
    for (int k = 0; k < kSlab * kRuns / kThreads; ++k) {
      const int r = threadIdx.x + k * kThreads;
      const int n = r / kRuns, off = (r % kRuns) * kItems;
      if (n >= ns) continue;
      const bool in = c0 + off < L;  // rows are vectorizable: a run is wholly inside or outside [0, L)
      const size_t g = static_cast<size_t>(s0 + n) * L + (in ? c0 + off : 0);
#pragma unroll
      for (int q = 0; q < kItems * static_cast<int>(sizeof(raw)) / 16; ++q) {
        const int e = q * 16 / static_cast<int>(sizeof(raw));
        if (asyncB) cp_async16(rawB + n * kChunk + off + e, Bg + g + e, in ? 16 : 0);
        if (asyncC) cp_async16(rawC + n * kChunk + off + e, Cg + g + e, in ? 16 : 0);
      }
    }
    cp_async_commit();
  }

  // Completes unit (c0, s0) into sB / sC (fp32, (kSlab, kChunk)); steps >= L are zero.
  __device__ void land(float* sB, float* sC, int c0, int s0, bool vec_b, bool vec_c) {
    if (asyncB || asyncC) cp_async_wait_all();
    const int ns = min(kSlab, N - s0);
#pragma unroll
    for (int k = 0; k < kSlab * kRuns / kThreads; ++k) {
      const int r = threadIdx.x + k * kThreads;
      const int n = r / kRuns, off = (r % kRuns) * kItems;
      if (n >= ns) continue;
#pragma unroll
      for (int m = 0; m < 2; ++m) {
        if (!(m == 0 ? varB : varC)) continue;
        float v[kItems];
        if (m == 0 ? asyncB : asyncC)
          load_items<Io>((m == 0 ? rawB : rawC) + n * kChunk, off, kChunk, true, v);
        else
          load_items<Io>((m == 0 ? Bg : Cg) + static_cast<size_t>(s0 + n) * L, c0 + off, L, m == 0 ? vec_b : vec_c, v);
        float4* out = reinterpret_cast<float4*>((m == 0 ? sB : sC) + n * kChunk + off);
        out[0] = make_float4(v[0], v[1], v[2], v[3]);
        out[1] = make_float4(v[4], v[5], v[6], v[7]);
      }
    }
  }
};

// A lane's kItems values of one staged state row.
__device__ __forceinline__ void read_items(const float* __restrict__ src, int lane, float (&v)[kItems]) {
  const float4* s = reinterpret_cast<const float4*>(src + lane * kItems);
  const float4 a = s[0], b = s[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

__device__ __forceinline__ void write_items(float* __restrict__ dst, int lane, const float (&v)[kItems]) {
  float4* s = reinterpret_cast<float4*>(dst + lane * kItems);
  s[0] = make_float4(v[0], v[1], v[2], v[3]);
  s[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// 2^x on the MUFU (2 ulp; decays are in (0, 1]).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// One step of the recurrence for a lane's 4 states: h <- exp2(dt * A2) * h + (dt * u) * B (A2 = A * log2(e)).
__device__ __forceinline__ void state_step4(float (&h)[4], const float (&A2)[4], float dt, float dtu, float4 bv) {
  h[0] = fmaf(fast_exp2(dt * A2[0]), h[0], dtu * bv.x);
  h[1] = fmaf(fast_exp2(dt * A2[1]), h[1], dtu * bv.y);
  h[2] = fmaf(fast_exp2(dt * A2[2]), h[2], dtu * bv.z);
  h[3] = fmaf(fast_exp2(dt * A2[3]), h[3], dtu * bv.w);
}

// 16-bit B/C of one chunk staged for the dstate-16 step loops, left 16-bit (exact; widened when read): step t's
// 64 bytes hold, for each lane j (states 4j .. 4j+3), B then C, 4 values each, so one 16-byte load per lane-step
// gives both (4 shared-memory wavefronts per warp; two fp32 float4 loads take 8). bc16_slot: the element offset
// of B (m 0) or C (m 1) of state n at step t; as uint4, lane j's B and C of step t are element 4 t + j.
__device__ __forceinline__ int bc16_slot(int m, int n, int t) { return t * 32 + (n / 4) * 8 + m * 4 + n % 4; }

// Four 16-bit values (two words of a bc16_slot buffer) as fp32.
template <class Io>
__device__ __forceinline__ float4 widen4(uint32_t w0, uint32_t w1) {
  using raw = typename Io::raw;
  static_assert(sizeof(raw) == 2, "16-bit types only");
  return make_float4(Io::load(static_cast<raw>(w0 & 0xffffu)), Io::load(static_cast<raw>(w0 >> 16)),
                     Io::load(static_cast<raw>(w1 & 0xffffu)), Io::load(static_cast<raw>(w1 >> 16)));
}

// Reduce-scatter of 8 steps' partial sums over the 4 lanes of a channel that differ in the lane bits xa and xb: lanes
// with hiA (bit xa set) keep steps 4-7 and send 0-3 (xor xa), the others the reverse; then of those four, lanes with
// hiB (bit xb) keep the upper pair. out[0], out[1]: the lane's 2 steps summed over the 4 lanes.
__device__ __forceinline__ void reduce_scatter8(const float (&y)[8], bool hiA, bool hiB, int xa, int xb, float* out) {
  float q[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) q[i] = (hiA ? y[4 + i] : y[i]) + __shfl_xor_sync(0xffffffffu, hiA ? y[i] : y[4 + i], xa);
#pragma unroll
  for (int i = 0; i < 2; ++i)
    out[i] = (hiB ? q[2 + i] : q[i]) + __shfl_xor_sync(0xffffffffu, hiB ? q[i] : q[2 + i], xb);
}

// Two adjacent values of a row (dst 4-byte aligned for 16-bit types, 8-byte for fp32), one store.
template <class Io>
__device__ __forceinline__ void store_pair(typename Io::raw* dst, float a, float b) {
  if constexpr (sizeof(typename Io::raw) == 4) {
    *reinterpret_cast<float2*>(dst) = make_float2(a, b);
  } else {
    *reinterpret_cast<uint32_t*>(dst) =
        static_cast<uint32_t>(Io::store(a)) | (static_cast<uint32_t>(Io::store(b)) << 16);
  }
}

// One segment of a time-split carry walk for a lane's 4 states: x <- exp2(A2 * S) * x + loc, where S is the
// segment's sum of dt and loc its local summary (end state from 0 forwards, adjoint from 0 backwards). Once per
// segment, so the full-range exp2f rather than the MUFU approximation.
__device__ __forceinline__ void carry_segment(float (&x)[4], const float (&A2)[4], float S, float4 loc) {
  x[0] = fmaf(exp2f(A2[0] * S), x[0], loc.x);
  x[1] = fmaf(exp2f(A2[1] * S), x[1], loc.y);
  x[2] = fmaf(exp2f(A2[2] * S), x[2], loc.z);
  x[3] = fmaf(exp2f(A2[3] * S), x[3], loc.w);
}

// e^x and 1/x as single MUFU instructions. The .ftz forms: the non-ftz __expf / __fdividef add a
// range test and two scaling multiplies around each MUFU op for subnormal inputs and results, a third of the
// per-element conversion work of the scan kernels. What flushing changes here: exp results below 2^-126
// (arguments under -87.3) become 0, so softplus(x) is 0 rather than ~1e-38 there and sigmoid(x) 0 below x = -87.3;
// reciprocals of values above 2^126 become 0 (1/inf was 0 already).
__device__ __forceinline__ float mufu_exp(float x) { return fast_exp2(x * kLog2e); }
__device__ __forceinline__ float mufu_rcp(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// 1 / (1 + exp(-x)) with the MUFU exp and reciprocal; exp overflow gives 1/inf = 0, as it should.
__device__ __forceinline__ float sigmoidf_fast(float x) { return mufu_rcp(1.f + mufu_exp(-x)); }

// log1p(e) for e = exp(-|x|) in [0, 1]: e * q(e) with q a degree-8 polynomial fitted for minimax relative error
// on [0, 1] (3e-8 in exact arithmetic; 2.2e-7 at worst over every float in [0, 1] in this fmaf Horner form, host
// check; nine FMA-pipe instructions). It replaced a 7-term series below e = 1/8 selected against the MUFU log
// above (12 instructions, one of them MUFU): the scan kernels' decays keep the MUFU pipe busy, so the
// conversion's log is better spent on the FMA pipe.
__device__ __forceinline__ float log1p_unit(float e) {
  float q = 0.005232715f;
  q = fmaf(q, e, -0.029505335f);
  q = fmaf(q, e, 0.078226134f);
  q = fmaf(q, e, -0.13663265f);
  q = fmaf(q, e, 0.19106017f);
  q = fmaf(q, e, -0.24842986f);
  q = fmaf(q, e, 0.33319098f);
  q = fmaf(q, e, -0.49999493f);
  q = fmaf(q, e, 0.99999994f);
  return q * e;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): the worst relative error is that of the MUFU exp (under 6e-6 for
// |x| < 40, the same as log1pf(__expf(x)) had); NaN propagates, +-inf give inf and 0.
__device__ __forceinline__ float softplusf(float x) { return fmaxf(x, 0.f) + log1p_unit(mufu_exp(-fabsf(x))); }

// softplus(x) and its derivative sigmoid(x) from one exp.
__device__ __forceinline__ void softplus_sigmoid(float x, float& sp, float& sg) {
  const float e = mufu_exp(-fabsf(x));
  sp = fmaxf(x, 0.f) + log1p_unit(e);
  const float r = mufu_rcp(1.f + e);
  sg = x >= 0.f ? r : e * r;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Entry (d, n) of a time-invariant B or C (dim, N) in float32; 0 when it varies in time or the lane is idle.
template <class Io>
__device__ __forceinline__ float fixed_bc(const void* M, bool variable, bool active, int d, int N, int n) {
  return (active && !variable) ? Io::load(static_cast<const typename Io::raw*>(M)[static_cast<size_t>(d) * N + n])
                               : 0.f;
}

// Affine scan over the 32 lanes of a warp, forwards (kReverse false: lane i composes lanes 0..i) or backwards
// (true: lanes i..31). Each lane holds the map x -> a*x + b of its steps; returns the value entering the lane
// given `carry` entering the warp's first lane in scan order, and sets `carry_out` (all lanes) to the value
// leaving the last one.
template <bool kReverse>
__device__ __forceinline__ float warp_affine_scan(float a, float b, float carry, int lane, float& carry_out) {
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const float ao = kReverse ? __shfl_down_sync(0xffffffffu, a, off) : __shfl_up_sync(0xffffffffu, a, off);
    const float bo = kReverse ? __shfl_down_sync(0xffffffffu, b, off) : __shfl_up_sync(0xffffffffu, b, off);
    if (kReverse ? lane + off < 32 : lane >= off) {
      b = fmaf(a, bo, b);
      a *= ao;
    }
  }
  constexpr int kLast = kReverse ? 0 : 31;  // the lane that composes the whole warp
  carry_out = fmaf(__shfl_sync(0xffffffffu, a, kLast), carry, __shfl_sync(0xffffffffu, b, kLast));
  float ae = kReverse ? __shfl_down_sync(0xffffffffu, a, 1) : __shfl_up_sync(0xffffffffu, a, 1);
  float be = kReverse ? __shfl_down_sync(0xffffffffu, b, 1) : __shfl_up_sync(0xffffffffu, b, 1);
  if (lane == 31 - kLast) {
    ae = 1.f;
    be = 0.f;
  }
  return fmaf(ae, carry, be);
}

// Forward affine scan over lanes in time order. Each lane holds the map h -> A*h + H of its run; returns the
// state before the lane's first step given the chunk's incoming state `carry`, and sets `carry_out` (all lanes)
// to the state after the chunk's last step.
__device__ __forceinline__ float scan_forward(float A, float H, float carry, int lane, float& carry_out) {
  return warp_affine_scan<false>(A, H, carry, lane, carry_out);
}

// Reverse affine scan over lanes (adjoints). Each lane holds the map r -> alpha + beta*r taking the adjoint
// flowing into its last step from the right to the one leaving its first step to the left. Returns the adjoint
// entering the lane from the right given `carry` entering the chunk's last lane; `carry_out` (all lanes) is the
// adjoint leaving the chunk's first step.
__device__ __forceinline__ float scan_reverse(float beta, float alpha, float carry, int lane, float& carry_out) {
  return warp_affine_scan<true>(beta, alpha, carry, lane, carry_out);
}

// Which channel and which states a warp owns. kSplit warps share one channel, warp part p taking the states
// n with n % kSplit == p (more warps when batch * dim is small); a block holds kWarps / kSplit channels. Blocks
// tile each B/C group separately so a block never straddles two groups.
template <int kSplit>
struct ChannelTile {
  static constexpr int kChannels = kWarps / kSplit;
  int b, g, tile, d, part;
  bool active;
  __device__ explicit ChannelTile(const SelectiveScanParams& p) {
    const int gs = p.dim / p.n_groups;
    const int tiles = (gs + kChannels - 1) / kChannels;
    const int warp = static_cast<int>(threadIdx.x / 32);
    b = blockIdx.y;
    g = blockIdx.x / tiles;
    tile = blockIdx.x % tiles;
    part = warp % kSplit;
    const int local = tile * kChannels + warp / kSplit;
    active = local < gs;
    d = g * gs + (active ? local : 0);
  }
};

// Workspace pieces are 256-byte aligned.
inline size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

inline int tiles_per_group(const SelectiveScanParams& p, int split) {
  const int gs = p.dim / p.n_groups, channels = kWarps / split;
  return (gs + channels - 1) / channels;
}

// Warps per channel: enough warps to fill the GPU when batch * dim is small (S3), never more than dstate / 4.
inline int choose_split(const SelectiveScanParams& p) {
  const long channels = static_cast<long>(p.batch) * p.dim;
  int split = 1;
  while (split < 4 && channels * split < 4096 && 4 * split * 2 <= p.dstate) split *= 2;
  return split;
}

}  // namespace ss
}  // namespace mamba
