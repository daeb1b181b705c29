// Selective-scan backward, fast path for dstate == 16 with variable B and C when batch * dim is large and the
// grid fits in one wave (S1), non-deterministic mode. Included by selective_scan_bwd.cuh, which owns the
// workspace and the finishing kernels (dB/dC conversion, per-channel sums over the batch); this kernel fills the
// same workspace as the warp-chunk kernel: dB_acc/dC_acc by fp32 atomics, dA_part/dD_part/ddb_part per (b, d).
//
// Layout as the forward fast path: lane = (channel cl, quad j of 4 states), 8 channels per warp, kBfChannels per
// block, strictly sequential in time, one chunk = one checkpoint interval (kScanCheckpointChunk = 32 steps),
// chunks walked last to first. Per chunk:
//   1. convert the chunk's inputs, copied by cp.async during the previous chunk, into B, C as (t, 16) fp32 and
//      per (t, channel) (dt, dt*u, dy, u) and (softplus', dout*silu'(z)), where dy = dout*silu(z) is the gradient
//      of the pre-gate output; start the copies of the next chunk;
//   2. prepass: from the chunk's checkpoint, run the recurrence to the starts of sub-chunks 1..3 (shared memory);
//   3. per sub-chunk of kBfSub = 8 steps, last to first: recompute its states into registers H (and the pre-gate
//      output y when z is given), then walk it backwards with the adjoint g_t = C_t*dy_t + a_{t+1}*g_{t+1}:
//      dA, and per step s1 = sum_n g*B, s2 = sum_n A*g*a*h_{t-1} (du = dt*s1 + D*dy, ddelta = (s2 + u*s1)*
//      softplus'), dB = g*dt*u and dC = h*dy summed over each warp's 8 channels by a shuffle reduce-scatter and
//      added to the accumulators by each warp, kBfRed steps per atomic (one float4 atomic per (b, state, 4 steps)
//      per warp on sm_90; no barriers or shared memory in the walk). The walk is software-pipelined (kBfPipe):
//      a step's shared-memory operands are loaded and its decays computed during the step before it, and its
//      dB/dC are reduced during the step after it, so the reduce-scatter's three dependent shuffle stages overlap
//      another step's exps; lanes keep their 4 states in a lane-permuted slot order (bf_slot_perm) so that the
//      reduce-scatter needs no selects.
// Per element-state: 2.75 exps (prepass 0.75, recompute 1, reverse 1) and ~38 instructions (ncu), against ~65
// for the warp-chunk kernel. Sums over the 4 lanes of a channel are reduce-scatters (each lane ends with whole
// sums for some steps). It was bound by shared-memory (MIO) traffic when the dB/dC sums were staged in shared
// memory, hence the shuffles; now it is latency-bound at 3 warps per scheduler (ncu; docs/kernels/selective_scan.md).
#pragma once
#include <algorithm>
#include "selective_scan_common.cuh"

namespace mamba {
namespace ss {

#ifndef MAMBA_SS_BWD_FAST
#define MAMBA_SS_BWD_FAST 1
#endif
// Resident blocks per SM asked of the compiler: 3 (50-60 KB shared each) caps registers at 168; S1 needs 2.9.
#ifndef MAMBA_SS_BWD_FAST_MIN_BLOCKS
#define MAMBA_SS_BWD_FAST_MIN_BLOCKS 3
#endif
constexpr int kBfWarps = 4;
constexpr int kBfThreads = kBfWarps * 32;
constexpr int kBfChannels = kBfWarps * 8;
constexpr int kBfChunk = kScanCheckpointChunk;  // one checkpoint interval
constexpr int kBfSub = 8;                       // steps whose states a lane keeps in registers
constexpr int kBfRed = 4;                       // steps per dB/dC atomic (a float4 of consecutive steps)
#ifndef MAMBA_SS_BWD_PIPE
#define MAMBA_SS_BWD_PIPE 1
#endif
#ifndef MAMBA_SS_BWD_FENCE
#define MAMBA_SS_BWD_FENCE 1
#endif
// Walk pipelining (1) or none (0: each step loads, exps and reduces its own dB/dC, for comparisons).
constexpr bool kBfPipe = MAMBA_SS_BWD_PIPE;
constexpr int kBfFence = MAMBA_SS_BWD_FENCE;    // steps per __syncwarp scheduling fence in the walk (0: none)
constexpr int kBfSubs = kBfChunk / kBfSub;
static_assert(kBfChunk == 32 && kBfSubs == 4, "staging maps 128 threads onto 32 steps; prepass keeps 3 states");
static_assert(kBfThreads == 2 * 16 * kBfChunk / kItems, "one B or C run per thread");
static_assert(kBfThreads == kBfChannels * kBfChunk / kItems, "one channel run per thread");
static_assert(kBfChannels / kBfWarps == 8, "the dB/dC warp reduce-scatter maps 8 values onto 8 channels");
static_assert(kBfSub % kBfRed == 0, "flushes fall inside a sub-chunk");
// Row pitches of the per-(step, channel) arrays: the epilogue's lanes read steps 0, 2, 4, 6 apart (j-dependent) in
// the same instruction, so one float4 (sE) or two float2 (sF) of padding per row put those rows in different banks
// (unpadded, 512- and 256-byte rows made those loads 4-way conflicts).
constexpr int kBfEPitch = kBfChannels + 1;  // float4 per sE row
constexpr int kBfFPitch = kBfChannels + 2;  // float2 per sF row
// One of the 4 slot-permuted fp32 copies of a chunk's B (or C), (t, 16) plus 16 floats: copy s starts 4 bank
// quads after copy s - 1 (mod 8), so the two copies read by a quarter-warp (channels 2k, 2k+1) do not conflict.
constexpr int kBfBCCopy = kBfChunk * 16 + 16;

inline bool bwd_fast_eligible(const SelectiveScanParams& p) {
  return MAMBA_SS_BWD_FAST && p.dstate == 16 && p.is_variable_B && p.is_variable_C && !p.deterministic;
}

// raw_bytes: the cp.async staging buffers of one chunk in the io dtype (BfRaw<Io>::kBytes).
inline size_t bwd_fast_smem_bytes(size_t raw_bytes) {
  return sizeof(float) * (2 * 4 * kBfBCCopy) + sizeof(float4) * kBfChunk * kBfEPitch +
         sizeof(float2) * kBfChunk * kBfFPitch +
         sizeof(float4) * (kBfSubs + 1) * kBfThreads + raw_bytes;
}

// The raw (io dtype) cp.async staging buffers of one chunk: rows (u, delta, dout, z per channel; B, C per state)
// of kBfChunk elements padded by 16 bytes, so the 16-byte copies of lanes that own consecutive rows land in
// different bank quads (unpadded 64-byte rows made them 8-way conflicts).
template <class Io>
struct BfRaw {
  static constexpr int kPitch = kBfChunk + 16 / static_cast<int>(sizeof(typename Io::raw));  // elements per row
  static constexpr size_t kBytes = sizeof(typename Io::raw) * kPitch * (4 * kBfChannels + 2 * 16);
};

// Reduce-scatter of v[0..7] (one value per step of a sub-chunk) over the 4 lanes of a channel: afterwards
// lane j holds the 4-lane sums of steps 4*(j&1) + 2*(j>>1) + {0, 1} in v[0], v[1].
__device__ __forceinline__ void reduce_scatter8(float (&v)[kBfSub], int j) {
  const bool b0 = j & 1, b1 = j & 2;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float send = b0 ? v[k] : v[k + 4];
    const float keep = b0 ? v[k + 4] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
  }
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const float send = b1 ? v[k] : v[k + 2];
    const float keep = b1 ? v[k + 2] : v[k];
    v[k] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
  }
}

// State slots of the fast backward: lane (channel cl, quad j) keeps state 4j + (q ^ s) in its slot q, s = cl & 3
// (lane bits 2-3), and reads B and C from copy s of the staged chunk, whose columns are permuted the same way
// (kBfBCCopy). Which slots a lane keeps in each stage of warp_channel_sum8 is then the same in every lane, so the
// reduce-scatter needs no selects on its state stages (ncu, S2 bf16: 17 FSEL per lane-step, 11% of the kernel's
// instructions, most of them in that sum; 12 fewer per lane-step now). Alone it changed no timing beyond noise (the
// walk is latency-bound, not issue-bound); with the pipelined walk below the two together gave S2 bf16 -3%.
__device__ __forceinline__ int bf_slot_perm(int lane) { return (lane >> 2) & 3; }

// out[q] = v[q ^ s]: a float4 in natural state order to (or from, the map is its own inverse) permuted slots.
__device__ __forceinline__ void perm_slots(const float4 v, int s, float (&out)[4]) {
  const bool s0 = s & 1, s1 = s & 2;
  const float x0 = s0 ? v.y : v.x, x1 = s0 ? v.x : v.y, x2 = s0 ? v.w : v.z, x3 = s0 ? v.z : v.w;
  out[0] = s1 ? x2 : x0;
  out[1] = s1 ? x3 : x1;
  out[2] = s1 ? x0 : x2;
  out[3] = s1 ? x1 : x3;
}

// Reduce-scatter of a lane's dB and dC (its 4 slots) over the 8 channels of its warp (lane bits 2..4, partners
// xor 4, 8, 16): returns the warp's sum of matrix lane >> 4 (0: dB, 1: dC), state 4 * (lane & 3) + s. With the
// permuted slots, the xor-4 partner's slot 2k+1 and this lane's slot 2k hold the same state, and after that stage
// the xor-8 partner's second value and this lane's first; only the last stage (which matrix to keep) selects.
// 7 shuffles and 2 selects per step.
__device__ __forceinline__ float warp_channel_sum8(const float (&dB)[4], const float (&dC)[4], int lane) {
  const float b0 = dB[0] + __shfl_xor_sync(0xffffffffu, dB[1], 4);
  const float b1 = dB[2] + __shfl_xor_sync(0xffffffffu, dB[3], 4);
  const float c0 = dC[0] + __shfl_xor_sync(0xffffffffu, dC[1], 4);
  const float c1 = dC[2] + __shfl_xor_sync(0xffffffffu, dC[3], 4);
  const float b = b0 + __shfl_xor_sync(0xffffffffu, b1, 8);
  const float c = c0 + __shfl_xor_sync(0xffffffffu, c1, 8);
  const bool hi = lane & 16;
  return (hi ? c : b) + __shfl_xor_sync(0xffffffffu, hi ? b : c, 16);
}

// row[t + i] = v[i] for i < 2 and t + i < L (t even).
template <class Io>
__device__ __forceinline__ void store2(typename Io::raw* row, int t, int L, bool vec, float v0, float v1) {
  if (vec && t + 2 <= L) {
    store_pair<Io>(row + t, v0, v1);
  } else {
    if (t < L) row[t] = Io::store(v0);
    if (t + 1 < L) row[t + 1] = Io::store(v1);
  }
}

// Channel c (0 .. kBfChannels-1) of the block's tile of group g: whether it exists, its channel index d (0 for a
// padding channel) and its (batch, channel) row b * dim + d.
struct BfChannel {
  bool active;
  int d;
  size_t bd;
};
__device__ __forceinline__ BfChannel bf_channel(const SelectiveScanParams& p, int gs, int b, int g, int tile, int c) {
  BfChannel ch;
  ch.active = tile * kBfChannels + c < gs;
  ch.d = g * gs + (ch.active ? tile * kBfChannels + c : 0);
  ch.bd = static_cast<size_t>(b) * p.dim + ch.d;
  return ch;
}

// The chained hand-off of a split backward (ws.chain != nullptr; no summary pass). ws.chain holds a grab counter,
// then one flag per (segment 1 .. K-1, cell), cell = batch row * gridDim.x + tile index, all zero at launch. Blocks
// take work items in grab order: items [0, base) are segment K-1, [base, 2 base) segment K-2 and so on (base =
// gridDim.x * gridDim.y). Item i waits for item i - base (same cell, next segment), which was grabbed earlier and
// so is running or done; the earliest unfinished item never waits, so the chain cannot deadlock whatever the
// residency, and when base >= the resident blocks its producer started a whole wave earlier (normally done).
struct BwdItem {
  int x, y, seg, cell;
};

// kChained false: the block index. kChained: thread 0 grabs an item into s_item, every thread reads it; later
// calls with grab false read the same item again (from shared memory, so that it needs no registers in between).
template <bool kChained>
__device__ __forceinline__ BwdItem bwd_chain_item(const BwdWorkspace& ws, int* s_item, bool grab) {
  BwdItem it{static_cast<int>(blockIdx.x), static_cast<int>(blockIdx.y), static_cast<int>(blockIdx.z), 0};
  if constexpr (kChained) {
    if (grab) {
      if (threadIdx.x == 0) *s_item = atomicAdd(ws.chain, 1);
      __syncthreads();
    }
    const int base = gridDim.x * gridDim.y, i = *static_cast<volatile int*>(s_item);
    it.cell = i % base;
    it.x = it.cell % gridDim.x;
    it.y = it.cell / gridDim.x;
    it.seg = ws.segments - 1 - i / base;
  }
  return it;
}

// The flag of segment seg (1 .. K-1) and cell: set once that segment's block has left its adjoint in ws.g_loc.
__device__ __forceinline__ int* bwd_chain_flag(const BwdWorkspace& ws, int seg, int cell) {
  return ws.chain + 1 + static_cast<size_t>(seg - 1) * gridDim.x * gridDim.y + cell;
}

// Waits until the block of segment it.seg + 1 (same cell) has left its adjoint in ws.g_loc (read it with __ldcg:
// L1 is not coherent across SMs).
__device__ __forceinline__ void bwd_chain_wait(const BwdWorkspace& ws, const BwdItem& it) {
  if (threadIdx.x == 0) {
    const volatile int* f = bwd_chain_flag(ws, it.seg + 1, it.cell);
    while (*f == 0) __nanosleep(256);
    __threadfence();
  }
  __syncthreads();
}

// After every thread stored its part of the adjoint leaving segment it.seg (> 0): the flag its consumer waits on.
__device__ __forceinline__ void bwd_chain_post(const BwdWorkspace& ws, const BwdItem& it) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) atomicExch(bwd_chain_flag(ws, it.seg, it.cell), 1);
}

// kChained: a split with the chained hand-off (ws.chain); otherwise unsplit or after the summary pass.
template <class Io, bool kChained>
__global__ void __launch_bounds__(kBfThreads, MAMBA_SS_BWD_FAST_MIN_BLOCKS) selective_scan_bwd_fast_kernel(const SelectiveScanParams p,
                                                                                 const BwdWorkspace ws) {
  using raw = typename Io::raw;
  extern __shared__ float4 smem_f4[];
  float* sB = reinterpret_cast<float*>(smem_f4);                      // 4 copies of (kBfChunk, 16), kBfBCCopy apart
  float* sC = sB + 4 * kBfBCCopy;                                     // 4 copies of (kBfChunk, 16)
  float4* sE = reinterpret_cast<float4*>(sC + 4 * kBfBCCopy);         // (kBfChunk, kBfEPitch) dt, dt*u, dy, u
  float2* sF = reinterpret_cast<float2*>(sE + kBfChunk * kBfEPitch);  // (kBfChunk, kBfFPitch) softplus', dz factor
  float4* sHs = reinterpret_cast<float4*>(sF + kBfChunk * kBfFPitch);  // (kBfSubs, kBfThreads) sub-chunk start states
  float4* sCk = sHs + kBfSubs * kBfThreads;           // (kBfThreads) each lane's checkpoint of the next chunk
  constexpr int RP = BfRaw<Io>::kPitch;
  raw* rawE = reinterpret_cast<raw*>(sCk + kBfThreads);  // (4 arrays u/delta/dout/z, kBfChannels, RP)
  raw* rawBC = rawE + 4 * kBfChannels * RP;              // (2 matrices, 16, RP)

  constexpr int N = 16;
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kBfChannels - 1) / kBfChannels;
  const int tid = threadIdx.x, lane = tid % 32;
  // This lane's copies of B and C (slot order, bf_slot_perm): step t's 4 values at [t * 4 + j].
  const int sp = bf_slot_perm(lane);
  const float4* sB4 = reinterpret_cast<const float4*>(sB + sp * kBfBCCopy);
  const float4* sC4 = reinterpret_cast<const float4*>(sC + sp * kBfBCCopy);
  // The block's (tile, batch row, time segment): its block index, or with the chained hand-off (ws.chain) the next
  // work item in grab order, segments last to first, so that the segment after each item was taken by a block that
  // started before it (bwd_chain_item).
  __shared__ int s_item[1];
  const BwdItem item = bwd_chain_item<kChained>(ws, s_item, true);
  const int b = item.y, g = item.x / tiles, tile = item.x % tiles;
  // The block's time segment (one covering L when unsplit): checkpoint intervals [c_begin, c_end), walked last to
  // first.
  const int kseg = item.seg;
  const int c_begin = kseg * ws.seg_len / kBfChunk;
  const int c_end = (min(L, (kseg + 1) * ws.seg_len) + kBfChunk - 1) / kBfChunk;
  const size_t group_off = (static_cast<size_t>(b) * p.n_groups + g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  const bool vec_u = rows_vectorizable(p.u, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L), vec_dout = rows_vectorizable(p.dout, L);
  const bool vec_du = rows_vectorizable(p.du, L), vec_ddl = rows_vectorizable(p.ddelta, L);
  const bool vec_dz = rows_vectorizable(p.dz, L);

  // Staging role: B (threads 0..63) or C (64..127) state row sn at step offset soff; channel cs at offset c_off.
  const int sm = tid / 64, sn = tid % 16, soff = ((tid / 16) % 4) * kItems;
  const raw* s_bc = (sm == 0 ? Bg : Cg) + static_cast<size_t>(sn) * L;
  float* s_dst = sm == 0 ? sB : sC;
  const bool vec_bc = sm == 0 ? vec_B : vec_C;
  const int cs = tid % 32, c_off = (tid / 32) * kItems;
  const BfChannel sch = bf_channel(p, gs, b, g, tile, cs);
  const bool s_active = sch.active;
  const int ds = sch.d;
  const size_t s_row = sch.bd * L;
  const float s_bias = (s_active && p.has_delta_bias) ? p.delta_bias[ds] : 0.f;

  // Scan role: channel cl, states 4j .. 4j+3.
  const int cl = (tid / 32) * 8 + lane / 4, j = lane % 4;
  const BfChannel lch = bf_channel(p, gs, b, g, tile, cl);
  const bool l_active = lch.active;
  const int dl = lch.d;
  const size_t bdl = lch.bd;
  const size_t l_row = bdl * L;
  const float l_D = (l_active && p.has_D) ? p.D[dl] : 0.f;
  float An[4], A2[4], gin[4], dA[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    An[q] = l_active ? p.A[static_cast<size_t>(dl) * N + 4 * j + (q ^ sp)] : 0.f;
    A2[q] = An[q] * kLog2e;
    // The adjoint entering h_{L-1} from the right: the gradient of last_state, if any.
    gin[q] = (l_active && p.dlast_state != nullptr) ? p.dlast_state[bdl * N + 4 * j + (q ^ sp)] : 0.f;
    dA[q] = 0.f;
  }
  // Split, chained: the adjoint entering this segment from the right is the one the block of the next segment
  // left at its first step.
  if (kChained && kseg + 1 < ws.segments) {
    bwd_chain_wait(ws, item);
    if (l_active) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(ws.g_loc + (static_cast<size_t>(kseg) * p.batch * p.dim + bdl) * N) + j);
      perm_slots(v, sp, gin);
    }
  }
  // Split with a summary pass: the adjoint entering this segment from the right, formed from the summaries of the
  // segments after it (last to first): g = exp2(A2 * sum dt) * g + g_loc, starting from dlast_state.
  if (l_active && !kChained) {
#pragma unroll 4
    for (int s = ws.segments - 1; s > kseg; --s) {
      const size_t o = static_cast<size_t>(s - 1) * p.batch * p.dim + bdl;
      float loc[4];
      perm_slots(*reinterpret_cast<const float4*>(ws.g_loc + o * N + 4 * j), sp, loc);
      carry_segment(gin, A2, ws.sdt[o], make_float4(loc[0], loc[1], loc[2], loc[3]));
    }
  }
  float dD_acc = 0.f, ddb_acc = 0.f;  // this lane's steps of channel cl

  // The accumulator row of this lane's value of warp_channel_sum8 (matrix lane >> 4, state 4 * (lane & 3) +
  // ((lane >> 2) & 3)): the warp's sums over its 8 channels of steps t0g .. t0g + kBfRed - 1, added with one
  // float4 atomic on sm_90 when the row allows 16-byte access (L % 4 == 0; t0g is a multiple of 4).
  float* const r_acc = (lane < 16 ? ws.dB_acc : ws.dC_acc) + group_off +
                       static_cast<size_t>(4 * (lane & 3) + ((lane >> 2) & 3)) * L;
  const bool vec_acc = L % 4 == 0;
  // red, not atomicAdd (see red_add): ncu, S2, chained: a returning atom per flush, long-scoreboard stalls 0.47 per
  // issued instruction against S1's 0.28.
  auto flush = [&](int t0g, const float (&v)[kBfRed]) {
    if (vec_acc && t0g + kBfRed <= L) {
      red_add4(r_acc + t0g, make_float4(v[0], v[1], v[2], v[3]));
      return;
    }
#pragma unroll
    for (int k = 0; k < kBfRed; ++k)
      if (t0g + k < L) red_add(r_acc + t0g + k, v[k]);
  };

  const int n_ckpt = num_ckpts(L);
  // The next chunk's inputs (u, delta, dout, z and B, C rows, this lane's checkpoint) are copied with cp.async
  // into raw buffers while the current chunk is computed. Copy role: thread tid copies run tid % 4 (kItems steps) of
  // channel tid / 4 and of B/C row tid / 4, so a warp copies 8 whole chunk rows (each lane of the conversion role
  // below would touch a different row). Every thread waits for its own copies before the barrier that opens a
  // chunk, and the next chunk's copies are issued after the barrier that follows the conversion, when every thread
  // has read the raw buffers. Rows that do not allow 16-byte copies use synchronous loads in the conversion role.
  const raw* in_rows[4] = {static_cast<const raw*>(p.u) + s_row, static_cast<const raw*>(p.delta) + s_row,
                           static_cast<const raw*>(p.dout) + s_row,
                           p.has_z ? static_cast<const raw*>(p.z) + s_row : nullptr};
  const bool async = MAMBA_SS_ASYNC_STAGE && vec_u && vec_dl && vec_dout && (!p.has_z || vec_z) && vec_B && vec_C &&
                     reinterpret_cast<uintptr_t>(p.checkpoints) % 16 == 0;
  constexpr int kRunCopies = kItems * static_cast<int>(sizeof(raw)) / 16;  // 16-byte copies per run
  const raw* my_raw_bc = rawBC + (sm * 16 + sn) * RP + soff;
  const int cp_ch = tid / 4, cp_off = (tid % 4) * kItems;
  const bool cp_active = tile * kBfChannels + cp_ch < gs;
  const size_t cp_row = (static_cast<size_t>(b) * p.dim + g * gs + (cp_active ? tile * kBfChannels + cp_ch : 0)) * L;
  // B/C row cp_ch (0-15 B, 16-31 C) relative to B or C: the pointers are formed per copy from the kernel
  // parameters, which keeps them out of registers.
  const size_t cp_bc_row = group_off + static_cast<size_t>(cp_ch % 16) * L;
  auto prefetch = [&](int cn) {
    if (!async || cn < c_begin) return;
    const int tn = cn * kBfChunk;
    const bool in_c = tn + cp_off < L;  // runs lie wholly inside or outside [0, L)
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (k == 3 && !p.has_z) continue;
      raw* dst = rawE + (k * kBfChannels + cp_ch) * RP + cp_off;
      const void* base = k == 0 ? p.u : k == 1 ? p.delta : k == 2 ? p.dout : p.z;
      const raw* src = static_cast<const raw*>(base) + cp_row + (in_c ? tn + cp_off : 0);
#pragma unroll
      for (int q = 0; q < kRunCopies; ++q)
        cp_async16(dst + q * 16 / static_cast<int>(sizeof(raw)), src + q * 16 / static_cast<int>(sizeof(raw)),
                   cp_active && in_c ? 16 : 0);
    }
    raw* dst_bc = rawBC + cp_ch * RP + cp_off;
    const raw* src_bc = static_cast<const raw*>(cp_ch < 16 ? p.B : p.C) + cp_bc_row + (in_c ? tn + cp_off : 0);
#pragma unroll
    for (int q = 0; q < kRunCopies; ++q)
      cp_async16(dst_bc + q * 16 / static_cast<int>(sizeof(raw)), src_bc + q * 16 / static_cast<int>(sizeof(raw)),
                 in_c ? 16 : 0);
    cp_async16(&sCk[tid], p.checkpoints + (bdl * n_ckpt + cn) * N + 4 * j, l_active ? 16 : 0);
    cp_async_commit();
  };
  prefetch(c_end - 1);

  for (int c = c_end - 1; c >= c_begin; --c) {
    const int t0 = c * kBfChunk;
    if (async) cp_async_wait_all();  // this thread's copies of chunk c, visible to all after the barrier
    __syncthreads();  // the previous chunk's readers are done with every fp32 buffer
    float h_ck[4];  // this lane's checkpoint: the state before the chunk
    {
      float v[kItems];
      float in[4][kItems];
      if (async) {
        load_items<Io>(my_raw_bc, 0, kItems, true, v);
#pragma unroll
        for (int k = 0; k < 4; ++k)
          if (k < 3 || p.has_z) load_items<Io>(rawE + (k * kBfChannels + cs) * RP + c_off, 0, kItems, true, in[k]);
        const float4 ck = sCk[tid];
        perm_slots(ck, sp, h_ck);
      } else {
        load_items<Io>(s_bc, t0 + soff, L, vec_bc, v);
        if (s_active) {
          load_items<Io>(in_rows[0], t0 + c_off, L, vec_u, in[0]);
          load_items<Io>(in_rows[1], t0 + c_off, L, vec_dl, in[1]);
          load_items<Io>(in_rows[2], t0 + c_off, L, vec_dout, in[2]);
          if (p.has_z) load_items<Io>(in_rows[3], t0 + c_off, L, vec_z, in[3]);
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k)
#pragma unroll
            for (int i = 0; i < kItems; ++i) in[k][i] = 0.f;
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) h_ck[q] = l_active ? p.checkpoints[(bdl * n_ckpt + c) * N + 4 * j + (q ^ sp)] : 0.f;
      }
#pragma unroll
      for (int i = 0; i < kItems; ++i)
#pragma unroll
        for (int cp = 0; cp < 4; ++cp) s_dst[cp * kBfBCCopy + (soff + i) * N + (sn ^ cp)] = v[i];
      // Every element is converted, then padded steps and inactive channels are masked (dt = 0 and no output
      // gradient, so the adjoint passes through and nothing is accumulated): branches per element would keep the
      // compiler from interleaving the elements' independent softplus and sigmoid chains.
      float dt[kItems], dsp[kItems], dy[kItems], dzf[kItems];
#pragma unroll
      for (int i = 0; i < kItems; ++i) dt[i] = in[1][i] + s_bias;
      if (p.delta_softplus) {
#pragma unroll
        for (int i = 0; i < kItems; ++i) softplus_sigmoid(dt[i], dt[i], dsp[i]);
      } else {
#pragma unroll
        for (int i = 0; i < kItems; ++i) dsp[i] = 1.f;
      }
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        dy[i] = in[2][i];
        dzf[i] = 0.f;
      }
      if (p.has_z) {
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const float z = in[3][i];
          const float sg = sigmoidf_fast(z);
          dy[i] = in[2][i] * z * sg;
          dzf[i] = in[2][i] * sg * fmaf(z, 1.f - sg, 1.f);
        }
      }
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int t = c_off + i;
        const bool ok = s_active && t0 + t < L;
        const float uu = ok ? in[0][i] : 0.f, d = ok ? dt[i] : 0.f;
        sE[t * kBfEPitch + cs] = make_float4(d, d * uu, ok ? dy[i] : 0.f, uu);
        sF[t * kBfFPitch + cs] = make_float2(ok ? dsp[i] : 0.f, ok ? dzf[i] : 0.f);
      }
    }
    __syncthreads();
    prefetch(c - 1);  // every thread has read its raw runs and checkpoint slot of chunk c

    // Prepass: the states before steps 0, 8, 16 and 24 of the chunk, kept in shared memory (registers are
    // what limits resident warps) and read only by this lane.
    {
      float h[4] = {h_ck[0], h_ck[1], h_ck[2], h_ck[3]};
      sHs[tid] = make_float4(h[0], h[1], h[2], h[3]);
#pragma unroll
      for (int s = 1; s < kBfSubs; ++s) {
#pragma unroll
        for (int i = 0; i < kBfSub; ++i) {
          const int t = (s - 1) * kBfSub + i;
          const float4 e = sE[t * kBfEPitch + cl];
          const float4 bv = sB4[t * 4 + j];
          state_step4(h, A2, e.x, e.y, bv);
        }
        sHs[s * kBfThreads + tid] = make_float4(h[0], h[1], h[2], h[3]);
      }
    }

    // Not unrolled: two sub-chunks unrolled together (overlapping one's reduce-scatters and epilogue with the next
    // one's recompute) spilled more and measured 1-2% slower (H200, docs/perf.md, seventh session).
#pragma unroll 1
    for (int s = kBfSubs - 1; s >= 0; --s) {
      const int tb = s * kBfSub;  // first step of the sub-chunk within the chunk
      const float4 hs = sHs[s * kBfThreads + tid];
      const float hstart[4] = {hs.x, hs.y, hs.z, hs.w};

      // Recompute: H[i] = state after step tb + i; y = C . h over this lane's states, reduce-scattered so lane j
      // holds its two epilogue steps.
      float H[kBfSub][4];
      float y[2] = {0.f, 0.f};  // pre-gate output without D*u at this lane's two steps
      {
        float yp[kBfSub];
        float h[4] = {hstart[0], hstart[1], hstart[2], hstart[3]};
#pragma unroll
        for (int i = 0; i < kBfSub; ++i) {
          const int t = tb + i;
          const float4 e = sE[t * kBfEPitch + cl];
          const float4 bv = sB4[t * 4 + j];
          state_step4(h, A2, e.x, e.y, bv);
#pragma unroll
          for (int q = 0; q < 4; ++q) H[i][q] = h[q];
          if (p.has_z) {
            const float4 cv = sC4[t * 4 + j];
            yp[i] = fmaf(cv.w, h[3], fmaf(cv.z, h[2], fmaf(cv.y, h[1], cv.x * h[0])));
          }
        }
        if (p.has_z) {
          reduce_scatter8(yp, j);
          y[0] = yp[0];
          y[1] = yp[1];
        }
      }

      // Reverse walk over the sub-chunk.
      float s1v[kBfSub], s2v[kBfSub];
      float red[kBfRed];  // this lane's warp sums of steps tb + 4 * (i / 4) + 0 .. 3
      float pB[4], pC[4];  // kBfPipe: dB, dC of the step after the current one, not yet reduced
      // kBfPipe: each step's shared-memory operands are loaded, and its decays computed, during the step before it.
      float4 n_e = sE[(tb + kBfSub - 1) * kBfEPitch + cl], n_b = sB4[(tb + kBfSub - 1) * 4 + j],
             n_c = sC4[(tb + kBfSub - 1) * 4 + j];
      float n_a[4];
      if constexpr (kBfPipe)
#pragma unroll
        for (int q = 0; q < 4; ++q) n_a[q] = fast_exp2(n_e.x * A2[q]);
#pragma unroll
      for (int i = kBfSub - 1; i >= 0; --i) {
        const int t = tb + i;
        const float4 e = kBfPipe ? n_e : sE[t * kBfEPitch + cl];
        const float4 bv4 = kBfPipe ? n_b : sB4[t * 4 + j];
        const float4 cv4 = kBfPipe ? n_c : sC4[t * 4 + j];
        float a_t[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) a_t[q] = kBfPipe ? n_a[q] : fast_exp2(e.x * A2[q]);
        if (kBfPipe && i > 0) {
          n_e = sE[(t - 1) * kBfEPitch + cl];
          n_b = sB4[(t - 1) * 4 + j];
          n_c = sC4[(t - 1) * 4 + j];
#pragma unroll
          for (int q = 0; q < 4; ++q) n_a[q] = fast_exp2(n_e.x * A2[q]);
        }
        const float bv[4] = {bv4.x, bv4.y, bv4.z, bv4.w};
        const float cv[4] = {cv4.x, cv4.y, cv4.z, cv4.w};
        float s1 = 0.f, s2 = 0.f, dBq[4], dCq[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const float hprev = i == 0 ? hstart[q] : H[i - 1][q];
          const float a = a_t[q];
          const float gq = fmaf(cv[q], e.z, gin[q]);  // g_t = C_t*dy_t + a_{t+1}*g_{t+1}
          const float qv = gq * (a * hprev);
          dA[q] = fmaf(e.x, qv, dA[q]);
          s2 = fmaf(An[q], qv, s2);
          s1 = fmaf(gq, bv[q], s1);
          dBq[q] = gq * e.y;
          dCq[q] = H[i][q] * e.z;
          gin[q] = a * gq;
        }
        s1v[i] = s1;
        s2v[i] = s2;
        if constexpr (kBfPipe) {
          // The step after this one is reduced now, so its shuffles overlap this step's exps and products.
          if (i + 1 < kBfSub) {
            red[(i + 1) % kBfRed] = warp_channel_sum8(pB, pC, lane);
            if ((i + 1) % kBfRed == 0) flush(t0 + t + 1, red);
          }
#pragma unroll
          for (int q = 0; q < 4; ++q) pB[q] = dBq[q], pC[q] = dCq[q];
        } else {
          red[i % kBfRed] = warp_channel_sum8(dBq, dCq, lane);
          if (i % kBfRed == 0) flush(t0 + t, red);  // steps t .. t + kBfRed - 1
        }
        // A scheduling fence (the barriers of the shared-memory reduction were one): without any the unrolled
        // walk is interleaved across steps and spills 200-600 bytes.
        if (kBfFence > 0 && i % kBfFence == 0) __syncwarp();
      }
      if constexpr (kBfPipe) {
        red[0] = warp_channel_sum8(pB, pC, lane);
        flush(t0 + tb, red);
      }
      reduce_scatter8(s1v, j);
      reduce_scatter8(s2v, j);
      // Epilogue for this lane's two steps of the sub-chunk.
      const int te = tb + 4 * (j & 1) + 2 * (j >> 1);
      float du[2], ddl[2], dz[2];
#pragma unroll
      for (int k = 0; k < 2; ++k) {
        const float4 e = sE[(te + k) * kBfEPitch + cl];
        const float2 f = sF[(te + k) * kBfFPitch + cl];
        du[k] = fmaf(e.x, s1v[k], l_D * e.z);
        ddl[k] = fmaf(e.w, s1v[k], s2v[k]) * f.x;
        dz[k] = p.has_z ? fmaf(l_D, e.w, y[k]) * f.y : 0.f;
        dD_acc = fmaf(e.z, e.w, dD_acc);
        ddb_acc += ddl[k];
      }
      if (l_active) {
        store2<Io>(static_cast<raw*>(p.du) + l_row, t0 + te, L, vec_du, du[0], du[1]);
        store2<Io>(static_cast<raw*>(p.ddelta) + l_row, t0 + te, L, vec_ddl, ddl[0], ddl[1]);
        if (p.has_z) store2<Io>(static_cast<raw*>(p.dz) + l_row, t0 + te, L, vec_dz, dz[0], dz[1]);
      }
    }
  }

  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 1);
  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 2);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 1);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 2);
  // The item again (kChained: from shared memory, so that kseg and the cell hold no registers through the walk).
  const BwdItem it = bwd_chain_item<kChained>(ws, s_item, false);
  if constexpr (kChained) {
    if (it.seg > 0) {
      if (l_active) {
        float g[4];
        perm_slots(make_float4(gin[0], gin[1], gin[2], gin[3]), sp, g);
        *(reinterpret_cast<float4*>(ws.g_loc + (static_cast<size_t>(it.seg - 1) * p.batch * p.dim + bdl) * N) + j) =
            make_float4(g[0], g[1], g[2], g[3]);
      }
      bwd_chain_post(ws, it);
    }
  }
  if (!l_active) return;
  // Per-segment partials (summed over segments in order by the channel kernel); the adjoint leaving segment 0 is
  // dinitial_state.
  const size_t part = static_cast<size_t>(it.seg) * p.batch * p.dim + bdl;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    ws.dA_part[part * N + 4 * j + (q ^ sp)] = dA[q];
    if (p.dinitial_state != nullptr && it.seg == 0) p.dinitial_state[bdl * N + 4 * j + (q ^ sp)] = gin[q];
  }
  if (j == 0) {
    ws.dD_part[part] = dD_acc;
    ws.ddb_part[part] = ddb_acc;
  }
}

// Whether the summary pass runs and zeroes the dB/dC accumulators itself (a time split with the summary hand-off).
inline bool bwd_summary_zeroes(const BwdWorkspace& ws) { return ws.segments > 1 && ws.chain == nullptr; }

// Pass 1 of a split backward: for segment k = blockIdx.z + 1 (1 .. segments-1), the adjoint-only reverse
// recurrence g <- a_t * (C_t * dy_t + g) over its steps from g = 0 at its right end (no states, no checkpoints),
// giving the local adjoint leaving its first step (g_loc) and its sum of dt. Same lanes as the fast kernel
// (channel cl, 4 states); per 32-step chunk the block stages C as (t, 16) fp32 and per channel (dt, dy), for 16-bit
// inputs from copies of the chunk made during the previous one (cp.async; with plain loads every block of an SM
// waited on its loads at the same time).
template <class Io>
__global__ void __launch_bounds__(kBfThreads) selective_scan_bwd_summary_kernel(const SelectiveScanParams p,
                                                                             const BwdWorkspace ws) {
  using raw = typename Io::raw;
  constexpr int N = 16, T = kBfChunk;
  __shared__ float4 sC4[T * 4];              // (t, 16) fp32 C
  __shared__ float2 sEy[T * kBfChannels];    // (t, channel) dt, dy
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kBfChannels - 1) / kBfChannels;
  const int b = blockIdx.y, g = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int tid = threadIdx.x, lane = tid % 32;
  const int kseg = blockIdx.z + 1;
  {
    // The dB/dC accumulators that the fast kernel adds into (bwd_summary_zeroes: no memset launch before it).
    size_t floats = 0;
    float4* acc = reinterpret_cast<float4*>(bc_acc_range(ws, &floats));
    const size_t nb = static_cast<size_t>(gridDim.x) * gridDim.y * gridDim.z;
    const size_t blk = (static_cast<size_t>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    for (size_t i = blk * kBfThreads + tid; i < floats / 4; i += nb * kBfThreads) acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  const int c_begin = kseg * ws.seg_len / T;
  const int c_end = (min(L, (kseg + 1) * ws.seg_len) + T - 1) / T;
  const size_t group_off = (static_cast<size_t>(b) * p.n_groups + g) * N * L;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const bool vec_C = rows_vectorizable(p.C, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L), vec_dout = rows_vectorizable(p.dout, L);

  // Staging: threads 0..63 load C row tid % 16 at step offset (tid / 16) * 8; every thread loads channel tid % 32
  // at step offset (tid / 32) * 8.
  const int sn = tid % 16, soff = (tid / 16) * kItems;
  const int cs = tid % 32, c_off = (tid / 32) * kItems;
  const BfChannel sch = bf_channel(p, gs, b, g, tile, cs);
  const bool s_active = sch.active;
  const int ds = sch.d;
  const size_t s_row = sch.bd * L;
  const float s_bias = (s_active && p.has_delta_bias) ? p.delta_bias[ds] : 0.f;

  const int cl = (tid / 32) * 8 + lane / 4, j = lane % 4;
  const BfChannel lch = bf_channel(p, gs, b, g, tile, cl);
  const bool l_active = lch.active;
  const int dl = lch.d;
  const size_t bdl = lch.bd;
  float A2[4], gq[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int q = 0; q < 4; ++q) A2[q] = l_active ? p.A[static_cast<size_t>(dl) * N + 4 * j + q] * kLog2e : 0.f;
  float dt_sum = 0.f;

  // Chunk inputs: for 16-bit inputs with 16-byte rows each thread copies its runs (C row sn, and delta, dout, z of
  // channel cs) of the next chunk with cp.async into its own slots of sRaw while the current chunk is scanned, and
  // converts them itself (so it waits only for its own copies); the copies are issued after the barrier that
  // follows the conversion, when the thread has read its slots. Otherwise plain loads at the start of each chunk:
  // for fp32 rows the copies were slower (H200, S3: bf16 fwd+bwd -0.5%, fp32 +2%; docs/perf.md, ninth session).
  constexpr bool kCopies = MAMBA_SS_ASYNC_STAGE && sizeof(raw) == 2;
  constexpr int kRunCopies = kItems * static_cast<int>(sizeof(raw)) / 16;  // 16-byte copies per run
  __shared__ uint4 sRaw[kCopies ? 4 * kBfThreads * kRunCopies : 1];       // (C, delta, dout, z; thread; run)
  auto slot = [&](int k) { return sRaw + (k * kBfThreads + tid) * kRunCopies; };
  const bool async = kCopies && vec_C && vec_dl && vec_dout && (!p.has_z || vec_z);
  // Row k of this thread: C row sn (k 0), or channel cs of delta, dout, z (k 1-3).
  auto row = [&](int k) {
    if (k == 0) return Cg + static_cast<size_t>(sn) * L;
    return static_cast<const raw*>(k == 1 ? p.delta : k == 2 ? p.dout : p.z) + s_row;
  };
  auto issue = [&](int c) {
    const int t0 = c * T;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if ((k == 0 && tid >= 64) || (k == 3 && !p.has_z)) continue;
      const int off = t0 + (k == 0 ? soff : c_off);
      const bool in = off < L && (k == 0 || s_active);  // runs lie wholly inside or outside [0, L)
      const raw* src = row(k) + (in ? off : 0);
#pragma unroll
      for (int q = 0; q < kRunCopies; ++q)
        cp_async16(slot(k) + q, src + q * 16 / static_cast<int>(sizeof(raw)), in ? 16 : 0);
    }
    cp_async_commit();
  };

  // Chunk c's C rows as (t, 16) fp32 and its channels' (dt, dy) into shared memory.
  auto stage = [&](int c) {
    const int t0 = c * T;
    if (tid < 64) {
      float v[kItems];
      if (async)
        load_items<Io>(reinterpret_cast<const raw*>(slot(0)), 0, kItems, true, v);
      else
        load_items<Io>(row(0), t0 + soff, L, vec_C, v);
      float* dst = reinterpret_cast<float*>(sC4);
#pragma unroll
      for (int i = 0; i < kItems; ++i) dst[(soff + i) * N + sn] = v[i];
    }
    float x[kItems], dout[kItems], z[kItems];
    if (async) {
      load_items<Io>(reinterpret_cast<const raw*>(slot(1)), 0, kItems, true, x);
      load_items<Io>(reinterpret_cast<const raw*>(slot(2)), 0, kItems, true, dout);
      if (p.has_z) load_items<Io>(reinterpret_cast<const raw*>(slot(3)), 0, kItems, true, z);
    } else if (s_active) {
      load_items<Io>(row(1), t0 + c_off, L, vec_dl, x);
      load_items<Io>(row(2), t0 + c_off, L, vec_dout, dout);
      if (p.has_z) load_items<Io>(row(3), t0 + c_off, L, vec_z, z);
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) x[i] = dout[i] = z[i] = 0.f;
    }
    // Converted without a branch per element (their independent chains interleave), then masked: padded steps and
    // inactive channels get decay 1 and no input, so the adjoint passes through.
#pragma unroll
    for (int i = 0; i < kItems; ++i) x[i] += s_bias;
    if (p.delta_softplus) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) x[i] = softplusf(x[i]);
    }
    if (p.has_z) {
#pragma unroll
      for (int i = 0; i < kItems; ++i) dout[i] = dout[i] * z[i] * sigmoidf_fast(z[i]);
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const bool ok = s_active && t0 + c_off + i < L;
      sEy[(c_off + i) * kBfChannels + cs] = make_float2(ok ? x[i] : 0.f, ok ? dout[i] : 0.f);
    }
  };
  // The reverse recurrence over the staged chunk.
  auto steps = [&]() {
    float csum = 0.f;
#pragma unroll 8
    for (int t = T - 1; t >= 0; --t) {
      const float2 e = sEy[t * kBfChannels + cl];
      const float4 cv = sC4[t * 4 + j];
      gq[0] = fast_exp2(e.x * A2[0]) * fmaf(cv.x, e.y, gq[0]);
      gq[1] = fast_exp2(e.x * A2[1]) * fmaf(cv.y, e.y, gq[1]);
      gq[2] = fast_exp2(e.x * A2[2]) * fmaf(cv.z, e.y, gq[2]);
      gq[3] = fast_exp2(e.x * A2[3]) * fmaf(cv.w, e.y, gq[3]);
      csum += e.x;
    }
    dt_sum += csum;
  };
  if (async) issue(c_end - 1);
  for (int c = c_end - 1; c >= c_begin; --c) {
    if (async) cp_async_wait_all();  // this thread's copies of chunk c
    __syncthreads();                 // the previous chunk's readers are done
    stage(c);
    __syncthreads();
    if (async && c > c_begin) issue(c - 1);
    steps();
  }
  if (!l_active) return;
  const size_t o = static_cast<size_t>(kseg - 1) * p.batch * p.dim + bdl;
  *reinterpret_cast<float4*>(ws.g_loc + o * N + 4 * j) = make_float4(gq[0], gq[1], gq[2], gq[3]);
  if (j == 0) ws.sdt[o] = dt_sum;
}

// Blocks of the fast kernel: one per (batch, group, tile of kBfChannels channels).
inline dim3 bwd_fast_grid(const SelectiveScanParams& p) {
  const int gs = p.dim / p.n_groups;
  return dim3(p.n_groups * ((gs + kBfChannels - 1) / kBfChannels), p.batch);
}

// Resident blocks of the fast kernel (summary = false) or of the split's summary kernel (true) on the current
// device (blocks per SM x SMs), 0 when unknown; cached per device, dtype and kernel.
template <DType kType>
int bwd_fast_resident_blocks(bool summary) {
  constexpr int kMaxDevices = 16;
  static int cached[2][kMaxDevices] = {};
  int dev = 0, sms = 0, per_sm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  if (dev >= 0 && dev < kMaxDevices && cached[summary][dev] > 0) return cached[summary][dev];
  cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e == cudaSuccess && summary) {
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, selective_scan_bwd_summary_kernel<IO<kType>>,
                                                      kBfThreads, 0);
  } else if (e == cudaSuccess) {
    auto kernel = selective_scan_bwd_fast_kernel<IO<kType>, false>;
    const size_t smem = bwd_fast_smem_bytes(BfRaw<IO<kType>>::kBytes);
    e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kBfThreads, smem);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  const int blocks = per_sm * sms;
  if (dev >= 0 && dev < kMaxDevices) cached[summary][dev] = blocks;
  return blocks;
}

// Segments shorter than this, or more segments than this, are not chosen automatically.
constexpr int kBwdMinSegSteps = 256;
constexpr int kBwdMaxAutoSegments = 16;

struct BwdFastPlan {
  bool fast = false;
  int segments = 1;
  int seg_len = 0;
  bool chained = false;  // segments > 1 only: the chained hand-off instead of the summary pass (bwd_chain_item)
};

// Modelled time of the fast backward with `segments` time segments, in step units: each lane walks its segment
// serially, so a pass costs (waves of resident blocks) x (segment length). The summary pass (segments - 1 blocks
// per tile) does about a quarter of the main pass's work per step; a chained split has no summary pass; each
// segment adds a carry walk and a launch share (16 steps). Fitted to the H200 sweep of 2026-11-29 (docs/perf.md):
// with the summary pass it picks K = 1 at S1, 6 at S2 and 16 at S3, the measured best or within 1% of it then; the
// session-5 sweep (docs/perf.md) has summary K 2 best at S2 and the chained K 3, which the model picks, better still.
inline double bwd_fast_cost(long base, long resident, long resident_summary, int n_chunks, int segments,
                            bool chained) {
  const int seg_chunks = (n_chunks + segments - 1) / segments;
  const int k = (n_chunks + seg_chunks - 1) / seg_chunks;
  const double seg = static_cast<double>(seg_chunks) * kBfChunk;
  const auto waves = [](long blocks, long res) { return static_cast<double>((blocks + res - 1) / res); };
  double cost = waves(base * k, resident) * seg + 16.0 * k;
  if (k > 1 && !chained) cost += 0.25 * waves(base * (k - 1), resident_summary) * seg;
  return cost;
}

// Whether the fast kernel runs, and its time split: the segment count (1 .. kBwdMaxAutoSegments, segments of at
// least kBwdMinSegSteps steps) and hand-off with the lowest bwd_fast_cost. The chained hand-off is considered only
// when one segment's blocks fill a wave (base >= resident: S2), so that waiting blocks do not hold the SMs; S3's
// 48 blocks per segment would chain K walks end to end. A second, partial wave of the unsplit kernel still beats
// the warp-chunk kernel (S2: 2.11 vs 2.31 ms), so the fast path is taken whenever batch * dim >= 4096 or L splits.
// p.scan_segments > 0 forces the count and p.scan_bwd_chain the hand-off (tests).
template <DType kType>
BwdFastPlan bwd_fast_plan(const SelectiveScanParams& p) {
  BwdFastPlan plan;
  if (!bwd_fast_eligible(p)) return plan;
  const int n_chunks = (p.seqlen + kBfChunk - 1) / kBfChunk;
  const dim3 g = bwd_fast_grid(p);
  const long base = static_cast<long>(g.x) * g.y;
  int want = 1;
  bool chained = p.scan_bwd_chain == 2;
  if (p.scan_segments > 0) {
    want = p.scan_segments;
    if (p.scan_bwd_chain == 0) chained = base >= bwd_fast_resident_blocks<kType>(false);
  } else {
    const long resident = bwd_fast_resident_blocks<kType>(false);
    const long resident_summary = bwd_fast_resident_blocks<kType>(true);
    if (resident <= 0 || resident_summary <= 0) return plan;
    const int most = static_cast<int>(std::max(1, std::min(kBwdMaxAutoSegments, p.seqlen / kBwdMinSegSteps)));
    const bool may_chain = p.scan_bwd_chain == 2 || (p.scan_bwd_chain == 0 && base >= resident);
    const bool may_summarize = p.scan_bwd_chain != 2;
    double best = bwd_fast_cost(base, resident, resident_summary, n_chunks, 1, false);
    for (int k = 2; k <= most; ++k)
      for (bool ch : {false, true}) {
        if (ch ? !may_chain : !may_summarize) continue;
        const double c = bwd_fast_cost(base, resident, resident_summary, n_chunks, k, ch);
        if (c < best) best = c, want = k, chained = ch;
      }
  }
  const int seg_chunks = (n_chunks + want - 1) / want;
  plan.segments = (n_chunks + seg_chunks - 1) / seg_chunks;
  plan.seg_len = seg_chunks * kBfChunk;
  plan.chained = plan.segments > 1 && chained;
  plan.fast = static_cast<long>(p.batch) * p.dim >= 4096 || plan.segments > 1 || p.scan_segments > 0;
  if (!plan.fast) plan = BwdFastPlan{};
  return plan;
}

// Ints of the chained hand-off's counter and flags for `segments` time segments.
inline size_t bwd_chain_ints(const SelectiveScanParams& p, int segments) {
  const dim3 g = bwd_fast_grid(p);
  return 1 + static_cast<size_t>(segments - 1) * g.x * g.y;
}

// The same for `plan` (0 unless chained).
inline size_t bwd_chain_ints(const SelectiveScanParams& p, const BwdFastPlan& plan) {
  return plan.chained ? bwd_chain_ints(p, plan.segments) : 0;
}

// ws: laid out for the plan's segments (bwd_workspace_layout); dB/dC accumulators zeroed unless the summary pass runs
// (bwd_summary_zeroes), which zeroes them itself.
template <DType kType>
void selective_scan_bwd_fast_launch(const SelectiveScanParams& p, const BwdWorkspace& ws, cudaStream_t stream) {
  const dim3 g = bwd_fast_grid(p);
  if (ws.chain != nullptr) {
    cudaError_t e = cudaMemsetAsync(ws.chain, 0, bwd_chain_ints(p, ws.segments) * sizeof(int), stream);
    if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
  } else if (bwd_summary_zeroes(ws)) {
    selective_scan_bwd_summary_kernel<IO<kType>><<<dim3(g.x, g.y, ws.segments - 1), kBfThreads, 0, stream>>>(p, ws);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
  }
  auto kernel = ws.chain != nullptr ? selective_scan_bwd_fast_kernel<IO<kType>, true>
                                    : selective_scan_bwd_fast_kernel<IO<kType>, false>;
  const size_t smem = bwd_fast_smem_bytes(BfRaw<IO<kType>>::kBytes);
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
  kernel<<<dim3(g.x, g.y, ws.segments), kBfThreads, smem, stream>>>(p, ws);
  e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
}

}  // namespace ss
}  // namespace mamba
