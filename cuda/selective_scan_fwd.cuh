// Selective-scan forward kernel and its launch template (instantiated per dtype in selective_scan_fwd_<dtype>.cu).
// Inputs/outputs and semantics: native/params.h. Per (b, d): out (batch, dim, L) = (C.h + D*u) * silu(z), with
// fp32 state h carried across chunks on chip; checkpoints (batch, dim, n_ckpt, dstate) fp32 hold the state
// before each kChunk-step chunk, last_state (batch, dim, dstate) the state after step L-1.
//
// Two kernels. The general one (any dstate, time-invariant B/C, small batch * dim): warp = channel (or 1/kSplit of
// its states), lane = kItems consecutive steps, states walked one after another. Per state a lane runs its steps
// from a zero state keeping the running decay product, the warp combines the 32 lane maps with a shuffle scan (no
// block sync), and each step's state is h_local + decay_product * h_in. B/C rows are staged in shared memory once
// per block and shared by its channels. The fast one (dstate 16, variable B/C, large batch * dim) is sequential in
// time with lane = (channel, 4 states), see its own comment below. Design: docs/kernels/selective_scan.md.
#pragma once
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include "selective_scan_common.cuh"

namespace mamba {
namespace ss {

// Dynamic shared memory of the forward: B and C slabs (fp32), the per-warp partial outputs (kWarps, kChunk) when
// kSplit > 1, per-warp state carries, A*log2e and the time-invariant B/C values, each (kWarps, dstate), then the
// raw-dtype B/C prefetch buffer of SlabStager.
inline size_t fwd_smem_bytes(int dstate, int split, int raw_bytes) {
  return sizeof(float) *
             (2 * kSlab * kChunk + (split > 1 ? kWarps * kChunk : 0) + 4 * kWarps * static_cast<size_t>(dstate)) +
         raw_bytes;
}

template <class Io, int kSplit>
__global__ void __launch_bounds__(kThreads, MAMBA_SS_FWD_MIN_BLOCKS)
    selective_scan_fwd_kernel(const SelectiveScanParams p) {
  using raw = typename Io::raw;
  extern __shared__ float4 smem_f4[];
  float* sB = reinterpret_cast<float*>(smem_f4);  // (kSlab, kChunk)
  float* sC = sB + kSlab * kChunk;                // (kSlab, kChunk)
  float* sY = sC + kSlab * kChunk;                 // (kWarps, kChunk) partial y over each warp's states
  const int N = p.dstate, L = p.seqlen;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* sCarry = sY + (kSplit > 1 ? kWarps * kChunk : 0) + warp * N;  // (N) state before the chunk
  float* sA2 = sCarry + kWarps * N;                // (N) A * log2e
  float* sBi = sA2 + kWarps * N;                   // (N) time-invariant B of this channel
  float* sCi = sBi + kWarps * N;                   // (N) time-invariant C of this channel
  void* sRaw = sCi + (kWarps - warp) * N;          // SlabStager's buffer, after the per-warp arrays

  const ChannelTile<kSplit> ct(p);
  const size_t bd = static_cast<size_t>(ct.b) * p.dim + ct.d;
  const size_t row = bd * L;
  const int n_chunks = num_chunks(L), n_ckpt = num_ckpts(L);

  for (int n = lane; n < N; n += 32) {
    sCarry[n] = (ct.active && p.has_initial_state) ? p.initial_state[bd * N + n] : 0.f;
    sA2[n] = ct.active ? p.A[static_cast<size_t>(ct.d) * N + n] * kLog2e : 0.f;
    sBi[n] = fixed_bc<Io>(p.B, p.is_variable_B, ct.active, ct.d, N, n);
    sCi[n] = fixed_bc<Io>(p.C, p.is_variable_C, ct.active, ct.d, N, n);
  }
  const float D = (ct.active && p.has_D) ? p.D[ct.d] : 0.f;
  const float bias = (ct.active && p.has_delta_bias) ? p.delta_bias[ct.d] : 0.f;

  const raw* u_row = static_cast<const raw*>(p.u) + row;
  const raw* dl_row = static_cast<const raw*>(p.delta) + row;
  const raw* z_row = p.has_z ? static_cast<const raw*>(p.z) + row : nullptr;
  raw* out_row = static_cast<raw*>(p.out) + row;
  const size_t group_off = (static_cast<size_t>(ct.b) * p.n_groups + ct.g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const bool vec_u = rows_vectorizable(p.u, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L), vec_out = rows_vectorizable(p.out, L);
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  SlabStager<Io> stager(sRaw, Bg, Cg, L, N, p.is_variable_B, p.is_variable_C, vec_B, vec_C);
  stager.issue(0, 0);

  for (int c = 0; c < n_chunks; ++c) {
    const int c0 = c * kChunk;
    const int t0 = c0 + lane * kItems;
    // The lanes that start a checkpoint interval store the state entering them (h_in below).
    const bool ckpt_lane = p.checkpoints != nullptr && ct.active && lane % kLanesPerCkpt == 0 && t0 < L;
    __syncwarp();  // carries written by lane 0 in the previous chunk are visible to all lanes

    float u[kItems], dt[kItems], dtu[kItems], y[kItems];
    if (ct.active) {
      load_items<Io>(u_row, t0, L, vec_u, u);
      load_items<Io>(dl_row, t0, L, vec_dl, dt);
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) u[i] = dt[i] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) dt[i] += bias;
    // One uniform branch around all of the lane's softplus evaluations: with `if` per element the compiler kept a
    // branch around each and their FMA chains ran one after another (the fast kernels' conversion, session 11).
    if (p.delta_softplus) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) dt[i] = softplusf(dt[i]);
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      // Steps past L (and inactive channels) get dt = 0: decay 1, no input, so the state passes through.
      dt[i] = (ct.active && t0 + i < L) ? dt[i] : 0.f;
      dtu[i] = dt[i] * u[i];
      y[i] = 0.f;
    }

    for (int s0 = 0; s0 < N; s0 += kSlab) {
      const int ns = min(kSlab, N - s0);
      __syncthreads();  // every warp is done reading the previous slab
      stager.land(sB, sC, c0, s0, vec_B, vec_C);
      if (s0 + kSlab < N) {
        stager.issue(c0, s0 + kSlab);
      } else if (c + 1 < n_chunks) {
        stager.issue(c0 + kChunk, 0);
      }
      __syncthreads();
      for (int k = ct.part; k < ns; k += kSplit) {
        const int n = s0 + k;
        const float A2 = sA2[n];
        float Bv[kItems], Cv[kItems];
        if (p.is_variable_B) {
          read_items(sB + k * kChunk, lane, Bv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = sBi[n];
        }
        if (p.is_variable_C) {
          read_items(sC + k * kChunk, lane, Cv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Cv[i] = sCi[n];
        }
        // Lane-local run from a zero state; P = product of the decays so far.
        float hl[kItems], P[kItems];
        float h = 0.f, prod = 1.f;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const float a = fast_exp2(dt[i] * A2);
          h = fmaf(a, h, dtu[i] * Bv[i]);
          prod *= a;
          hl[i] = h;
          P[i] = prod;
        }
        const float carry = sCarry[n];
        float carry_out;
        const float h_in = scan_forward(prod, h, carry, lane, carry_out);
        if (ckpt_lane) p.checkpoints[(bd * n_ckpt + t0 / kScanCheckpointChunk) * N + n] = h_in;
#pragma unroll
        for (int i = 0; i < kItems; ++i) y[i] = fmaf(Cv[i], fmaf(P[i], h_in, hl[i]), y[i]);
        __syncwarp();  // every lane has read the old carry before lane 0 replaces it
        if (lane == 0) sCarry[n] = carry_out;
      }
    }

    if constexpr (kSplit > 1) {
      // Sum the partial outputs of the channel's warps in part order; part 0 finishes the channel.
      write_items(sY + warp * kChunk, lane, y);
      __syncthreads();
      if (ct.part == 0) {
#pragma unroll
        for (int q = 1; q < kSplit; ++q) {
          float yq[kItems];
          read_items(sY + (warp + q) * kChunk, lane, yq);
#pragma unroll
          for (int i = 0; i < kItems; ++i) y[i] += yq[i];
        }
      }
    }
    if (ct.active && ct.part == 0) {
      float z[kItems];
      if (p.has_z) load_items<Io>(z_row, t0, L, vec_z, z);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        y[i] = fmaf(D, u[i], y[i]);
        if (p.has_z) y[i] *= z[i] * sigmoidf_fast(z[i]);
      }
      store_items<Io>(out_row, t0, L, vec_out, y);
    }
  }
  __syncwarp();
  if (p.last_state != nullptr && ct.active)
    for (int n = lane * kSplit + ct.part; n < N; n += 32 * kSplit) p.last_state[bd * N + n] = sCarry[n];
}

// Host: a failed CUDA call of the forward's launchers as a catchable error naming the op.
inline void fwd_check(cudaError_t e) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_fwd_cuda: ") + cudaGetErrorString(e));
}

template <DType kType, int kSplit>
void selective_scan_fwd_launch_split(const SelectiveScanParams& p, cudaStream_t stream) {
  auto kernel = selective_scan_fwd_kernel<IO<kType>, kSplit>;
  const size_t smem = fwd_smem_bytes(p.dstate, kSplit, SlabStager<IO<kType>>::kRawBytes);
  if (smem > 48 * 1024)
    fwd_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(p.n_groups * tiles_per_group(p, kSplit), p.batch);
  kernel<<<grid, kThreads, smem, stream>>>(p);
  fwd_check(cudaGetLastError());
}

// ---------------------------------------------------------------------------------------------------------------
// Fast path for dstate == 16 with variable B and C when batch * dim is large (S1, S2): no time parallelism at all.
// Lane = (channel, quad of 4 states): a warp owns 8 channels, a block kFastWarps warps (kFastChannels channels of one
// B/C group). Each lane walks time sequentially with its 4 states in registers: per step 4 exps, 4 state FMAs and
// the partial C.h of its quad (one exp per element-state, no scan). Per chunk of kFastChunk steps:
// - B and C (16, chunk) are copied by the block with cp.async into a raw buffer and converted once to fp32 (t, 16)
//   into one of two buffers, so one barrier per chunk separates the writers of chunk c+1 from the readers of c.
// - u, delta, z of a warp's 8 channels are copied by that warp alone and converted into per-warp fp32 arrays:
//   dt (softplus and bias applied), dt*u, and (D*u, silu(z)), once per element, never per state; only __syncwarp
//   orders them, so warps are tied together only by the B/C barrier.
// - Every thread converts exactly the 16-byte runs it copied, so it waits only for its own copies. Chunk c+2 is
//   issued right after chunk c+1 is converted and lands during the scan of chunk c+1; no register prefetch.
// - y is summed over the 4 lanes of a channel once per 8 steps by a butterfly reduce-scatter (6 shuffles instead
//   of 16); lane j then owns steps 8g+2j, 8g+2j+1, keeps them in registers to the end of the chunk, applies
//   (y + D*u) * silu(z), and writes the output-dtype pair to a per-warp staging row that the warp stores with
//   16-byte stores after the chunk. The step loop itself stores nothing to shared memory.
#ifndef MAMBA_SS_FWD_FAST
#define MAMBA_SS_FWD_FAST 1
#endif
// Groups of 4 steps per iteration of the summary pass's step loop (the main pass unrolls the whole chunk, which its
// register-held outputs need). 8 = the whole chunk: the compiler issues later steps' exps early (H200, S3 forward,
// 2 runs each: fp32 0.402 -> 0.394 ms, bf16 0.359 -> 0.357; 4: fp32 0.395; no spills at 128 registers).
#ifndef MAMBA_SS_FWD_FAST_UNROLL
#define MAMBA_SS_FWD_FAST_UNROLL 8
#endif
constexpr int kFastUnroll = MAMBA_SS_FWD_FAST_UNROLL;
constexpr int kFastWarps = 4;
constexpr int kFastThreads = kFastWarps * 32;
constexpr int kFastChannels = kFastWarps * 8;
// Resident blocks per SM asked of the compiler (caps registers at 128): S2 (512 blocks) needs 4 on 132 SMs to run
// in one wave; occupancy is bounded by the work (S1: ~12 warps per SM), so more blocks per SM buy nothing and
// lower caps spill.
constexpr int kFastMinBlocks = 4;
// The unsplit float32 forward's variant for grids that fit in one wave at 3 blocks per SM (S1: 384 blocks on 132
// SMs): the compiler may use 168 registers, which removes the spills of the 128-register build and leaves room to
// hoist more of the unrolled chunk's loads. H200, S1: fp32 0.272 -> 0.255 ms, but bf16 0.230 -> 0.234, so the
// 16-bit types keep the 4-block build (docs/perf.md, fifth session).
constexpr int kFastMinBlocksWide = 3;
constexpr int kFastChunk = 32;
// Per-warp fp32 rows (channel, t): +4 puts the 8 channels of a warp in 8 different bank quads for float4 reads.
constexpr int kFastPitch = kFastChunk + 4;
// One fp32 B/C buffer: B (t, 16), 16 floats of padding (C's rows land in the other half of the banks, so the
// converting threads, B rows in lanes 0-15 and C rows in lanes 16-31, do not conflict), C (t, 16), 16 floats.
constexpr int kFastBCBuf = 2 * (kFastChunk * 16 + 16);
static_assert(kScanCheckpointChunk % kFastChunk == 0, "checkpoints fall on chunk starts");
static_assert(kFastChunk % 8 == 0 && kFastChunk % (4 * kFastUnroll) == 0, "whole 16-byte runs and unrolled groups");

// Shared-memory layout of the fast kernel (byte offsets, all multiples of 16). Raw rows hold one chunk of one
// channel (u, delta, z: unpadded, a quarter-warp reads 128 contiguous bytes) or one state (B, C: padded by 16 bytes
// so 8 rows read at the same step hit 8 different bank groups); the raw output rows are padded the same way.
template <class Io>
struct FastLayout {
  using raw = typename Io::raw;
  static constexpr int kRunElems = 16 / static_cast<int>(sizeof(raw));  // elements per 16-byte run
  static constexpr int kRowRuns = kFastChunk / kRunElems;               // runs per row per chunk
  static constexpr int kRawRow = kFastChunk * static_cast<int>(sizeof(raw));
  static constexpr int kPadRow = kRawRow + 16;
  static constexpr int kPadElems = kPadRow / static_cast<int>(sizeof(raw));
  static constexpr int kLaneRuns = 8 * kRowRuns / 32;                   // runs of each of u, delta, z per lane
  static constexpr int kBCRuns = 2 * 16 * kRowRuns / kFastThreads;      // runs of B or C per thread
  static_assert(8 * kRowRuns % 32 == 0 && 2 * 16 * kRowRuns % kFastThreads == 0 && kBCRuns >= 1,
                "runs divide evenly over lanes and threads");
  // The step loop's B/C buffer of one chunk: fp32 B (T, 16), pad, C (T, 16), pad (kFastBCBuf floats) for float32
  // inputs; 16-bit inputs stay 16-bit in the bc16_slot layout (ncu, S1 bf16: 57% of the forward's shared-memory
  // wavefronts were the fp32 B/C loads).
  static constexpr bool kWideBC = sizeof(raw) == 4;
  static constexpr int kBCBufBytes = kWideBC ? kFastBCBuf * 4 : kFastChunk * 64;
  static constexpr int kBC = 0;                                  // 2 x kBCBufBytes
  static constexpr int kRawBC = kBC + 2 * kBCBufBytes;           // (B/C, 16 states) rows of kPadRow bytes
  static constexpr int kWarp0 = kRawBC + 2 * 16 * kPadRow;       // then kFastWarps per-warp parts:
  static constexpr int kDt = 0;                                  //   (8, kFastPitch) fp32 dt
  static constexpr int kDtu = kDt + 8 * kFastPitch * 4;          //   (8, kFastPitch) fp32 dt*u
  static constexpr int kDg = kDtu + 8 * kFastPitch * 4;          //   (8, kFastPitch) float2 (D*u, silu(z) or 1)
  static constexpr int kOut = kDg + 8 * kFastPitch * 8;          //   8 rows of kPadRow bytes: out in the io dtype
  static constexpr int kRawX = kOut + 8 * kPadRow;               //   (u/delta/z, 8) rows of kRawRow bytes
  static constexpr int kWarpBytes = kRawX + 3 * 8 * kRawRow;
  static constexpr int kBytes = kWarp0 + kFastWarps * kWarpBytes;
  static_assert(kRawBC % 16 == 0 && kWarp0 % 16 == 0 && kOut % 16 == 0 && kRawX % 16 == 0 && kWarpBytes % 16 == 0,
                "16-byte aligned pieces");
};

// Time segments of the fast forward (technique T9 of the scan guide). When batch * dim is too small to fill the
// GPU with lane = (channel, 4 states) (S3: 1536 channels = 192 warps), L is cut into `count` segments of
// `seg_len` steps (a multiple of kScanCheckpointChunk, so checkpoints stay on the global 32-step grid) that
// run in parallel (blockIdx.z = segment):
//   pass 1 (kSummary): segments 0 .. count-2 run the recurrence from a zero state over their steps without C, z,
//           y or out, and store their local end state h_loc and their sum of dt; the decay of state n over a
//           segment is then exactly exp2(A2_n * sum dt) (up to rounding), one exp per state and segment;
//   pass 2: segment k starts from the true state before its first step, which each lane forms itself by walking
//           the summaries of segments 0 .. k-1 (h = exp2(A2 * S_k') * h + h_loc_k', from initial_state or 0;
//           at most a few dozen steps, so no separate carry kernel and no h_in buffer), then runs the normal
//           fast forward over its steps: out, the checkpoints inside its range, and last_state (last segment).
// Head: in every split plan segment 0 is shorter (head_len steps) and needs no summary. Its forward runs beside
// pass 1 (the summaries of segments 1 .. count-2), on the slots that pass 1 leaves free, and stores its true end
// state in summary slot 0; pass 2 then runs segments 1 .. count-1 from that state. With K - 1 summaries and K mains
// in one wave each the split costs c1 s + c2 s (c1, c2: summary and forward time per step, s the segment length);
// the head takes segment 0's forward out of pass 2 and its summary out of pass 1, so s shrinks by about c1 / c2 of
// a segment (S3: K - 1 = 11 segments of 44 chunks and a head of 28, not 11 of 47 and a summary of 10 of them).
// Unsplit (count 1, seg_len >= L) the kernel is exactly the unsegmented fast forward.
struct FwdSegments {
  int seg_len = 0;        // steps per segment after the first, a multiple of kFastChunk
  int count = 1;          // segments
  float* h_loc = nullptr; // (count - 1, batch, dim, 16) fp32: local end states of segments 0 .. count-2 (head:
                          // slot 0 is the true state after segment 0)
  float* sdt = nullptr;   // (count - 1, batch, dim) fp32: sum of dt over each of those segments (head: slot 0 unused)
  int head_len = 0;       // steps of segment 0 (seg_len when unsplit)
  int first = 0;          // segment of blockIdx.z 0 in this launch
  __host__ __device__ int start(int k) const { return k == 0 ? 0 : head_len + (k - 1) * seg_len; }
};

// Segments shorter than this are not chosen automatically: the per-block prologue and the summary walk would
// start to cost more than the parallelism gains.
constexpr int kFwdMinSegSteps = 256;

// Lays the forward workspace out from `base` (nullptr: only computes the size). Returns the total bytes (0 when
// unsplit).
inline size_t fwd_workspace_layout(const SelectiveScanParams& p, int count, char* base, FwdSegments* seg) {
  if (count <= 1) return 0;
  const size_t bd = static_cast<size_t>(p.batch) * p.dim * (count - 1);
  const size_t h_bytes = align_up(bd * 16 * sizeof(float)), s_bytes = align_up(bd * sizeof(float));
  if (seg != nullptr && base != nullptr) {
    seg->h_loc = reinterpret_cast<float*>(base);
    seg->sdt = reinterpret_cast<float*>(base + h_bytes);
  }
  return h_bytes + s_bytes;
}

// Which forward kernel runs and how L is split. fast = false: the general warp-chunk kernel.
struct FwdPlan {
  bool fast = false;
  int segments = 1;
  int seg_len = 0;   // steps of each segment after the head
  int head_len = 0;  // steps of segment 0 (split plans)
  bool lanes = false;  // the time-lane kernel (selective_scan_fwd_lanes.cuh) instead of the split
};

// Head length / segment length of split plans: about the summary pass's time per step over the forward's (H200,
// S3 bf16: pass 1 134 us for 10 segments, pass 2 197 us for 11), so that the head's forward ends with pass 1.
#ifndef MAMBA_SS_FWD_HEAD_RATIO
#define MAMBA_SS_FWD_HEAD_RATIO 0.68f
#endif
constexpr float kFwdHeadRatio = MAMBA_SS_FWD_HEAD_RATIO;

inline bool fwd_fast_eligible(const SelectiveScanParams& p) {
  return MAMBA_SS_FWD_FAST && p.dstate == 16 && p.is_variable_B && p.is_variable_C;
}

// The kRunElems values of one 16-byte raw run in shared memory, as fp32.
template <class Io>
__device__ __forceinline__ void raw_run_to_float(const typename Io::raw* src, float (&v)[FastLayout<Io>::kRunElems]) {
  if constexpr (sizeof(typename Io::raw) == 4) {
    const float4 a = *reinterpret_cast<const float4*>(src);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  } else {
    const uint4 a = *reinterpret_cast<const uint4*>(src);
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = Io::load(static_cast<typename Io::raw>(w[i] & 0xffffu));
      v[2 * i + 1] = Io::load(static_cast<typename Io::raw>(w[i] >> 16));
    }
  }
}

// One 16-byte run of a row into shared memory: cp.async when the rows allow it (then a run is wholly inside or
// outside [0, L)), else element loads; zeros past L and for inactive channels (`in` false).
template <class raw>
__device__ __forceinline__ void stage_run(raw* dst, const raw* row, int t, int L, bool in, bool vec) {
  constexpr int kElems = 16 / static_cast<int>(sizeof(raw));
  if (vec) {
    const bool any = in && t < L;
    cp_async16(dst, row + (any ? t : 0), any ? 16 : 0);
  } else {
#pragma unroll
    for (int i = 0; i < kElems; ++i) dst[i] = (in && t + i < L) ? row[t + i] : raw(0);
  }
}

// The 4 floats of a float4 as an array (one 16-byte shared-memory load).
__device__ __forceinline__ void unpack4(const float4 v, float (&out)[4]) {
  out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
}

// silu(z) = z * sigmoid(z) with the MUFU exp and reciprocal (2 MUFU; the forward's output gate only).
__device__ __forceinline__ float silu_fast(float z) { return z * sigmoidf_fast(z); }

// kSummary: pass 1 of a split forward (see FwdSegments): no C, z, y, out, checkpoints or last_state; writes the
// segment's local end state and sum of dt. Otherwise the forward over the block's segment (all of L unsplit).
// kSplit: a launch of a split plan (head, summaries, segments after the head); the unsplit forward (S1, S2) keeps
// the code without the head's cases (with them its bf16 step loop ran 1.5% slower on the H200: register allocation).
template <class Io, bool kSummary, int kMinBlocks, bool kSplit = kSummary>
__global__ void __launch_bounds__(kFastThreads, kMinBlocks)
    selective_scan_fwd_fast_kernel(const SelectiveScanParams p, const FwdSegments seg) {
  using raw = typename Io::raw;
  using Lay = FastLayout<Io>;
  constexpr int N = 16, T = kFastChunk, E = Lay::kRunElems;
  extern __shared__ float4 smem_f4[];
  char* smem = reinterpret_cast<char*>(smem_f4);
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kFastChannels - 1) / kFastChannels;
  const int b = blockIdx.y, g = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int ch0 = tile * kFastChannels + warp * 8;  // the warp's first channel inside group g
  // The block's time segment: whole chunks [ck_begin, ck_end), steps [t_begin, t_end).
  const int kseg = kSplit ? seg.first + blockIdx.z : blockIdx.z;
  const int ck_begin = kSplit ? seg.start(kseg) / T : kseg * seg.seg_len / T;
  const int ck_end = (min(L, kSplit ? seg.start(kseg + 1) : (kseg + 1) * seg.seg_len) + T - 1) / T;

  float* sBC = reinterpret_cast<float*>(smem + Lay::kBC);       // 2 chunk buffers of kBCBufBytes (FastLayout)
  constexpr int kBCBufFloats = Lay::kBCBufBytes / 4;
  raw* sRawBC = reinterpret_cast<raw*>(smem + Lay::kRawBC);     // (2, 16, kPadElems) raw B, C
  char* wsm = smem + Lay::kWarp0 + warp * Lay::kWarpBytes;
  float* sDt = reinterpret_cast<float*>(wsm + Lay::kDt);        // (8, kFastPitch)
  float* sDtu = reinterpret_cast<float*>(wsm + Lay::kDtu);      // (8, kFastPitch)
  float2* sDg = reinterpret_cast<float2*>(wsm + Lay::kDg);      // (8, kFastPitch)
  raw* sOut = reinterpret_cast<raw*>(wsm + Lay::kOut);          // (8, kPadElems)
  raw* sRawX = reinterpret_cast<raw*>(wsm + Lay::kRawX);        // (3, 8, T) raw u, delta, z

  const size_t group_off = (static_cast<size_t>(b) * p.n_groups + g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const raw* xg[3] = {static_cast<const raw*>(p.u), static_cast<const raw*>(p.delta),
                      p.has_z ? static_cast<const raw*>(p.z) : nullptr};
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  const bool vec_x[3] = {rows_vectorizable(p.u, L), rows_vectorizable(p.delta, L), rows_vectorizable(p.z, L)};
  const bool vec_out = rows_vectorizable(p.out, L);
  // The summary pass needs neither z nor C.
  const bool use_z = !kSummary && p.has_z;
  // B as fp32 (t, 16) rows: always for fp32 inputs; for 16-bit inputs in the summary pass, whose B alone fits the
  // 16-bit (t, 64-byte) buffer as fp32, so its step loop loads 4 floats instead of widening 4 16-bit values (H200,
  // S3 bf16, together with a softplus since dropped: pass 1 142 -> 136 us).
  constexpr bool kWideB = Lay::kWideBC || kSummary;
  static_assert(Lay::kWideBC || kFastChunk * 16 * 4 <= Lay::kBCBufBytes, "fp32 B fits the 16-bit buffer");

  // Staging role for u / delta / z / out: run k of the lane is channel xc[k] of the warp, steps [xt[k], +E) of a
  // chunk. A quarter-warp covers 8 consecutive runs: 128 contiguous raw bytes, and 8 distinct bank quads of sDt.
  int xc[Lay::kLaneRuns], xt[Lay::kLaneRuns];
  bool xin[Lay::kLaneRuns];
  size_t xrow[Lay::kLaneRuns];
  float xbias[Lay::kLaneRuns], xD[Lay::kLaneRuns];
#pragma unroll
  for (int k = 0; k < Lay::kLaneRuns; ++k) {
    const int r = lane + 32 * k;
    xc[k] = r / Lay::kRowRuns;
    xt[k] = (r % Lay::kRowRuns) * E;
    xin[k] = ch0 + xc[k] < gs;
    const int d = g * gs + (xin[k] ? ch0 + xc[k] : 0);
    xrow[k] = (static_cast<size_t>(b) * p.dim + d) * L;
    xbias[k] = (xin[k] && p.has_delta_bias) ? p.delta_bias[d] : 0.f;
    xD[k] = (!kSummary && xin[k] && p.has_D) ? p.D[d] : 0.f;
  }
  auto issue_x = [&](int t0) {
#pragma unroll
    for (int k = 0; k < Lay::kLaneRuns; ++k)
#pragma unroll
      for (int a = 0; a < 3; ++a) {
        if (a == 2 && !use_z) continue;
        stage_run(sRawX + (a * 8 + xc[k]) * T + xt[k], xg[a] + xrow[k], t0 + xt[k], L, xin[k], vec_x[a]);
      }
  };
  auto convert_x = [&](int t0) {
    constexpr int R = Lay::kLaneRuns;
    float u[R][E], v[R][E], z[R][E];
#pragma unroll
    for (int k = 0; k < R; ++k) {
      raw_run_to_float<Io>(sRawX + (0 * 8 + xc[k]) * T + xt[k], u[k]);
      raw_run_to_float<Io>(sRawX + (1 * 8 + xc[k]) * T + xt[k], v[k]);
      if (use_z) raw_run_to_float<Io>(sRawX + (2 * 8 + xc[k]) * T + xt[k], z[k]);
#pragma unroll
      for (int i = 0; i < E; ++i) v[k][i] += xbias[k];
    }
    // One branch around all of the lane's softplus evaluations, not one per element: the compiler then interleaves
    // their independent FMA chains (with a branch per element each ~25-deep chain ran alone: ncu, S3 bf16, 40% of
    // the summary pass's and 26% of the main pass's stall samples were in this conversion). Both passes take the
    // exp on the MUFU pipe: with the chains interleaved, the summary pass's FMA-pipe exp (session 9) became 1.5%
    // slower at S3 bf16 (H200, session 11).
    if (p.delta_softplus) {
#pragma unroll
      for (int k = 0; k < R; ++k)
#pragma unroll
        for (int i = 0; i < E; ++i) v[k][i] = softplusf(v[k][i]);
    }
#pragma unroll
    for (int k = 0; k < R; ++k) {
      float dt[E], dtu[E];
      float2 dg[E];
#pragma unroll
      for (int i = 0; i < E; ++i) {
        // Steps past L and inactive channels: dt = 0 (decay 1, no input), so the state passes through.
        dt[i] = (xin[k] && t0 + xt[k] + i < L) ? v[k][i] : 0.f;
        dtu[i] = dt[i] * u[k][i];
        if constexpr (!kSummary) dg[i] = make_float2(xD[k] * u[k][i], use_z ? silu_fast(z[k][i]) : 1.f);
      }
      float4* pdt = reinterpret_cast<float4*>(sDt + xc[k] * kFastPitch + xt[k]);
      float4* pdtu = reinterpret_cast<float4*>(sDtu + xc[k] * kFastPitch + xt[k]);
#pragma unroll
      for (int i = 0; i < E / 4; ++i) {
        pdt[i] = make_float4(dt[4 * i], dt[4 * i + 1], dt[4 * i + 2], dt[4 * i + 3]);
        pdtu[i] = make_float4(dtu[4 * i], dtu[4 * i + 1], dtu[4 * i + 2], dtu[4 * i + 3]);
      }
      if constexpr (!kSummary) {
        float4* pdg = reinterpret_cast<float4*>(sDg + xc[k] * kFastPitch + xt[k]);
#pragma unroll
        for (int i = 0; i < E / 2; ++i)
          pdg[i] = make_float4(dg[2 * i].x, dg[2 * i].y, dg[2 * i + 1].x, dg[2 * i + 1].y);
      }
    }
  };
  // The warp's 8 staged output rows of the chunk starting at t0 -> out.
  auto store_out = [&](int t0) {
    raw* out = static_cast<raw*>(p.out);
    if (vec_out) {
#pragma unroll
      for (int k = 0; k < Lay::kLaneRuns; ++k)
        if (xin[k] && t0 + xt[k] < L)
          *reinterpret_cast<uint4*>(out + xrow[k] + t0 + xt[k]) =
              *reinterpret_cast<const uint4*>(sOut + xc[k] * Lay::kPadElems + xt[k]);
    } else {
      for (int e = lane; e < 8 * T; e += 32) {
        const int c = e / T, t = e % T;
        if (ch0 + c < gs && t0 + t < L)
          out[(static_cast<size_t>(b) * p.dim + g * gs + ch0 + c) * L + t0 + t] = sOut[c * Lay::kPadElems + t];
      }
    }
  };

  // Staging role for B / C: run k of the thread is state bn[k] of matrix bm[k] (0 = B, 1 = C), steps [bt[k], +E).
  // Lanes 0-15 of a warp take 16 B rows and lanes 16-31 the same run of the 16 C rows (idle in the summary pass).
  int bn[Lay::kBCRuns], bm[Lay::kBCRuns], bt[Lay::kBCRuns];
#pragma unroll
  for (int k = 0; k < Lay::kBCRuns; ++k) {
    const int r = tid + kFastThreads * k;
    bn[k] = r % 16;
    bm[k] = (r / 16) % 2;
    bt[k] = (r / 32) * E;
  }
  auto issue_bc = [&](int t0) {
#pragma unroll
    for (int k = 0; k < Lay::kBCRuns; ++k) {
      if (kSummary && bm[k] == 1) continue;
      stage_run(sRawBC + (bm[k] * 16 + bn[k]) * Lay::kPadElems + bt[k], (bm[k] ? Cg : Bg) + static_cast<size_t>(bn[k]) * L,
                t0 + bt[k], L, true, bm[k] ? vec_C : vec_B);
    }
  };
  auto convert_bc = [&](float* dst_buf) {
#pragma unroll
    for (int k = 0; k < Lay::kBCRuns; ++k) {
      if (kSummary && bm[k] == 1) continue;
      const raw* src = sRawBC + (bm[k] * 16 + bn[k]) * Lay::kPadElems + bt[k];
      if constexpr (kWideB) {
        float v[E];
        raw_run_to_float<Io>(src, v);
        float* dst = dst_buf + bm[k] * (kFastBCBuf / 2) + bt[k] * 16 + bn[k];
#pragma unroll
        for (int i = 0; i < E; ++i) dst[i * 16] = v[i];
      } else {
        const uint4 a = *reinterpret_cast<const uint4*>(src);
        const uint32_t w[4] = {a.x, a.y, a.z, a.w};
        raw* dst = reinterpret_cast<raw*>(dst_buf) + bc16_slot(bm[k], bn[k], bt[k]);
#pragma unroll
        for (int i = 0; i < E / 2; ++i) {
          dst[(2 * i) * 32] = static_cast<raw>(w[i] & 0xffffu);
          dst[(2 * i + 1) * 32] = static_cast<raw>(w[i] >> 16);
        }
      }
    }
  };

  // Scan role: channel cl of the warp, states 4j .. 4j+3.
  const int cl = lane / 4, j = lane % 4;
  const bool hiA = (j & 2) != 0, hiB = (j & 1) != 0;
  const bool l_active = ch0 + cl < gs;
  const int dl = g * gs + (l_active ? ch0 + cl : 0);
  const size_t bdl = static_cast<size_t>(b) * p.dim + dl;
  float A2[4], h[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    A2[q] = l_active ? p.A[static_cast<size_t>(dl) * N + 4 * j + q] * kLog2e : 0.f;
    h[q] = (!kSummary && l_active && p.has_initial_state) ? p.initial_state[bdl * N + 4 * j + q] : 0.f;
  }
  const int n_ckpt = num_ckpts(L);

  issue_bc(ck_begin * T);
  issue_x(ck_begin * T);
  cp_async_commit();
  if constexpr (!kSummary) {
    // The state entering the segment, while the first chunk's copies are in flight: segments 0 .. kseg-1 in
    // order, h = exp2(A2 * sum dt) * h + h_loc (their summaries from pass 1; nothing to do for segment 0). With a
    // head, from the head's true end state (slot 0) through segments 1 .. kseg-1.
    if (l_active) {
      int s0 = 0;
      if (kSplit && kseg > 0) {
        const float4 h0 = *reinterpret_cast<const float4*>(seg.h_loc + bdl * N + 4 * j);
        h[0] = h0.x, h[1] = h0.y, h[2] = h0.z, h[3] = h0.w;
        s0 = 1;
      }
#pragma unroll 4
      for (int s = s0; s < kseg; ++s) {
        const size_t o = static_cast<size_t>(s) * p.batch * p.dim + bdl;
        carry_segment(h, A2, seg.sdt[o], *reinterpret_cast<const float4*>(seg.h_loc + o * N + 4 * j));
      }
    }
  }
  cp_async_wait_all();
  convert_bc(sBC + (ck_begin & 1) * kBCBufFloats);  // chunk ck uses buffer ck & 1
  convert_x(ck_begin * T);
  if (ck_begin + 1 < ck_end) {
    issue_bc((ck_begin + 1) * T);
    issue_x((ck_begin + 1) * T);
  }
  cp_async_commit();

  float dt_sum = 0.f;  // summary pass: sum of dt over the segment (the same in the channel's 4 lanes)
  for (int ck = ck_begin; ck < ck_end; ++ck) {
    const int t0 = ck * T;
    // Chunk ck's B/C (converted by the whole block) and the warp's dt arrays are visible, and every warp is done
    // reading the B/C buffer of chunk ck-1, which chunk ck+1 is converted into below.
    __syncthreads();
    if (!kSummary && t0 % kScanCheckpointChunk == 0 && p.checkpoints != nullptr && l_active) {
      // One 16-byte store per lane (the 4 states are consecutive; checkpoint rows are 64-byte multiples).
      *reinterpret_cast<float4*>(p.checkpoints + (bdl * n_ckpt + t0 / kScanCheckpointChunk) * N + 4 * j) =
          make_float4(h[0], h[1], h[2], h[3]);
    }

    const float* sB = sBC + (ck & 1) * kBCBufFloats;
    const float4* sB4 = reinterpret_cast<const float4*>(sB) + j;                      // fp32, step t: sB4[4 t]
    const float4* sC4 = reinterpret_cast<const float4*>(sB + kFastBCBuf / 2) + j;     // fp32, step t: sC4[4 t]
    const uint4* sBC16 = reinterpret_cast<const uint4*>(sB) + j;                       // 16-bit, step t: sBC16[4 t]
    const float4* dt4 = reinterpret_cast<const float4*>(sDt + cl * kFastPitch);       // steps 4k..4k+3: dt4[k]
    const float4* dtu4 = reinterpret_cast<const float4*>(sDtu + cl * kFastPitch);
    if constexpr (kSummary) {
      float csum = 0.f;  // per chunk, then into dt_sum: shorter fp32 sums
#pragma unroll kFastUnroll
      for (int k = 0; k < T / 4; ++k) {
        float dts[4], dtus[4];
        unpack4(dt4[k], dts);
        unpack4(dtu4[k], dtus);
#pragma unroll
        for (int s = 0; s < 4; ++s) state_step4(h, A2, dts[s], dtus[s], sB4[4 * (4 * k + s)]);  // B as fp32 (kWideB)
        csum += (dts[0] + dts[1]) + (dts[2] + dts[3]);
      }
      dt_sum += csum;
      __syncwarp();  // every lane is done reading its dt arrays
    } else {
      // Per 8-step group the lane's partial C.h of each step is reduce-scattered over the channel's 4 lanes (xor 2,
      // then xor 1), leaving lane j the whole y of steps 8g + 2j and 8g + 2j + 1 in ys[2g], ys[2g + 1]. Nothing is
      // stored to shared memory inside the step loop, so the compiler may hoist the next group's loads above the
      // shuffles of this one; the gate and the output-dtype stores follow the loop.
      float ys[T / 4];
#pragma unroll
      for (int g8 = 0; g8 < T / 8; ++g8) {
        float y[8];
#pragma unroll
        for (int h4 = 0; h4 < 2; ++h4) {
          const int k = 2 * g8 + h4;
          float dts[4], dtus[4];
          unpack4(dt4[k], dts);
          unpack4(dtu4[k], dtus);
#pragma unroll
          for (int s = 0; s < 4; ++s) {
            float4 bv, cv;
            if constexpr (Lay::kWideBC) {
              bv = sB4[4 * (4 * k + s)];
              cv = sC4[4 * (4 * k + s)];
            } else {
              const uint4 w = sBC16[4 * (4 * k + s)];
              bv = widen4<Io>(w.x, w.y);
              cv = widen4<Io>(w.z, w.w);
            }
            state_step4(h, A2, dts[s], dtus[s], bv);
            y[4 * h4 + s] = fmaf(cv.w, h[3], fmaf(cv.z, h[2], fmaf(cv.y, h[1], cv.x * h[0])));
          }
        }
        // xor 2: lanes with j < 2 keep steps 0-3, the others 4-7; xor 1: of those four, lanes with even j keep the
        // first two.
        reduce_scatter8(y, hiA, hiB, 2, 1, ys + 2 * g8);
      }
      // Gate and store: lane j's steps 8g + 2j, +1 -> two adjacent output-dtype values of the staging row.
      const float4* dg4 = reinterpret_cast<const float4*>(sDg + cl * kFastPitch + 2 * j);  // steps 8g+2j, +1: dg4[4g]
      raw* orow = sOut + cl * Lay::kPadElems + 2 * j;                                      // step 8g+2j: orow[8g]
#pragma unroll
      for (int g8 = 0; g8 < T / 8; ++g8) {
        const float4 e = dg4[4 * g8];
        store_pair<Io>(orow + 8 * g8, (ys[2 * g8] + e.x) * e.y, (ys[2 * g8 + 1] + e.z) * e.w);
      }
      __syncwarp();  // the warp's output rows are complete and every lane is done reading its dt arrays
      store_out(t0);
    }
    if (ck + 1 < ck_end) {
      cp_async_wait_all();  // this thread's copies of chunk ck+1, issued one chunk ago
      convert_bc(sBC + ((ck + 1) & 1) * kBCBufFloats);
      convert_x(t0 + T);
      if (ck + 2 < ck_end) {
        issue_bc(t0 + 2 * T);
        issue_x(t0 + 2 * T);
      }
      cp_async_commit();
    }
  }
  if (!l_active) return;
  if constexpr (kSummary) {
    const size_t o = static_cast<size_t>(kseg) * p.batch * p.dim + bdl;
    *reinterpret_cast<float4*>(seg.h_loc + o * N + 4 * j) = make_float4(h[0], h[1], h[2], h[3]);
    if (j == 0) seg.sdt[o] = dt_sum;
  } else {
    // The head's end state: slot 0 (every split plan has a head).
    if (kSplit && kseg == 0)
      *reinterpret_cast<float4*>(seg.h_loc + bdl * N + 4 * j) = make_float4(h[0], h[1], h[2], h[3]);
    // last_state from the last segment (unsplit: the one segment).
    if (p.last_state != nullptr && (kSplit ? kseg == seg.count - 1 : blockIdx.z == gridDim.z - 1)) {
#pragma unroll
      for (int q = 0; q < 4; ++q) p.last_state[bdl * N + 4 * j + q] = h[q];
    }
  }
}

}  // namespace ss
}  // namespace mamba
#include "selective_scan_fwd_lanes.cuh"
namespace mamba {
namespace ss {

// Blocks of the fast forward: one per (group, tile of kFastChannels channels, batch row, time segment).
inline dim3 fwd_fast_grid(const SelectiveScanParams& p, int segments) {
  const int gs = p.dim / p.n_groups;
  return dim3(p.n_groups * ((gs + kFastChannels - 1) / kFastChannels), p.batch, segments);
}

// Resident blocks of the fast forward (kMinBlocks variant) on the current device (blocks per SM x SMs), 0 when
// unknown. Queried once per device, dtype and variant.
template <DType kType, int kMinBlocks = kFastMinBlocks>
int fwd_fast_resident_blocks() {
  constexpr int kMaxDevices = 16;
  static int cached[kMaxDevices] = {};
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  if (dev >= 0 && dev < kMaxDevices && cached[dev] > 0) return cached[dev];
  auto kernel = selective_scan_fwd_fast_kernel<IO<kType>, false, kMinBlocks>;
  const int smem = FastLayout<IO<kType>>::kBytes;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFastThreads, smem) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const int blocks = per_sm * sms;
  if (dev >= 0 && dev < kMaxDevices) cached[dev] = blocks;
  return blocks;
}

// The forward's plan. Fast path: dstate 16 with variable B/C, and either batch * dim >= 4096 (S1, S2: unsplit
// when the grid fills the GPU) or enough steps to split. Segments: as many as fit in one wave of resident blocks
// (the fast kernel is latency-bound, so more resident warps help and a second partial wave would not), each at
// least kFwdMinSegSteps long; p.scan_segments > 0 forces the count (tests). `split_ok` false (no workspace):
// never split, which is the unsegmented behaviour.
template <DType kType>
FwdPlan fwd_plan(const SelectiveScanParams& p, bool split_ok) {
  FwdPlan plan;
  if (!fwd_fast_eligible(p)) return plan;
  const int n_chunks = (p.seqlen + kFastChunk - 1) / kFastChunk;
  const bool big = static_cast<long>(p.batch) * p.dim >= 4096;
  int want = 1;
  if (p.scan_segments > 0) {
    want = p.scan_segments;
  } else if (split_ok) {
    const dim3 g = fwd_fast_grid(p, 1);
    const long base = static_cast<long>(g.x) * g.y;
    const long resident = fwd_fast_resident_blocks<kType>();
    const long by_wave = base > 0 ? resident / base : 1;
    const long by_len = p.seqlen / kFwdMinSegSteps;
    want = static_cast<int>(std::max(1L, std::min({by_wave, by_len, 1024L})));
  }
  if (!split_ok) want = 1;
  plan.segments = 1;
  plan.seg_len = plan.head_len = n_chunks * kFastChunk;
  // Split: a head (segment 0, shorter, no summary) and m segments of s chunks (the last may be partial). The
  // automatic plan keeps m = the wave's segment count: pass 1 (head forward + m - 1 summaries) and pass 2 (m
  // forwards) each fill one wave. A forced count k is the head and k - 1 segments.
  const int m = p.scan_segments > 0 ? want - 1 : want;
  if (want > 1 && m >= 1 && n_chunks > 1) {
    const int s = std::max(1, static_cast<int>(std::ceil(n_chunks / (m + kFwdHeadRatio))));
    int h = n_chunks - m * s;
    if (h < 1) h = std::max(1, std::min(s, static_cast<int>(std::lround(kFwdHeadRatio * s))));
    if (h < n_chunks) {
      plan.segments = 1 + (n_chunks - h + s - 1) / s;
      plan.seg_len = s * kFastChunk;
      plan.head_len = h * kFastChunk;
    }
  }
  plan.fast = big || plan.segments > 1 || p.scan_segments > 0;
  if (!plan.fast) plan = FwdPlan{};
  // Where the automatic plan splits L, the time-lane kernel computes each exp once instead of twice, in the case it
  // serves (fwd_lanes_ok: 16-bit inputs, z, softplus, L % 64 == 0; S3 bf16 0.322 -> ~0.28 ms on the H200).
  if (plan.segments > 1 && p.scan_segments == 0 && fwd_lanes_ok(p)) plan.lanes = true;
  return plan;
}

// Which forward kernel the automatic plan runs for p (with a workspace): "time-lane", "time-split", "sequential"
// (the unsplit fast kernel) or "general".
template <DType kType>
const char* selective_scan_fwd_plan_name(const SelectiveScanParams& p) {
  const FwdPlan plan = fwd_plan<kType>(p, true);
  if (plan.lanes) return "time-lane";
  if (plan.fast) return plan.segments > 1 ? "time-split" : "sequential";
  return "general";
}

template <DType kType>
size_t selective_scan_fwd_workspace(const SelectiveScanParams& p) {
  const FwdPlan plan = fwd_plan<kType>(p, true);
  if (plan.lanes) return fwd_lanes_workspace_bytes(p);
  return plan.fast ? fwd_workspace_layout(p, plan.segments, nullptr, nullptr) : 0;
}

// A second stream and two events per device for the split forward's head (created once, never destroyed: they
// live as long as the process's CUDA context).
struct FwdAux {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr, join = nullptr;
};
inline FwdAux& fwd_aux() {
  constexpr int kMaxDevices = 16;
  static FwdAux aux[kMaxDevices];
  int dev = 0;
  fwd_check(cudaGetDevice(&dev));
  if (dev < 0 || dev >= kMaxDevices) throw std::runtime_error("selective_scan_fwd_cuda: device index out of range");
  FwdAux& a = aux[dev];
  if (a.stream == nullptr) {
    fwd_check(cudaStreamCreateWithFlags(&a.stream, cudaStreamNonBlocking));
    fwd_check(cudaEventCreateWithFlags(&a.fork, cudaEventDisableTiming));
    fwd_check(cudaEventCreateWithFlags(&a.join, cudaEventDisableTiming));
  }
  return a;
}

template <DType kType, bool kSummary, int kMinBlocks = kFastMinBlocks, bool kSplit = kSummary>
void fwd_fast_launch_pass(const SelectiveScanParams& p, const FwdSegments& seg, int segments, cudaStream_t stream) {
  auto kernel = selective_scan_fwd_fast_kernel<IO<kType>, kSummary, kMinBlocks, kSplit>;
  const int smem = FastLayout<IO<kType>>::kBytes;
  fwd_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<fwd_fast_grid(p, segments), kFastThreads, smem, stream>>>(p, seg);
  fwd_check(cudaGetLastError());
}

// The kernels' view of a plan: its segments and, when split, their summaries in `workspace` (first = 0).
inline FwdSegments fwd_segments(const SelectiveScanParams& p, const FwdPlan& plan, void* workspace) {
  FwdSegments seg;
  seg.seg_len = plan.seg_len;
  seg.head_len = plan.head_len;
  seg.count = plan.segments;
  fwd_workspace_layout(p, plan.segments, static_cast<char*>(workspace), &seg);
  return seg;
}

template <DType kType>
void selective_scan_fwd_fast_launch(const SelectiveScanParams& p, const FwdPlan& plan, void* workspace,
                                    cudaStream_t stream) {
  FwdSegments seg = fwd_segments(p, plan, workspace);
  if (plan.segments > 1) {
    // The head's forward on a second stream, beside the summaries of segments 1 .. K-2 (pass 1); pass 2 (segments
    // 1 .. K-1) after both.
    FwdAux& aux = fwd_aux();
    fwd_check(cudaEventRecord(aux.fork, stream));
    fwd_check(cudaStreamWaitEvent(aux.stream, aux.fork, 0));
    fwd_fast_launch_pass<kType, false, kFastMinBlocks, true>(p, seg, 1, aux.stream);
    fwd_check(cudaEventRecord(aux.join, aux.stream));
    seg.first = 1;  // both launches below start at segment 1
    if (plan.segments > 2) fwd_fast_launch_pass<kType, true>(p, seg, plan.segments - 2, stream);
    fwd_check(cudaStreamWaitEvent(stream, aux.join, 0));
    return fwd_fast_launch_pass<kType, false, kFastMinBlocks, true>(p, seg, plan.segments - 1, stream);
  }
  if constexpr (kType == DType::Float32) {
    const dim3 g = fwd_fast_grid(p, 1);
    if (plan.segments == 1 && static_cast<long>(g.x) * g.y <= fwd_fast_resident_blocks<kType, kFastMinBlocksWide>())
      return fwd_fast_launch_pass<kType, false, kFastMinBlocksWide>(p, seg, 1, stream);
  }
  fwd_fast_launch_pass<kType, false>(p, seg, plan.segments, stream);
}

// `workspace`: selective_scan_fwd_workspace<kType>(p) bytes, or nullptr (then L is never split automatically).
template <DType kType>
void selective_scan_fwd_launch(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  const FwdPlan plan = fwd_plan<kType>(p, workspace != nullptr);
  if (p.scan_segments > 1 && workspace == nullptr && fwd_plan<kType>(p, true).segments > 1)
    throw std::runtime_error("selective_scan_fwd_cuda: scan_segments > 1 needs the forward workspace");
  if (plan.lanes) return fwd_lanes_launch<kType>(p, workspace, stream);
  if (plan.fast) return selective_scan_fwd_fast_launch<kType>(p, plan, workspace, stream);
  switch (choose_split(p)) {
    case 1: return selective_scan_fwd_launch_split<kType, 1>(p, stream);
    case 2: return selective_scan_fwd_launch_split<kType, 2>(p, stream);
    default: return selective_scan_fwd_launch_split<kType, 4>(p, stream);
  }
}

}  // namespace ss
}  // namespace mamba
