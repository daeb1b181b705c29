// Time-lane forward for dstate 16 with variable B/C when batch * dim is too small for the sequential fast kernel
// (S3: 1536 channels = 192 warps of lane = (channel, 4 states)). Included by selective_scan_fwd.cuh after the fast
// kernel, whose staging helpers (stage_run, silu_fast) it uses.
//
// Warp = one channel; lane = 8 j + tau: quad j holds states 4j .. 4j+3, time-lane tau owns steps 8 tau .. 8 tau + 7
// of every kLnChunk-step chunk (so a warp has 8 time-lanes, and S3 has 1536 warps without splitting L). Per chunk:
//   pass A: the lane's 8 decays a = exp2(dt * A2) and inputs b = dt u B per state into registers (one exp per
//           element-state, never recomputed) and its local end state hl from zero;
//   walk:   the lane's 8 steps map h -> P h + hl with P = exp2(A2 * sum dt); each lane publishes (P, hl) in shared
//           memory and forms the exact state entering its steps by applying the maps of the time-lanes before it
//           to the chunk's entering state (at most 7 FMAs per state);
//   pass B: from that state, h = a h + b and the partial C.h of each step, from registers; the 4 quads' partials
//           are reduce-scattered (xor 16, xor 8), so lane (j, tau) gates and stores steps 8 tau + 2j, +1.
// The time split of the fast kernel (FwdSegments) re-scans 10/11 of L for its summaries: 1.9x the exps; here every
// exp is computed once, at the cost of the walk (~6 instructions per lane-step) and 64 registers of a and b.
// B and C are read straight from the cp.async rows (no conversion pass): a lane's 8 steps of one state are one
// 16-byte run (16-bit types) or two (fp32, placed so a quarter-warp reads 128 contiguous bytes).
#pragma once

namespace mamba {
namespace ss {

#ifndef MAMBA_SS_FWD_LANES
#define MAMBA_SS_FWD_LANES 1
#endif
// Channels (warps) per block. They share the block's staged B/C rows, so wider blocks read B/C from L2 fewer
// times (S3, bf16: 4-warp blocks moved 384 MB of B/C into the SMs, 0.42 ms; 12-warp blocks: 128 MB).
#ifndef MAMBA_SS_FWD_LANES_WARPS
#define MAMBA_SS_FWD_LANES_WARPS 6
#endif
constexpr int kLnWarps = MAMBA_SS_FWD_LANES_WARPS;
constexpr int kLnThreads = 32 * kLnWarps;
constexpr int kLnSub = 8;                // steps per time-lane
constexpr int kLnChunk = 8 * kLnSub;     // steps per chunk
// Staging ring: chunk ck + 2 is copied while chunk ck is scanned (two chunks in flight: with one, the 4-warp build
// kept too few bytes in flight to cover the L2 latency and moved ~1.45 TB/s).
constexpr int kLnStages = 3;
// Registers: 16 warps per SM at most (128 registers) where the 16-bit types fit without spills; float32 (wider
// B/C loads) spills there and gets 12 warps per SM (168 registers).
template <class Io>
constexpr int ln_min_blocks() { return (sizeof(typename Io::raw) == 4 ? 12 : 16) / kLnWarps; }

// All but the most recent group of this thread's cp.async copies have landed.
__device__ __forceinline__ void cp_async_wait_prior() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
#endif
}
static_assert(kScanCheckpointChunk % kLnSub == 0 && kLnChunk % kScanCheckpointChunk == 0,
              "checkpoints fall on time-lane starts");

// Element index of chunk step s in a staged row of T-typed values: 16-byte runs in time-lane order, and for 4-byte
// types the first halves (steps 8 tau .. 8 tau + 3) of all time-lanes before the second halves, so that the 8
// lanes of a quarter-warp (one quad, tau 0..7) read 128 contiguous bytes per 16-byte load.
template <int kBytes>
__device__ __forceinline__ int ln_pos(int s) {
  if constexpr (kBytes == 4) return ((s >> 2) & 1) * 32 + (s >> 3) * 4 + (s & 3);
  return s;
}

// Shared-memory layout (byte offsets, multiples of 16): kLnStages stages of raw B/C rows (rows 0-15 B, 16-31 C,
// kRow bytes each), then per warp: kLnStages stages of raw u/delta/z rows, fp32 dt and dt*u (ln_pos order),
// (D*u, gate) pairs in lane order, and the lanes' (P, hl) maps.
template <class Io>
struct LanesLayout {
  using raw = typename Io::raw;
  static constexpr int kRS = static_cast<int>(sizeof(raw));
  static constexpr int kE = 16 / kRS;                   // elements per 16-byte run
  static constexpr int kRuns = kLnChunk / kE;           // runs per row per chunk
  static constexpr int kRow = kLnChunk * kRS;           // bytes of one staged row
  static constexpr int kStage = 32 * kRow;
  static constexpr int kWarp0 = kLnStages * kStage;
  static constexpr int kRawX = 0;                       // (kLnStages, 3, kLnChunk) raw u, delta, z
  static constexpr int kDt = kRawX + kLnStages * 3 * kRow;  // (kLnChunk) fp32
  static constexpr int kDtu = kDt + kLnChunk * 4;       // (kLnChunk) fp32
  static constexpr int kDg = kDtu + kLnChunk * 4;       // (32) float4: lane l's steps 8 tau + 2j, +1 (D*u, gate) x2
  // (2 buffers, P/H, 4 quads, 16 slots) float4: the scan's maps; slots 0-7 hold the identity (1, 0), 8 + tau the
  // map of time-lane tau, so a lane reads slot 8 + tau - d without a bounds test.
  static constexpr int kMap = kDg + kLnChunk * 8;
  static constexpr int kWarpBytes = kMap + 2 * 2 * 4 * 16 * 16;
  static constexpr int kBytes = kWarp0 + kLnWarps * kWarpBytes;
  static constexpr int kXRuns = 3 * kRuns;              // raw x runs per warp per chunk
  static constexpr int kBCRuns = (32 * kRuns + kLnThreads - 1) / kLnThreads;  // B/C runs per thread per chunk
  static_assert(kRow % 16 == 0 && kWarpBytes % 16 == 0, "16-byte pieces");
};

template <class Io>
__global__ void __launch_bounds__(kLnThreads, ln_min_blocks<Io>())
    selective_scan_fwd_lanes_kernel(const SelectiveScanParams p) {
  using raw = typename Io::raw;
  using Lay = LanesLayout<Io>;
  constexpr int N = 16, T = kLnChunk, E = Lay::kE;
  extern __shared__ float4 smem_f4[];
  char* smem = reinterpret_cast<char*>(smem_f4);
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kLnWarps - 1) / kLnWarps;
  const int b = blockIdx.y, g = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int j = lane / 8, tau = lane % 8;
  const int ch = tile * kLnWarps + warp;
  const bool active = ch < gs;
  const int d = g * gs + (active ? ch : 0);
  const size_t bd = static_cast<size_t>(b) * p.dim + d, row = bd * L;

  raw* sRawBC = reinterpret_cast<raw*>(smem);                          // (kLnStages, 32, kLnChunk), ln_pos order
  char* wsm = smem + Lay::kWarp0 + warp * Lay::kWarpBytes;
  raw* sRawX = reinterpret_cast<raw*>(wsm + Lay::kRawX);              // (kLnStages, 3, kLnChunk)
  float* sDt = reinterpret_cast<float*>(wsm + Lay::kDt);
  float* sDtu = reinterpret_cast<float*>(wsm + Lay::kDtu);
  float4* sDg = reinterpret_cast<float4*>(wsm + Lay::kDg);
  float4* sMap = reinterpret_cast<float4*>(wsm + Lay::kMap);         // (2, 2, 4, 16)
  auto map_slot = [&](int buf, int c, int slot) -> float4& { return sMap[((buf * 2 + c) * 4 + j) * 16 + slot]; };
#pragma unroll
  for (int buf = 0; buf < 2; ++buf) {
    map_slot(buf, 0, tau) = make_float4(1.f, 1.f, 1.f, 1.f);
    map_slot(buf, 1, tau) = make_float4(0.f, 0.f, 0.f, 0.f);
  }

  const size_t group_off = (static_cast<size_t>(b) * p.n_groups + g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const raw* x_u = static_cast<const raw*>(p.u) + row;
  const raw* x_dl = static_cast<const raw*>(p.delta) + row;
  const raw* x_z = p.has_z ? static_cast<const raw*>(p.z) + row : nullptr;
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  const bool vec_u = rows_vectorizable(p.u, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L);
  const bool vec_out = rows_vectorizable(p.out, L);
  const float bias = (active && p.has_delta_bias) ? p.delta_bias[d] : 0.f;
  const float Dd = (active && p.has_D) ? p.D[d] : 0.f;

  // Run k of a row covers chunk steps [k E, k E + E); it lands at element ln_pos(k E) of the staged row.
  auto issue = [&](int t0, int stage) {
#pragma unroll
    for (int i = 0; i < Lay::kBCRuns; ++i) {
      const int r = tid + kLnThreads * i, rw = r / Lay::kRuns, k = r % Lay::kRuns;
      if (r >= 32 * Lay::kRuns) break;
      const raw* src = rw < 16 ? Bg + static_cast<size_t>(rw) * L : Cg + static_cast<size_t>(rw - 16) * L;
      stage_run(sRawBC + (stage * 32 + rw) * T + ln_pos<Lay::kRS>(k * E), src, t0 + k * E, L, true,
                rw < 16 ? vec_B : vec_C);
    }
#pragma unroll
    for (int r = lane; r < Lay::kXRuns; r += 32) {
      const int a = r / Lay::kRuns, k = r % Lay::kRuns;
      if (a == 2 && !p.has_z) continue;
      // Selects, not an array indexed by the lane-dependent a (that would live on the stack).
      const raw* src = a == 0 ? x_u : a == 1 ? x_dl : x_z;
      const bool vec = a == 0 ? vec_u : a == 1 ? vec_dl : vec_z;
      stage_run(sRawX + (stage * 3 + a) * T + ln_pos<Lay::kRS>(k * E), src, t0 + k * E, L, active, vec);
    }
  };
  // Lane l converts chunk steps 2l, 2l+1 (adjacent in every staged row): dt (bias, softplus; 0 past L), dt*u, and
  // (D*u, silu(z) or 1) into the slot of the lane that will gate those steps.
  auto convert = [&](int t0, int stage) {
    const int s = 2 * lane, ps = stage * 3 * T + ln_pos<Lay::kRS>(s), pf = ln_pos<4>(s);
    float u[2], x[2], z[2] = {0.f, 0.f};
    auto pair = [&](const raw* src, float (&v)[2]) {
      if constexpr (Lay::kRS == 4) {
        const float2 w = *reinterpret_cast<const float2*>(src);
        v[0] = w.x, v[1] = w.y;
      } else {
        const uint32_t w = *reinterpret_cast<const uint32_t*>(src);
        v[0] = Io::load(static_cast<raw>(w & 0xffffu));
        v[1] = Io::load(static_cast<raw>(w >> 16));
      }
    };
    pair(sRawX + ps, u);
    pair(sRawX + T + ps, x);
    if (p.has_z) pair(sRawX + 2 * T + ps, z);
    float dt[2], dtu[2], dg[4];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float v = x[i] + bias;
      if (p.delta_softplus) v = softplusf(v);
      // Steps past L (and inactive channels): dt = 0, decay 1 and no input, so the state passes through.
      dt[i] = (active && t0 + s + i < L) ? v : 0.f;
      dtu[i] = dt[i] * u[i];
      dg[2 * i] = Dd * u[i];
      dg[2 * i + 1] = p.has_z ? silu_fast(z[i]) : 1.f;
    }
    *reinterpret_cast<float2*>(sDt + pf) = make_float2(dt[0], dt[1]);
    *reinterpret_cast<float2*>(sDtu + pf) = make_float2(dtu[0], dtu[1]);
    // Steps 2l, 2l+1 = 8 tau' + 2j' with tau' = l / 4, j' = l % 4: lane 8 j' + tau' gates them.
    sDg[(lane % 4) * 8 + lane / 4] = make_float4(dg[0], dg[1], dg[2], dg[3]);
  };
  // The lane's 8 steps of a fp32 chunk array in ln_pos<4> order: two float4 loads.
  auto ld8 = [&](const float* arr, float (&v)[kLnSub]) {
    const float4 lo = reinterpret_cast<const float4*>(arr)[tau], hi = reinterpret_cast<const float4*>(arr)[8 + tau];
    v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
  };

  // The lane's 8 values of state row rw (0-15 B, 16-31 C) of the staged chunk, as fp32.
  auto row8 = [&](const raw* stage_rows, int rw, float (&v)[kLnSub]) {
    const raw* src = stage_rows + rw * T;
    if constexpr (Lay::kRS == 4) {
      ld8(reinterpret_cast<const float*>(src), v);
    } else {
      const uint4 w = reinterpret_cast<const uint4*>(src)[tau];
      const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        v[2 * i] = Io::load(static_cast<raw>(ws[i] & 0xffffu));
        v[2 * i + 1] = Io::load(static_cast<raw>(ws[i] >> 16));
      }
    }
  };

  float A2[4], carry[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    A2[q] = active ? p.A[static_cast<size_t>(d) * N + 4 * j + q] * kLog2e : 0.f;
    carry[q] = (active && p.has_initial_state) ? p.initial_state[bd * N + 4 * j + q] : 0.f;
  }
  const int n_chunks = (L + T - 1) / T, n_ckpt = num_ckpts(L);
  const bool hiA = (j & 2) != 0, hiB = (j & 1) != 0;

  // One commit group per chunk (empty past the end), so "all but the newest group" is always chunk ck's.
  issue(0, 0);
  cp_async_commit();
  if (n_chunks > 1) issue(T, 1);
  cp_async_commit();
  int stage = 0, stage2 = 2;  // chunk ck's stage and chunk ck+2's
  for (int ck = 0; ck < n_chunks; ++ck) {
    const int t0 = ck * T;
    cp_async_wait_prior();  // this thread's copies of chunk ck (chunk ck+1's may still fly)
    // Every thread's copies of chunk ck are visible; every warp is done with chunk ck-1 (its stage is the one
    // chunk ck+2 lands in, and its dt arrays are rewritten below).
    __syncthreads();
    convert(t0, stage);
    __syncwarp();  // dt arrays complete
    if (ck + 2 < n_chunks) issue(t0 + 2 * T, stage2);
    cp_async_commit();

    const raw* stage_rows = sRawBC + stage * 32 * T;
    float dt[kLnSub], dtu[kLnSub];
    ld8(sDt, dt);
    ld8(sDtu, dtu);
    // Pass A: decays and inputs into registers, local end state from zero.
    float a[kLnSub][4], bx[kLnSub][4], hl[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float Bv[kLnSub];
      row8(stage_rows, 4 * j + q, Bv);
      hl[q] = 0.f;
#pragma unroll
      for (int i = 0; i < kLnSub; ++i) {
        a[i][q] = fast_exp2(dt[i] * A2[q]);
        bx[i][q] = dtu[i] * Bv[i];
        hl[q] = fmaf(a[i][q], hl[q], bx[i][q]);
      }
    }
    const float sdt = ((dt[0] + dt[1]) + (dt[2] + dt[3])) + ((dt[4] + dt[5]) + (dt[6] + dt[7]));
    // Inclusive scan of the maps over the quad's 8 time-lanes (Kogge-Stone, d = 1, 2, 4; the later map applies
    // last: (P, H) o (Pu, Hu) = (P Pu, P Hu + H)), buffers alternating so one __syncwarp per round suffices.
    float P[4] = {fast_exp2(A2[0] * sdt), fast_exp2(A2[1] * sdt), fast_exp2(A2[2] * sdt), fast_exp2(A2[3] * sdt)};
#pragma unroll
    for (int r = 0; r < 3; ++r) {
      const int buf = r & 1, d = 1 << r;
      map_slot(buf, 0, 8 + tau) = make_float4(P[0], P[1], P[2], P[3]);
      map_slot(buf, 1, 8 + tau) = make_float4(hl[0], hl[1], hl[2], hl[3]);
      __syncwarp();
      const float4 Pu = map_slot(buf, 0, 8 + tau - d), Hu = map_slot(buf, 1, 8 + tau - d);
      hl[0] = fmaf(P[0], Hu.x, hl[0]), P[0] *= Pu.x;
      hl[1] = fmaf(P[1], Hu.y, hl[1]), P[1] *= Pu.y;
      hl[2] = fmaf(P[2], Hu.z, hl[2]), P[2] *= Pu.z;
      hl[3] = fmaf(P[3], Hu.w, hl[3]), P[3] *= Pu.w;
    }
    // The state entering this lane's steps: the inclusive map of time-lane tau - 1 (identity for 0) on the carry;
    // the next chunk's carry: that of time-lane 7.
    map_slot(1, 0, 8 + tau) = make_float4(P[0], P[1], P[2], P[3]);
    map_slot(1, 1, 8 + tau) = make_float4(hl[0], hl[1], hl[2], hl[3]);
    __syncwarp();
    float h[4];
    {
      const float4 Pe = map_slot(1, 0, 7 + tau), He = map_slot(1, 1, 7 + tau);
      const float4 Pl = map_slot(1, 0, 15), Hl = map_slot(1, 1, 15);
      h[0] = fmaf(Pe.x, carry[0], He.x), h[1] = fmaf(Pe.y, carry[1], He.y);
      h[2] = fmaf(Pe.z, carry[2], He.z), h[3] = fmaf(Pe.w, carry[3], He.w);
      carry[0] = fmaf(Pl.x, carry[0], Hl.x), carry[1] = fmaf(Pl.y, carry[1], Hl.y);
      carry[2] = fmaf(Pl.z, carry[2], Hl.z), carry[3] = fmaf(Pl.w, carry[3], Hl.w);
    }
    const int ts = t0 + kLnSub * tau;  // this lane's first step
    if (p.checkpoints != nullptr && active && ts % kScanCheckpointChunk == 0 && ts < L) {
#pragma unroll
      for (int q = 0; q < 4; ++q) p.checkpoints[(bd * n_ckpt + ts / kScanCheckpointChunk) * N + 4 * j + q] = h[q];
    }
    // Pass B: the true states of the lane's steps and their partial C.h.
    float Cv[4][kLnSub];
#pragma unroll
    for (int q = 0; q < 4; ++q) row8(stage_rows, 16 + 4 * j + q, Cv[q]);
    float y[kLnSub];
#pragma unroll
    for (int i = 0; i < kLnSub; ++i) {
#pragma unroll
      for (int q = 0; q < 4; ++q) h[q] = fmaf(a[i][q], h[q], bx[i][q]);
      y[i] = fmaf(Cv[3][i], h[3], fmaf(Cv[2][i], h[2], fmaf(Cv[1][i], h[1], Cv[0][i] * h[0])));
    }
    // Sum over the channel's 4 quads (lanes xor 16, xor 8): lanes with j & 2 keep steps 4-7, then j & 1 the upper
    // pair of those, leaving lane (j, tau) steps 8 tau + 2j, +1.
    float qy[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) qy[i] = (hiA ? y[4 + i] : y[i]) + __shfl_xor_sync(0xffffffffu, hiA ? y[i] : y[4 + i], 16);
    float ys[2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
      ys[i] = (hiB ? qy[2 + i] : qy[i]) + __shfl_xor_sync(0xffffffffu, hiB ? qy[i] : qy[2 + i], 8);
    if (active) {
      const float4 e = sDg[lane];
      const float o0 = (ys[0] + e.x) * e.y, o1 = (ys[1] + e.z) * e.w;
      const int t = ts + 2 * j;
      raw* out = static_cast<raw*>(p.out) + row + t;
      if (vec_out && t < L) {
        store_pair<Io>(out, o0, o1);  // L % 8 == 0: the pair is inside [0, L)
      } else {
        if (t < L) out[0] = Io::store(o0);
        if (t + 1 < L) out[1] = Io::store(o1);
      }
    }
    stage = stage == kLnStages - 1 ? 0 : stage + 1;
    stage2 = stage2 == kLnStages - 1 ? 0 : stage2 + 1;
  }
  if (active && p.last_state != nullptr && tau == 0) {
#pragma unroll
    for (int q = 0; q < 4; ++q) p.last_state[bd * N + 4 * j + q] = carry[q];
  }
}

// Blocks: one per (group, tile of kLnWarps channels) and batch row.
inline dim3 fwd_lanes_grid(const SelectiveScanParams& p) {
  const int gs = p.dim / p.n_groups;
  return dim3(p.n_groups * ((gs + kLnWarps - 1) / kLnWarps), p.batch);
}

template <DType kType>
void fwd_lanes_launch(const SelectiveScanParams& p, cudaStream_t stream) {
  auto kernel = selective_scan_fwd_lanes_kernel<IO<kType>>;
  const int smem = LanesLayout<IO<kType>>::kBytes;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_fwd_cuda: ") + cudaGetErrorString(e));
  kernel<<<fwd_lanes_grid(p), kLnThreads, smem, stream>>>(p);
  e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_fwd_cuda: ") + cudaGetErrorString(e));
}

}  // namespace ss
}  // namespace mamba
