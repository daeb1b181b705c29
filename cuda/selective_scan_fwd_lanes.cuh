// Time-lane forward for dstate 16 with variable B/C, 16-bit inputs, where batch * dim is too small for the sequential
// fast kernel to fill the GPU (S3 = (1, 1536, 16384): 1536 channels = 192 warps of lane = (channel, 4 states)). Each
// exp is computed once, unlike the time split (selective_scan_fwd.cuh), which computes 10/11 of them twice (a
// summary, then the forward). Included by selective_scan_fwd.cuh after the fast kernel.
//
// Taken only for the case it was built and measured for (fwd_lanes_ok): fp16/bf16, z, delta_softplus, L a multiple
// of kLnChunk, 4-byte-aligned u, delta, z, out. Those facts are compile-time here: no per-chunk bounds or flag
// tests (on the H200 they cost 18% of the kernel's instructions; docs/perf.md, sixteenth session). Other cases keep
// the split.
//
// Warp = one channel; lane = 8 j + tau: quad j holds states 4j .. 4j+3, time-lane tau owns steps 8 tau .. 8 tau + 7
// of every kLnChunk-step chunk. Per chunk:
//   convert: lane (j, tau) converts steps s0 = 8 tau + 2j and s0 + 1 (dt with bias and softplus, dt u, D u, the gate)
//            from raw values it loaded two chunks earlier; dt and dt u go through a per-warp shared row (two
//            buffers, alternating by chunk), D u and the gate stay in its registers (the lane gates the same two steps
//            in pass B);
//   pass A:  the lane's 8 decays a = exp2(dt A2) (all of them first, so the B tile has their time to arrive), then
//            the inputs bx = dt u B per state into registers and its local end state hl from zero;
//   scan:    the lane's map h -> P h + hl (P = exp2(A2 sum dt)); the chunk's entering state is folded into
//            time-lane 0's map, so an inclusive Kogge-Stone scan of the maps over the quad's 8 time-lanes (shuffles)
//            leaves each lane the true state after its steps; the state entering a lane is its left neighbour's;
//   pass B:  from that state, h = a h + bx and the partial C.h of each step, from registers; the 4 quads' partials
//            are reduce-scattered (xor 16, xor 8), which leaves lane (j, tau) steps s0, s0 + 1: gate and store.
// The loop is rotated: iteration c runs pass B and the output of chunk c - 1, then the conversion, pass A and scan of
// chunk c. The two halves do not depend on each other, so ptxas interleaves them (the conversion's MUFU chain with
// the reduce-scatter's shuffles) and a chunk's tiles are loaded in the same iteration as their pass A, after the
// previous pass B freed their registers (H200, S3 bf16: ~1.5% faster than the loop in chunk order; docs/perf.md,
// eighteenth session).
// B and C are read as fp32 tiles that a small kernel writes first (selective_scan_fwd_lanes_bc_kernel): each value is
// read by every channel of its group (L1 hits after the first warp), and no lane widens 16-bit values. ptxas gives
// every global load of the loop one scoreboard, so where it places the tile loads decides what the first use of any
// loaded value waits for: compare the loop's load positions in the cubin after any change (a build that sank two C
// loads to the loop end ran 18% slower; docs/perf.md, eighteenth session). Warps never wait for each other (no shared
// staging, no block barrier).
#pragma once

namespace mamba {
namespace ss {

constexpr int kLnWarps = 4;                // channels per block (blocks share nothing but L1)
constexpr int kLnThreads = 32 * kLnWarps;
constexpr int kLnSub = 8;                  // steps per time-lane
constexpr int kLnChunk = 8 * kLnSub;       // steps per chunk
constexpr int kLnTile = 32 * kLnChunk;     // floats of one chunk's B/C tile
constexpr int kLnMinBlocks = 3;            // 12 warps per SM (S3 has 11.6): up to 168 registers

static_assert(kScanCheckpointChunk % kLnSub == 0 && kLnChunk == 2 * kScanCheckpointChunk,
              "time-lanes 0 and 4 start the chunk's two checkpoint intervals");

__host__ __device__ inline int ln_chunks(int L) { return (L + kLnChunk - 1) / kLnChunk; }
// Tiles per (batch, group): one per chunk.
__host__ __device__ inline int ln_tiles(int L) { return ln_chunks(L); }

// Position of chunk step s in a tile row: steps 8 tau .. 8 tau + 3 at float4 tau, 8 tau + 4 .. + 7 at float4 8 + tau,
// so the 8 lanes of a quarter-warp (tau 0..7) read 128 contiguous bytes per 16-byte load.
__host__ __device__ inline int ln_pos(int s) { return ((s >> 2) & 1) * 32 + (s >> 3) * 4 + (s & 3); }

// The case the time-lane kernel serves (see the top of this file); the plan also requires that the fast forward
// would split L.
inline bool fwd_lanes_ok(const SelectiveScanParams& p) {
  auto al = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 4 == 0; };
  return p.dtype != DType::Float32 && p.has_z && p.delta_softplus && p.seqlen % kLnChunk == 0 && al(p.u) &&
         al(p.delta) && al(p.z) && al(p.out);
}

// B/C tiles: (batch, n_groups, ln_tiles(L), 32, kLnChunk) fp32; rows B_0 .. B_15, C_0 .. C_15, steps in ln_pos
// order.
inline size_t fwd_lanes_workspace_bytes(const SelectiveScanParams& p) {
  return align_up(static_cast<size_t>(p.batch) * p.n_groups * ln_tiles(p.seqlen) * kLnTile * sizeof(float));
}

// B, C (batch, G, 16, L) -> tiles. Block = one (tile, b * G + g); thread = row r (B 0-15, C 16-31), steps 8k .. 8k+7.
template <class Io>
__global__ void __launch_bounds__(256) selective_scan_fwd_lanes_bc_kernel(const SelectiveScanParams p, float* bc) {
  using raw = typename Io::raw;
  const int L = p.seqlen, ck = blockIdx.x, bg = blockIdx.y;
  const int r = threadIdx.x / 8, k = threadIdx.x % 8;
  const void* M = r < 16 ? p.B : p.C;
  const raw* src = static_cast<const raw*>(M) + (static_cast<size_t>(bg) * 16 + (r & 15)) * L;
  float v[kItems];
  static_assert(kItems == kLnSub, "one load_items run per thread");
  load_items<Io>(src, ck * kLnChunk + kLnSub * k, L, rows_vectorizable(M, L), v);
  float4* dst = reinterpret_cast<float4*>(bc + (static_cast<size_t>(bg) * gridDim.x + ck) * kLnTile + r * kLnChunk);
  dst[k] = make_float4(v[0], v[1], v[2], v[3]);
  dst[8 + k] = make_float4(v[4], v[5], v[6], v[7]);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // The scan kernel (a programmatic dependent launch, fwd_lanes_launch) may start its prologue now; it waits for this
  // grid's writes before it reads a tile.
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// h += P * Hu where `on` (else h unchanged), and P *= Pu likewise: one predicated instruction each (a C++ `if` here
// became an FMA into a temporary and a predicated move).
__device__ __forceinline__ void fma_if(int on, float& h, float P, float Hu) {
#ifdef __CUDA_ARCH__
  asm("{\n .reg .pred q;\n setp.ne.s32 q, %3, 0;\n @q fma.rn.f32 %0, %1, %2, %0;\n}"
      : "+f"(h) : "f"(P), "f"(Hu), "r"(on));
#else
  if (on) h = fmaf(P, Hu, h);
#endif
}
__device__ __forceinline__ void mul_if(int on, float& P, float Pu) {
#ifdef __CUDA_ARCH__
  asm("{\n .reg .pred q;\n setp.ne.s32 q, %2, 0;\n @q mul.rn.f32 %0, %0, %1;\n}" : "+f"(P) : "f"(Pu), "r"(on));
#else
  if (on) P *= Pu;
#endif
}

// softplus(x) = max(x, 0) + ln 2 log2(1 + e), e = exp(-|x|), with the MUFU exp and log: 6 instructions where softplusf's
// polynomial log1p takes 12. Its absolute error (the MUFU log's and the rounding of 1 + e, ~2e-7) is below the
// rounding of the 16-bit delta this kernel takes.
__device__ __forceinline__ float ln_softplus(float x) {
  const float e = mufu_exp(-fabsf(x));
  float l;
#ifdef __CUDA_ARCH__
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(l) : "f"(1.f + e));
#else
  l = log2f(1.f + e);
#endif
  return fmaf(l, 0.69314718f, fmaxf(x, 0.f));
}

// Two adjacent 16-bit values of a row as one word: row[t], row[t + 1], or zeros where t >= L (even t and L: both
// inside or both outside).
template <class raw>
__device__ __forceinline__ uint32_t ln_load_pair(const raw* row, int t, int L) {
  if (t < L) return __ldg(reinterpret_cast<const uint32_t*>(row + t));
  return 0u;
}
// Eight consecutive values of a lane from two float4 (steps 0-3, 4-7 of its time-lane).
__device__ __forceinline__ void ln_flat8(float4 lo, float4 hi, float (&v)[kLnSub]) {
  v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
}
template <class Io>
__device__ __forceinline__ void ln_unpack(uint32_t w, float (&v)[2]) {
  using raw = typename Io::raw;
  v[0] = Io::load(static_cast<raw>(w & 0xffffu));
  v[1] = Io::load(static_cast<raw>(w >> 16));
}

// Shapes: u, delta, z, out (batch, dim, L); B/C tiles `bc` as above; checkpoints (batch, dim, num_ckpts(L), 16).
template <class Io>
__global__ void __launch_bounds__(kLnThreads, kLnMinBlocks)
    selective_scan_fwd_lanes_kernel(const SelectiveScanParams p, const float* __restrict__ bc) {
  using raw = typename Io::raw;
  static_assert(sizeof(raw) == 2, "16-bit inputs only (fwd_lanes_ok)");
  constexpr int N = 16, T = kLnChunk;
  // Per warp: dt and dt u of the chunk, ln_pos order (read by the 4 quads of each time-lane).
  __shared__ float4 s_dt[kLnWarps * 2 * 2 * (T / 4)];
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kLnWarps - 1) / kLnWarps;
  const int b = blockIdx.y, g = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int ch = tile * kLnWarps + warp;
  if (ch >= gs) return;  // nothing below synchronizes more than one warp
  const int j = lane / 8, tau = lane % 8;
  const int d = g * gs + ch;
  const size_t bd = static_cast<size_t>(b) * p.dim + d, row = bd * L;
  const int n_chunks = ln_chunks(L);
  // Two dt buffers per warp, alternating by chunk: a buffer is rewritten only after every lane has passed the
  // __syncwarp that followed its last reads, and the indices into it are carried by the loop (one XOR each per chunk)
  // rather than recomputed from the thread index in every chunk, as ptxas did with one buffer.
  constexpr int kDtBuf = 2 * T;  // floats per buffer: dt, then dt u
  float* s_dt_f = reinterpret_cast<float*>(s_dt);

  // This lane's float4s of a tile: rows 4j + q (B) and 16 + 4j + q (C), at tau and 8 + tau.
  const float4* bc_lane =
      reinterpret_cast<const float4*>(bc + (static_cast<size_t>(b) * p.n_groups + g) * ln_tiles(L) * kLnTile) +
      4 * j * (T / 4) + tau;
  constexpr int kTile4 = kLnTile / 4;

  const int s0 = kLnSub * tau + 2 * j;  // the lane's two steps of each chunk (converted, gated, stored)
  const raw* xu = static_cast<const raw*>(p.u) + row + s0;
  const raw* xdl = static_cast<const raw*>(p.delta) + row + s0;
  const raw* xz = static_cast<const raw*>(p.z) + row + s0;
  raw* xo = static_cast<raw*>(p.out) + row + s0;
  const float bias = p.has_delta_bias ? p.delta_bias[d] : 0.f;
  const float Dd = p.has_D ? p.D[d] : 0.f;

  float A2[4], carry[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    A2[q] = p.A[static_cast<size_t>(d) * N + 4 * j + q] * kLog2e;
    carry[q] = p.has_initial_state ? p.initial_state[bd * N + 4 * j + q] : 0.f;
  }
  const int n_ckpt = num_ckpts(L);
  const bool hiA = (j & 2) != 0, hiB = (j & 1) != 0;
  // Checkpoints: time-lanes 0 and 4 store the states before steps 32c; every lane steps the pointer (one predicated
  // store per chunk; lanes that never store step a null pointer they never use).
  const bool ck_lane = p.checkpoints != nullptr && (tau & 3) == 0;
  float* ck_ptr = ck_lane ? p.checkpoints + (bd * n_ckpt + tau / 4) * N + 4 * j : nullptr;

  // Raw u, delta, z of the lane's two steps, two chunks ahead. p.has_z always holds here (fwd_lanes_ok); the tests of
  // it below stay because without them ptxas schedules the kernel 3.5% slower (H200, S3 bf16 0.280 -> 0.290 ms;
  // docs/perf.md, sixteenth session).
  uint32_t ru0 = ln_load_pair(xu, 0, L - s0), rd0 = ln_load_pair(xdl, 0, L - s0);
  uint32_t rz0 = p.has_z ? ln_load_pair(xz, 0, L - s0) : 0u;
  uint32_t ru1 = ln_load_pair(xu, T, L - s0), rd1 = ln_load_pair(xdl, T, L - s0);
  uint32_t rz1 = p.has_z ? ln_load_pair(xz, T, L - s0) : 0u;

  // The tiles of chunk c, loaded in iteration c after the pass B that used chunk c - 1's: B for pass A in the same
  // iteration, C for pass B in the next.
  float4 Bv[4][2], Cv[4][2];
  // Rows r0 + q of a tile (B: r0 0, C: r0 16), the lane's float4 at tau and 8 + tau.
  auto load_rows = [&](float4 (&v)[4][2], const float4* tp, int r0) {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      v[q][0] = __ldg(tp + (r0 + q) * (T / 4));
      v[q][1] = __ldg(tp + (r0 + q) * (T / 4) + 8);
    }
  };
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Launched as a programmatic dependent of the tile kernel: everything above overlapped its tail; the tiles are
  // complete and visible after this (a no-op in an ordinary launch).
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  // Iteration ck runs pass B and the output of chunk ck - 1, then the conversion, pass A and scan of chunk ck (see the
  // top of this file). In iteration 0 chunk -1 is all zeros (its output, zeros, goes to chunk 0's place and is
  // rewritten in iteration 1); the last chunk's pass B follows the loop. a, bx, h, du_p, gate_p: the previous chunk's.
  float a[kLnSub][4], bx[kLnSub][4], h[4], du_p[2] = {0.f, 0.f}, gate_p[2] = {0.f, 0.f};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    h[q] = 0.f;
    Cv[q][0] = Cv[q][1] = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int i = 0; i < kLnSub; ++i) a[i][q] = bx[i][q] = 0.f;
  }
  // Pass B of the previous chunk: the true states of the lane's steps and their partial C.h, state by state; then
  // the sum over the channel's 4 quads (lanes xor 16, xor 8): lanes with j & 2 keep steps 4-7, then j & 1 the upper
  // pair of those, leaving lane (j, tau) steps 8 tau + 2j + {0, 1} = s0, s0 + 1.
  auto pass_b = [&](float (&ys)[2]) {
    float y[kLnSub];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float Cq[kLnSub];
      ln_flat8(Cv[q][0], Cv[q][1], Cq);
#pragma unroll
      for (int i = 0; i < kLnSub; ++i) {
        h[q] = fmaf(a[i][q], h[q], bx[i][q]);
        y[i] = q == 0 ? Cq[i] * h[q] : fmaf(Cq[i], h[q], y[i]);
      }
    }
    reduce_scatter8(y, hiA, hiB, 16, 8, ys);
  };
  int dt_w = warp * 2 * kDtBuf + ln_pos(s0);  // float index of the lane's dt pair in the current buffer
  int dt_r = (warp * 2 * kDtBuf) / 4 + tau;    // float4 index of the time-lane's first dt float4
  for (int ck = 0; ck < n_chunks; ++ck) {
    const int t0 = ck * T;
    const float4* tile_p = bc_lane + static_cast<size_t>(ck) * kTile4;

    float ys[2];
    pass_b(ys);
    load_rows(Bv, tile_p, 0);
    load_rows(Cv, tile_p, 16);

    // Convert steps s0, s0 + 1 of this chunk; then load those of chunk ck + 2.
    float u2[2], x2[2], z2[2] = {0.f, 0.f};
    ln_unpack<Io>(ru0, u2);
    ln_unpack<Io>(rd0, x2);
    ln_unpack<Io>(rz0, z2);
    ru0 = ru1, rd0 = rd1, rz0 = rz1;
    // Two chunks ahead runs past L in the last two chunks: those re-read the lane's last pair (never used).
    const int tn = min(t0 + 2 * T, L - s0 - 2);
    ru1 = __ldg(reinterpret_cast<const uint32_t*>(xu + tn));
    rd1 = __ldg(reinterpret_cast<const uint32_t*>(xdl + tn));
    rz1 = __ldg(reinterpret_cast<const uint32_t*>(xz + tn));
    x2[0] += bias;
    x2[1] += bias;
    x2[0] = ln_softplus(x2[0]);
    x2[1] = ln_softplus(x2[1]);
    float du[2], gate[2];
    float2 dt2, dtu2;
    dt2.x = x2[0];
    dt2.y = x2[1];
    dtu2 = make_float2(dt2.x * u2[0], dt2.y * u2[1]);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      du[i] = Dd * u2[i];
      gate[i] = silu_fast(z2[i]);
    }
    // The previous chunk's output (in iteration 0: zeros into chunk 0's place, so the loop body has no branch).
    store_pair<Io>(xo + max(t0 - T, 0), (ys[0] + du_p[0]) * gate_p[0], (ys[1] + du_p[1]) * gate_p[1]);
#pragma unroll
    for (int i = 0; i < 2; ++i) du_p[i] = du[i], gate_p[i] = gate[i];
    // No __syncwarp before: this buffer was last read two chunks ago, before the previous chunk's __syncwarp below.
    *reinterpret_cast<float2*>(s_dt_f + dt_w) = dt2;
    *reinterpret_cast<float2*>(s_dt_f + dt_w + T) = dtu2;
    __syncwarp();
    // The time-lane's 8 steps: float4 tau and 8 + tau of each row (dt at 0, dt u at T / 4).
    float dt[kLnSub], dtu[kLnSub];
    ln_flat8(s_dt[dt_r], s_dt[dt_r + 8], dt);
    ln_flat8(s_dt[dt_r + T / 4], s_dt[dt_r + T / 4 + 8], dtu);
    dt_w ^= kDtBuf;
    dt_r ^= kDtBuf / 4;

    // Pass A: every decay first (their MUFU time covers the B tile's arrival; the __syncwarp keeps ptxas from starting
    // the B products earlier), then the inputs and the local end state from zero.
    float hl[4];
#pragma unroll
    for (int q = 0; q < 4; ++q)
#pragma unroll
      for (int i = 0; i < kLnSub; ++i) a[i][q] = fast_exp2(dt[i] * A2[q]);
    __syncwarp();
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float Bq[kLnSub];
      ln_flat8(Bv[q][0], Bv[q][1], Bq);
#pragma unroll
      for (int i = 0; i < kLnSub; ++i) {
        bx[i][q] = dtu[i] * Bq[i];
        hl[q] = i == 0 ? bx[0][q] : fmaf(a[i][q], hl[q], bx[i][q]);
      }
    }
    const float sdt_l = ((dt[0] + dt[1]) + (dt[2] + dt[3])) + ((dt[4] + dt[5]) + (dt[6] + dt[7]));
    float P[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      P[q] = fast_exp2(A2[q] * sdt_l);
      // Time-lane 0 applies its map to the chunk's entering state: the scan below is then of true states.
      if (tau == 0) hl[q] = fmaf(P[q], carry[q], hl[q]);
    }
    // Inclusive scan over the quad's 8 time-lanes (Kogge-Stone, distance 1, 2, 4; the later map applies last:
    // (P, H) o (Pu, Hu) = (P Pu, P Hu + H)). The last round needs no products. Lanes tau < distance keep theirs.
#pragma unroll
    for (int dd = 1; dd < 8; dd *= 2) {
      const int on = tau >= dd;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float Hu = __shfl_up_sync(0xffffffffu, hl[q], dd);
        if (dd < 4) {
          const float Pu = __shfl_up_sync(0xffffffffu, P[q], dd);
          fma_if(on, hl[q], P[q], Hu);
          mul_if(on, P[q], Pu);
        } else {
          fma_if(on, hl[q], P[q], Hu);
        }
      }
    }
    // The state entering this lane's steps: time-lane tau-1's (the carry for 0); the next chunk's: time-lane 7's.
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float He = __shfl_up_sync(0xffffffffu, hl[q], 1);
      h[q] = tau == 0 ? carry[q] : He;
      carry[q] = __shfl_sync(0xffffffffu, hl[q], 8 * j + 7);
    }
    // Checkpoint: the state before step t0 + 8 tau, a multiple of kScanCheckpointChunk for tau 0 and 4.
    if (ck_lane) *reinterpret_cast<float4*>(ck_ptr) = make_float4(h[0], h[1], h[2], h[3]);
    ck_ptr += (kLnChunk / kScanCheckpointChunk) * N;
  }
  {
    float ys[2];
    pass_b(ys);
    store_pair<Io>(xo + (n_chunks - 1) * T, (ys[0] + du_p[0]) * gate_p[0], (ys[1] + du_p[1]) * gate_p[1]);
  }
  if (p.last_state != nullptr && tau == 0)
    *reinterpret_cast<float4*>(p.last_state + bd * N + 4 * j) = make_float4(carry[0], carry[1], carry[2], carry[3]);
}

// Blocks: one per (group, tile of kLnWarps channels) and batch row.
inline dim3 fwd_lanes_grid(const SelectiveScanParams& p) {
  const int gs = p.dim / p.n_groups;
  return dim3(p.n_groups * ((gs + kLnWarps - 1) / kLnWarps), p.batch);
}

// Whether the current device takes programmatic dependent launches (compute capability 9.0 and up), cached per
// device; false when the query fails.
inline bool fwd_lanes_pdl_ok() {
  constexpr int kMaxDevices = 16;
  static int cached[kMaxDevices] = {};  // 0 unknown, 1 no, 2 yes (a racing first query writes the same value)
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (dev >= 0 && dev < kMaxDevices && cached[dev] != 0) return cached[dev] == 2;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (dev >= 0 && dev < kMaxDevices) cached[dev] = major >= 9 ? 2 : 1;
  return major >= 9;
}

// `workspace`: fwd_lanes_workspace_bytes(p) bytes for the B/C tiles.
template <DType kType>
void fwd_lanes_launch(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  if constexpr (kType == DType::Float32) {
    throw std::logic_error("selective_scan_fwd_cuda: the time-lane forward takes 16-bit inputs only");
  } else {
    float* bc = static_cast<float*>(workspace);
    const dim3 bc_grid(ln_tiles(p.seqlen), p.batch * p.n_groups);
    selective_scan_fwd_lanes_bc_kernel<IO<kType>><<<bc_grid, 256, 0, stream>>>(p, bc);
    fwd_check(cudaGetLastError());
#ifdef __CUDACC__
    if (fwd_lanes_pdl_ok()) {
      // Programmatic dependent launch: the scan kernel's blocks start (index math, A, the first raw inputs) while the
      // tile kernel finishes, and wait for its writes before the first tile load (griddepcontrol.wait). H200: S3 bf16
      // about 1% faster (docs/perf.md, seventeenth session).
      cudaLaunchConfig_t cfg = {};
      cfg.gridDim = fwd_lanes_grid(p);
      cfg.blockDim = dim3(kLnThreads);
      cfg.stream = stream;
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[0].val.programmaticStreamSerializationAllowed = 1;
      cfg.attrs = attr;
      cfg.numAttrs = 1;
      fwd_check(
          cudaLaunchKernelEx(&cfg, selective_scan_fwd_lanes_kernel<IO<kType>>, p, static_cast<const float*>(bc)));
      return;
    }
#endif
    selective_scan_fwd_lanes_kernel<IO<kType>><<<fwd_lanes_grid(p), kLnThreads, 0, stream>>>(p, bc);
    fwd_check(cudaGetLastError());
  }
}

}  // namespace ss
}  // namespace mamba
