// Selective-scan backward kernel with recomputation, its reduction kernels and launch template (instantiated per
// dtype in selective_scan_bwd_<dtype>.cu). Semantics: native/params.h. Reads the forward inputs, dout (batch, dim,
// L), the fp32 checkpoints (batch, dim, n_ckpt, dstate) and optional dlast_state (batch, dim, dstate); writes du,
// ddelta, dz (batch, dim, L), dB/dC (like B/C), dA (dim, dstate), dD, ddelta_bias (dim), dinitial_state.
//
// Same work split as the forward: warp = channel, lane = kItems steps, chunks walked last to first. Per chunk and
// state the warp recomputes the decays once, re-runs the forward scan from the chunk checkpoint (a shuffle scan,
// all in registers), then runs the adjoint scan g_t = C_t*dy_t + a_{t+1}*g_{t+1} backwards with the same
// registers. du, ddelta and dz accumulate over states in registers. dB/dC (shared by the channels of a group)
// are summed over the block's warps in shared memory in a fixed order, then over blocks either by fp32 atomics
// into a workspace accumulator (default) or into per-tile partial buffers reduced in a fixed order
// (deterministic). Per-channel sums over the batch (dA, dD, ddelta_bias, time-invariant dB/dC) always go through
// per-batch partial buffers reduced in a fixed order, so they are bitwise repeatable in both modes.
#pragma once
#include <stdexcept>
#include <string>
#include "selective_scan_common.cuh"

namespace mamba {
namespace ss {

// Scratch of the backward, carved out of the caller's workspace (all fp32).
struct BwdWorkspace {
  float* dA_part;   // (segments, batch, dim, dstate)
  float* dBi_part;  // (batch, dim, dstate) time-invariant B only
  float* dCi_part;  // (batch, dim, dstate) time-invariant C only
  float* dD_part;   // (segments, batch, dim)
  float* ddb_part;  // (segments, batch, dim)
  float* dB_acc;    // variable B: (batch, G, dstate, L) accumulator, or (tiles, batch, G, dstate, L) if deterministic
  float* dC_acc;    // same for C
  size_t bc_elems;  // elements of one dB_acc / dC_acc
  // Time split of the fast backward (selective_scan_bwd_fast.cuh); segments 1 and seg_len >= L otherwise.
  int segments;     // time segments whose per-channel partials are summed by the channel kernel
  int seg_len;      // steps per segment, a multiple of kScanCheckpointChunk
  float* g_loc;     // (segments - 1, batch, dim, 16): local adjoint leaving segments 1 .. segments-1 at their left end
  float* sdt;       // (segments - 1, batch, dim): sum of dt over each of those segments
  // Chained split (no summary pass; selective_scan_bwd_fast.cuh, bwd_chain_item): a grab counter and
  // (segments - 1, tiles * batch) flags, zeroed before each launch; g_loc then holds each segment's whole adjoint.
  // nullptr otherwise.
  int* chain;
};

// The dB/dC accumulators as one range (they are adjacent in the workspace, bwd_workspace_layout; whole float4s
// since both start 256-byte aligned and hold a multiple of 16 floats when dstate is 16): first float, floats.
__host__ __device__ inline float* bc_acc_range(const BwdWorkspace& ws, size_t* floats) {
  float* first = ws.dB_acc != nullptr ? ws.dB_acc : ws.dC_acc;
  float* last = ws.dC_acc != nullptr ? ws.dC_acc : ws.dB_acc;
  *floats = first == nullptr ? 0 : static_cast<size_t>(last + ws.bc_elems - first);
  return first;
}

// Warps per channel in the backward. Deterministic mode keeps one warp per channel: its dB/dC partial buffers
// grow with the number of channel tiles (4x more tiles with 4 warps per channel).
inline int choose_bwd_split(const SelectiveScanParams& p) { return p.deterministic ? 1 : choose_split(p); }

// Lays the workspace out from `base` (nullptr: only computes the size) for `segments` time segments (> 1 only on
// the fast path, which has dstate 16), with `chain_ints` ints for a chained split (0: none). Returns the total bytes.
inline size_t bwd_workspace_layout(const SelectiveScanParams& p, int segments, int seg_len, char* base,
                                   BwdWorkspace* ws, size_t chain_ints = 0) {
  const int tiles = tiles_per_group(p, choose_bwd_split(p));
  const size_t K = static_cast<size_t>(segments < 1 ? 1 : segments);
  const size_t bdn = static_cast<size_t>(p.batch) * p.dim * p.dstate;
  const size_t bd = static_cast<size_t>(p.batch) * p.dim;
  const size_t bgnl = static_cast<size_t>(p.batch) * p.n_groups * p.dstate * p.seqlen;
  const size_t bc = p.deterministic ? bgnl * tiles : bgnl;
  const size_t sizes[10] = {K * bdn, p.is_variable_B ? 0 : bdn, p.is_variable_C ? 0 : bdn, K * bd, K * bd,
                            p.is_variable_B ? bc : 0, p.is_variable_C ? bc : 0, (K - 1) * bdn,
                            chain_ints > 0 ? 0 : (K - 1) * bd, chain_ints};
  void* ptrs[10];
  size_t off = 0;
  for (int i = 0; i < 10; ++i) {
    ptrs[i] = (base != nullptr && sizes[i] > 0) ? base + off : nullptr;
    off += align_up(sizes[i] * 4);  // floats, and the chain's ints
  }
  const auto f = [&](int i) { return static_cast<float*>(ptrs[i]); };
  if (ws != nullptr)
    *ws = BwdWorkspace{f(0), f(1), f(2), f(3), f(4), f(5), f(6), bc, static_cast<int>(K), seg_len, f(7), f(8),
                       static_cast<int*>(ptrs[9])};
  return off;
}

}  // namespace ss
}  // namespace mamba

// The dstate-16 fast path fills the same workspace (BwdWorkspace above).
#include "selective_scan_bwd_fast.cuh"

namespace mamba {
namespace ss {

// Dynamic shared memory of the backward: B and C slabs (fp32), the double-buffered dB/dC reduction buffer
// (2, kWarps, 2, kChunk) fp32 (which the per-warp partial sums over states, (3, kWarps, kChunk), reuse at the end
// of a chunk when kSplit > 1), eight per-warp (kWarps, dstate) fp32 arrays, then SlabStager's raw buffer.
static_assert(3 * kWarps * kChunk <= 2 * kWarps * 2 * kChunk, "sPart fits in sRed");
inline size_t bwd_smem_bytes(int dstate, int raw_bytes) {
  return sizeof(float) * (2 * kSlab * kChunk + 2 * kWarps * 2 * kChunk + 8 * kWarps * static_cast<size_t>(dstate)) +
         raw_bytes;
}

template <class Io, int kSplit>
__global__ void __launch_bounds__(kThreads, MAMBA_SS_BWD_MIN_BLOCKS)
    selective_scan_bwd_kernel(const SelectiveScanParams p, const BwdWorkspace ws) {
  using raw = typename Io::raw;
  extern __shared__ float4 smem_f4[];
  float* sB = reinterpret_cast<float*>(smem_f4);  // (kSlab, kChunk)
  float* sC = sB + kSlab * kChunk;                // (kSlab, kChunk)
  float* sRed = sC + kSlab * kChunk;              // (2, kWarps, 2, kChunk) per-warp dB/dC of one state
  float* sPart = sRed;  // (3, kWarps, kChunk) per-warp du_acc, ddtA, y if kSplit > 1, only between chunks
  const int N = p.dstate, L = p.seqlen;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* sA = sRed + 2 * kWarps * 2 * kChunk + warp * N;  // (N) A of this warp's channel
  float* sRc = sA + kWarps * N;    // (N) adjoint entering the current chunk from the right
  float* sH = sRc + kWarps * N;    // (N) checkpoint: state before the current chunk
  float* sdA = sH + kWarps * N;    // (N) dA of this (b, d)
  float* sdBi = sdA + kWarps * N;  // (N) time-invariant dB of this (b, d)
  float* sdCi = sdBi + kWarps * N;
  float* sBi = sdCi + kWarps * N;  // (N) time-invariant B of this channel
  float* sCi = sBi + kWarps * N;
  void* sRaw = sCi + (kWarps - warp) * N;  // SlabStager's buffer, after the per-warp arrays

  using Tile = ChannelTile<kSplit>;
  const Tile ct(p);
  const size_t bd = static_cast<size_t>(ct.b) * p.dim + ct.d;
  const size_t row = bd * L;
  const int n_chunks = num_chunks(L), n_ckpt = num_ckpts(L);

  for (int n = lane; n < N; n += 32) {
    sA[n] = ct.active ? p.A[static_cast<size_t>(ct.d) * N + n] : 0.f;
    sRc[n] = (ct.active && p.dlast_state != nullptr) ? p.dlast_state[bd * N + n] : 0.f;
    sdA[n] = sdBi[n] = sdCi[n] = 0.f;
    sBi[n] = fixed_bc<Io>(p.B, p.is_variable_B, ct.active, ct.d, N, n);
    sCi[n] = fixed_bc<Io>(p.C, p.is_variable_C, ct.active, ct.d, N, n);
  }
  const float D = (ct.active && p.has_D) ? p.D[ct.d] : 0.f;
  const float bias = (ct.active && p.has_delta_bias) ? p.delta_bias[ct.d] : 0.f;

  const raw* u_row = static_cast<const raw*>(p.u) + row;
  const raw* dl_row = static_cast<const raw*>(p.delta) + row;
  const raw* z_row = p.has_z ? static_cast<const raw*>(p.z) + row : nullptr;
  const raw* dout_row = static_cast<const raw*>(p.dout) + row;
  raw* du_row = static_cast<raw*>(p.du) + row;
  raw* ddl_row = static_cast<raw*>(p.ddelta) + row;
  raw* dz_row = p.has_z ? static_cast<raw*>(p.dz) + row : nullptr;
  const size_t group_off = (static_cast<size_t>(ct.b) * p.n_groups + ct.g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  // Where this block's per-state dB/dC rows go: the accumulator row of (b, g), or this tile's partial row.
  const size_t bc_off =
      (p.deterministic ? static_cast<size_t>(ct.tile) * p.batch * p.n_groups * N * L : 0) + group_off;
  const bool vec_u = rows_vectorizable(p.u, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L), vec_dout = rows_vectorizable(p.dout, L);
  const bool vec_du = rows_vectorizable(p.du, L), vec_ddl = rows_vectorizable(p.ddelta, L);
  const bool vec_dz = rows_vectorizable(p.dz, L);
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  const bool reduce_bc = p.is_variable_B || p.is_variable_C;
  // With L % 4 == 0 every 4-step quad of a dB/dC row is 16-byte aligned and lies wholly inside or outside [0, L).
  const bool quad_ok = L % 4 == 0;
  SlabStager<Io> stager(sRaw, Bg, Cg, L, N, p.is_variable_B, p.is_variable_C, vec_B, vec_C);
  stager.issue((n_chunks - 1) * kChunk, 0);

  float dD_acc = 0.f, ddb_acc = 0.f;
  int buf = 0;
  for (int c = n_chunks - 1; c >= 0; --c) {
    const int c0 = c * kChunk;
    const int t0 = c0 + lane * kItems;
    __syncwarp();
    for (int n = lane * kSplit + ct.part; n < N; n += 32 * kSplit)
      sH[n] = ct.active ? p.checkpoints[(bd * n_ckpt + c * kCkptPerChunk) * N + n] : 0.f;
    __syncwarp();

    // u and the raw delta are not kept across the state loop (registers); they are re-read for the epilogue.
    float dt[kItems], dtu[kItems], dy[kItems];
    float du_acc[kItems], ddtA[kItems], y[kItems];
    {
      float u[kItems];
      if (ct.active) {
        load_items<Io>(u_row, t0, L, vec_u, u);
        load_items<Io>(dl_row, t0, L, vec_dl, dt);
        load_items<Io>(dout_row, t0, L, vec_dout, dy);
        if (p.has_z) {
          float z[kItems];
          load_items<Io>(z_row, t0, L, vec_z, z);
#pragma unroll
          for (int i = 0; i < kItems; ++i) dy[i] *= z[i] * sigmoidf_fast(z[i]);
        }
      } else {
#pragma unroll
        for (int i = 0; i < kItems; ++i) u[i] = dt[i] = dy[i] = 0.f;
      }
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const bool valid = ct.active && t0 + i < L;
        float x = dt[i] + bias;
        if (p.delta_softplus) x = softplusf(x);
        // Padded steps: decay 1, no input, no output gradient; the adjoint passes through unchanged.
        dt[i] = valid ? x : 0.f;
        dy[i] = valid ? dy[i] : 0.f;
        dtu[i] = dt[i] * u[i];
        du_acc[i] = ddtA[i] = y[i] = 0.f;
      }
    }

    for (int s0 = 0; s0 < N; s0 += kSlab) {
      const int ns = min(kSlab, N - s0);
      __syncthreads();  // every warp is done reading the previous slab
      stager.land(sB, sC, c0, s0, vec_B, vec_C);
      if (s0 + kSlab < N) {
        stager.issue(c0, s0 + kSlab);
      } else if (c > 0) {
        stager.issue(c0 - kChunk, 0);
      }
      __syncthreads();
      // Every warp runs the same number of iterations (the barrier below); a warp without a state this round
      // contributes zeros.
      for (int kk = 0; kk < (ns + kSplit - 1) / kSplit; ++kk) {
        const int k = kk * kSplit + ct.part;
        const bool own = k < ns;
        const int n = s0 + (own ? k : 0);
        const float A = sA[n];
        const float A2 = A * kLog2e;
        float Bv[kItems], Cv[kItems];
        // A warp without a state this round reads row 0 (always staged) and zeroes it below.
        const int kr = own ? k : 0;
        if (p.is_variable_B) {
          read_items(sB + kr * kChunk, lane, Bv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = sBi[n];
        }
        if (p.is_variable_C) {
          read_items(sC + kr * kChunk, lane, Cv);
        } else {
#pragma unroll
          for (int i = 0; i < kItems; ++i) Cv[i] = sCi[n];
        }
        if (!own) {
          // Zero input and output weights make this round inert: h, y and every gradient term stay 0.
#pragma unroll
          for (int i = 0; i < kItems; ++i) Bv[i] = Cv[i] = 0.f;
        }

        // Forward recomputation: lane-local run from zero gives the lane's map, the warp scan the state entering
        // the lane (from the checkpoint), and a second run from that state the exact states h.
        float a[kItems], h[kItems];
        float hr = 0.f, prod = 1.f;
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          a[i] = fast_exp2(dt[i] * A2);
          hr = fmaf(a[i], hr, dtu[i] * Bv[i]);
          prod *= a[i];
        }
        float unused;
        const float h_in = scan_forward(prod, hr, own ? sH[n] : 0.f, lane, unused);
        hr = h_in;
        {
          float dCt[kItems];  // dC_t = dy_t * h_t, published now to free registers for the adjoint
#pragma unroll
          for (int i = 0; i < kItems; ++i) {
            hr = fmaf(a[i], hr, dtu[i] * Bv[i]);
            h[i] = hr;
            if (p.has_z) y[i] = fmaf(Cv[i], hr, y[i]);
            dCt[i] = own ? dy[i] * hr : 0.f;
          }
          if (!p.is_variable_C) {
            float s = 0.f;
#pragma unroll
            for (int i = 0; i < kItems; ++i) s += dCt[i];
            s = warp_sum(s);
            if (lane == 0 && own) sdCi[n] += s;
          } else {
            write_items(sRed + ((buf * kWarps + warp) * 2 + 1) * kChunk, lane, dCt);
          }
        }

        // Adjoint g_t = C_t*dy_t + a_{t+1}*g_{t+1}: a lane-local run from zero gives the lane's map, the reverse
        // warp scan the adjoint r entering the lane from the right, and a second run from r the exact g.
        float cd[kItems];
#pragma unroll
        for (int i = 0; i < kItems; ++i) cd[i] = Cv[i] * dy[i];
        float gl = cd[kItems - 1];
#pragma unroll
        for (int i = kItems - 2; i >= 0; --i) gl = fmaf(a[i + 1], gl, cd[i]);
        const float carry = own ? sRc[n] : 0.f;
        float carry_out;
        const float r = scan_reverse(prod, a[0] * gl, carry, lane, carry_out);
        __syncwarp();  // every lane has read the old carry before lane 0 replaces it
        if (lane == 0 && own) sRc[n] = carry_out;

        float dBt[kItems];
        float dA_l = 0.f, g = r;
#pragma unroll
        for (int i = kItems - 1; i >= 0; --i) {
          g = i == kItems - 1 ? cd[i] + r : fmaf(a[i + 1], g, cd[i]);
          const float hprev = i == 0 ? h_in : h[i - 1];
          dBt[i] = own ? g * dtu[i] : 0.f;
          if (own) {
            du_acc[i] = fmaf(g, Bv[i], du_acc[i]);
            const float q = g * a[i] * hprev;
            ddtA[i] = fmaf(A, q, ddtA[i]);
            dA_l = fmaf(dt[i], q, dA_l);
          }
        }
        dA_l = warp_sum(dA_l);
        if (lane == 0 && own) sdA[n] += dA_l;
        if (!p.is_variable_B) {
          float s = 0.f;
#pragma unroll
          for (int i = 0; i < kItems; ++i) s += dBt[i];
          s = warp_sum(s);
          if (lane == 0 && own) sdBi[n] += s;
        } else {
          write_items(sRed + ((buf * kWarps + warp) * 2 + 0) * kChunk, lane, dBt);
        }
        if (reduce_bc) {
          // Sum the block's channels in channel order, one thread per time step, for each state of this round.
          // The buffer alternates between rounds, so one barrier per round suffices: a buffer is rewritten only
          // after the next barrier.
          __syncthreads();
          if (quad_ok) {
            // 16-byte path: one float4 atomic (or store) per 4 steps; work item = (state q of the round, matrix m,
            // quad of steps).
            constexpr int kQuads = kChunk / 4;
            for (int w = threadIdx.x; w < kSplit * 2 * kQuads; w += kThreads) {
              const int quad = w % kQuads, m = (w / kQuads) % 2, q = w / (2 * kQuads);
              const int t = c0 + 4 * quad;
              if (kk * kSplit + q >= ns || t >= L || (m == 0 ? !p.is_variable_B : !p.is_variable_C)) continue;
              float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
              for (int ch = 0; ch < Tile::kChannels; ++ch) {
                const float4 v = reinterpret_cast<const float4*>(
                    sRed + ((buf * kWarps + ch * kSplit + q) * 2 + m) * kChunk)[quad];
                s.x += v.x;
                s.y += v.y;
                s.z += v.z;
                s.w += v.w;
              }
              float4* acc = reinterpret_cast<float4*>((m == 0 ? ws.dB_acc : ws.dC_acc) + bc_off +
                                                      static_cast<size_t>(s0 + kk * kSplit + q) * L + t);
              if (p.deterministic) {
                *acc = s;
              } else {
                red_add4(reinterpret_cast<float*>(acc), s);
              }
            }
          } else {
            const int t = c0 + threadIdx.x;
            if (t < L) {
#pragma unroll
              for (int q = 0; q < kSplit; ++q) {
                if (kk * kSplit + q >= ns) break;
                const size_t o = bc_off + static_cast<size_t>(s0 + kk * kSplit + q) * L + t;
#pragma unroll
                for (int m = 0; m < 2; ++m) {
                  if (m == 0 ? !p.is_variable_B : !p.is_variable_C) continue;
                  float s = 0.f;
#pragma unroll
                  for (int ch = 0; ch < Tile::kChannels; ++ch)
                    s += sRed[((buf * kWarps + ch * kSplit + q) * 2 + m) * kChunk + threadIdx.x];
                  float* acc = m == 0 ? ws.dB_acc : ws.dC_acc;
                  if (p.deterministic) {
                    acc[o] = s;
                  } else {
                    red_add(acc + o, s);
                  }
                }
              }
            }
          }
          buf ^= 1;
        }
      }
    }

    if constexpr (kSplit > 1) {
      // Sum the per-state accumulators of the channel's warps in part order; part 0 finishes the channel.
      __syncthreads();  // sPart reuses sRed: the last round's reduction is done reading it
      write_items(sPart + (0 * kWarps + warp) * kChunk, lane, du_acc);
      write_items(sPart + (1 * kWarps + warp) * kChunk, lane, ddtA);
      write_items(sPart + (2 * kWarps + warp) * kChunk, lane, y);
      __syncthreads();
      if (ct.part == 0) {
#pragma unroll
        for (int q = 1; q < kSplit; ++q) {
          float v0[kItems], v1[kItems], v2[kItems];
          read_items(sPart + (0 * kWarps + warp + q) * kChunk, lane, v0);
          read_items(sPart + (1 * kWarps + warp + q) * kChunk, lane, v1);
          read_items(sPart + (2 * kWarps + warp + q) * kChunk, lane, v2);
#pragma unroll
          for (int i = 0; i < kItems; ++i) {
            du_acc[i] += v0[i];
            ddtA[i] += v1[i];
            y[i] += v2[i];
          }
        }
      }
    }
    if (ct.active && ct.part == 0) {
      float u[kItems], dsp[kItems], du[kItems], ddl[kItems];
      load_items<Io>(u_row, t0, L, vec_u, u);
      load_items<Io>(dl_row, t0, L, vec_dl, dsp);
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        // softplus'(x) = sigmoid(x) of the raw delta + bias
        dsp[i] = p.delta_softplus ? sigmoidf_fast(dsp[i] + bias) : 1.f;
        du[i] = fmaf(dt[i], du_acc[i], D * dy[i]);
        ddl[i] = fmaf(u[i], du_acc[i], ddtA[i]) * dsp[i];
        if (t0 + i < L) {
          ddb_acc += ddl[i];
          dD_acc = fmaf(dy[i], u[i], dD_acc);
        }
      }
      store_items<Io>(du_row, t0, L, vec_du, du);
      store_items<Io>(ddl_row, t0, L, vec_ddl, ddl);
      if (p.has_z) {
        float z[kItems], dout[kItems], dz[kItems];
        load_items<Io>(z_row, t0, L, vec_z, z);
        load_items<Io>(dout_row, t0, L, vec_dout, dout);
#pragma unroll
        for (int i = 0; i < kItems; ++i) {
          const float sg = sigmoidf_fast(z[i]);
          dz[i] = dout[i] * fmaf(D, u[i], y[i]) * sg * fmaf(z[i], 1.f - sg, 1.f);
        }
        store_items<Io>(dz_row, t0, L, vec_dz, dz);
      }
    }
  }

  __syncwarp();
  dD_acc = warp_sum(dD_acc);
  ddb_acc = warp_sum(ddb_acc);
  if (!ct.active) return;
  for (int n = lane * kSplit + ct.part; n < N; n += 32 * kSplit) {
    ws.dA_part[bd * N + n] = sdA[n];
    if (!p.is_variable_B) ws.dBi_part[bd * N + n] = sdBi[n];
    if (!p.is_variable_C) ws.dCi_part[bd * N + n] = sdCi[n];
    if (p.dinitial_state != nullptr) p.dinitial_state[bd * N + n] = sRc[n];
  }
  if (lane == 0 && ct.part == 0) {
    ws.dD_part[bd] = dD_acc;
    ws.ddb_part[bd] = ddb_acc;
  }
}

// s + the sum over b < nb, then k < nk (in that order, so results are bitwise repeatable) of x[b * sb + k * sk],
// the loads issued 16 at a time: the sum waits for one memory latency per 16 values, not one per value (the
// per-channel sums over S3's 16 time segments took 10 us with one dependent load after another, H200).
__device__ __forceinline__ float ordered_sum(float s, const float* x, int nb, size_t sb, int nk, size_t sk) {
  const int count = nb * nk;
  const float* row = x;  // element (b, 0)
  const float* q = x;    // element (b, k): stepped, not divided out of the running index
  int k = 0;
  for (int m = 0; m < count; m += 16) {
    float v[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      v[j] = m + j < count ? __ldg(q) : 0.f;
      q += sk;
      if (++k == nk) k = 0, row += sb, q = row;
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) s += v[j];
  }
  return s;
}

// Elements per thread of the dB/dC part of the finish kernel (4 independent loads in flight), and its block size
// (small blocks: the per-channel part has only dim x dstate threads, 24576 at S1-S3).
constexpr int kFinishPerThread = 4, kFinishThreads = 128;

// The backward's last launch, two jobs in one grid (a launch and its ramp cost more than either job at S3):
// blocks [0, ch_blocks) write the per-channel parameter gradients dA (dim, dstate), dD, ddelta_bias (dim) and
// time-invariant dB/dC, sums over batch then time segment of the per-(b, d) partials (first: each thread waits on
// its loads); the rest write dB/dC (batch, G, dstate, L) in the activation dtype from the accumulator, or from the
// per-tile partials summed in tile order.
template <class Io>
__global__ void selective_scan_bwd_finish_kernel(const SelectiveScanParams p, const BwdWorkspace ws, int tiles,
                                                 int ch_blocks) {
  using raw = typename Io::raw;
  if (static_cast<int>(blockIdx.x) >= ch_blocks) {
    const size_t total = static_cast<size_t>(p.batch) * p.n_groups * p.dstate * p.seqlen;
    const size_t step = static_cast<size_t>(gridDim.x - ch_blocks) * blockDim.x * kFinishPerThread;
    for (size_t i0 = (blockIdx.x - ch_blocks) * static_cast<size_t>(blockDim.x) * kFinishPerThread + threadIdx.x;
         i0 < total; i0 += step) {
      // Every load before any store: the compiler may not move a load above a store it cannot prove disjoint.
      float v[2][kFinishPerThread];
#pragma unroll
      for (int m = 0; m < 2; ++m) {
        const bool on = m == 0 ? p.is_variable_B : p.is_variable_C;
        const float* acc = m == 0 ? ws.dB_acc : ws.dC_acc;
#pragma unroll
        for (int r = 0; r < kFinishPerThread; ++r) {
          const size_t i = i0 + static_cast<size_t>(r) * blockDim.x;
          v[m][r] = !on || i >= total ? 0.f : p.deterministic ? ordered_sum(0.f, acc + i, tiles, total, 1, 0) : acc[i];
        }
      }
#pragma unroll
      for (int m = 0; m < 2; ++m) {
        if (m == 0 ? !p.is_variable_B : !p.is_variable_C) continue;
#pragma unroll
        for (int r = 0; r < kFinishPerThread; ++r) {
          const size_t i = i0 + static_cast<size_t>(r) * blockDim.x;
          if (i < total) static_cast<raw*>(m == 0 ? p.dB : p.dC)[i] = Io::store(v[m][r]);
        }
      }
    }
    return;
  }
  const int N = p.dstate;
  const size_t total = static_cast<size_t>(p.dim) * N;
  const size_t bdn = static_cast<size_t>(p.batch) * p.dim * N, bd = static_cast<size_t>(p.batch) * p.dim;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(ch_blocks) * blockDim.x) {
    const size_t d = i / N;
    const int n = static_cast<int>(i % N);
    // dD and ddelta_bias by the channel's first two threads (one when N = 1), beside their dA; every sum is formed
    // before the first store so that all their loads can be in flight together.
    const bool do_D = p.has_D && n == 0, do_db = p.has_delta_bias && n == (N > 1 ? 1 : 0);
    const float sA = ordered_sum(0.f, ws.dA_part + i, p.batch, total, ws.segments, bdn);  // batch rows, then segments
    const float sB = p.is_variable_B ? 0.f : ordered_sum(0.f, ws.dBi_part + i, p.batch, total, 1, 0);
    const float sC = p.is_variable_C ? 0.f : ordered_sum(0.f, ws.dCi_part + i, p.batch, total, 1, 0);
    const float sD = do_D ? ordered_sum(0.f, ws.dD_part + d, p.batch, p.dim, ws.segments, bd) : 0.f;
    const float sb = do_db ? ordered_sum(0.f, ws.ddb_part + d, p.batch, p.dim, ws.segments, bd) : 0.f;
    p.dA[i] = sA;
    if (!p.is_variable_B) static_cast<raw*>(p.dB)[i] = Io::store(sB);
    if (!p.is_variable_C) static_cast<raw*>(p.dC)[i] = Io::store(sC);
    if (do_D) p.dD[d] = sD;
    if (do_db) p.ddelta_bias[d] = sb;
  }
}

inline void check_launch(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

inline int grid_for(size_t total, int threads = 256) {
  const size_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 132 * 16 ? (blocks > 0 ? blocks : 1) : 132 * 16);
}

// Zeroes the dB/dC accumulators that the scan kernels add into (non-deterministic mode): one memset when both
// exist, since they are adjacent in the workspace (bwd_workspace_layout).
inline void zero_bc_accumulators(const BwdWorkspace& ws, cudaStream_t stream) {
  size_t floats = 0;
  float* first = bc_acc_range(ws, &floats);
  if (first == nullptr) return;
  cudaError_t e = cudaMemsetAsync(first, 0, floats * sizeof(float), stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
}

// The per-channel sums over the batch and dB/dC in the activation dtype from the accumulators: one launch.
template <class Io>
void launch_bwd_finish(const SelectiveScanParams& p, const BwdWorkspace& ws, int tiles, cudaStream_t stream) {
  const size_t bc = static_cast<size_t>(p.batch) * p.n_groups * p.dstate * p.seqlen;
  const int bc_blocks =
      (p.is_variable_B || p.is_variable_C) ? grid_for((bc + kFinishPerThread - 1) / kFinishPerThread, kFinishThreads) : 0;
  const int ch_blocks = grid_for(static_cast<size_t>(p.dim) * p.dstate, kFinishThreads);
  selective_scan_bwd_finish_kernel<Io><<<ch_blocks + bc_blocks, kFinishThreads, 0, stream>>>(p, ws, tiles, ch_blocks);
  check_launch("selective_scan_bwd_cuda");
}

template <DType kType, int kSplit>
void selective_scan_bwd_launch_split(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  using Io = IO<kType>;
  BwdWorkspace ws;
  bwd_workspace_layout(p, 1, p.seqlen, static_cast<char*>(workspace), &ws);
  if (!p.deterministic) zero_bc_accumulators(ws, stream);
  auto kernel = selective_scan_bwd_kernel<Io, kSplit>;
  const size_t smem = bwd_smem_bytes(p.dstate, SlabStager<Io>::kRawBytes);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
  }
  const int tiles = tiles_per_group(p, kSplit);
  kernel<<<dim3(p.n_groups * tiles, p.batch), kThreads, smem, stream>>>(p, ws);
  check_launch("selective_scan_bwd_cuda");
  launch_bwd_finish<Io>(p, ws, tiles, stream);
}

template <DType kType>
void selective_scan_bwd_launch(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  const BwdFastPlan plan = bwd_fast_plan<kType>(p);
  if (plan.fast) {
    BwdWorkspace ws;
    bwd_workspace_layout(p, plan.segments, plan.seg_len, static_cast<char*>(workspace), &ws, bwd_chain_ints(p, plan));
    if (!bwd_summary_zeroes(ws)) zero_bc_accumulators(ws, stream);
    selective_scan_bwd_fast_launch<kType>(p, ws, stream);
    return launch_bwd_finish<IO<kType>>(p, ws, 1, stream);
  }
  switch (choose_bwd_split(p)) {
    case 1: return selective_scan_bwd_launch_split<kType, 1>(p, workspace, stream);
    case 2: return selective_scan_bwd_launch_split<kType, 2>(p, workspace, stream);
    default: return selective_scan_bwd_launch_split<kType, 4>(p, workspace, stream);
  }
}

// Workspace bytes of the backward on the current device (the fast path's time split depends on its occupancy).
template <DType kType>
size_t selective_scan_bwd_workspace(const SelectiveScanParams& p) {
  const BwdFastPlan plan = bwd_fast_plan<kType>(p);
  return plan.fast ? bwd_workspace_layout(p, plan.segments, plan.seg_len, nullptr, nullptr, bwd_chain_ints(p, plan))
                   : bwd_workspace_layout(p, 1, p.seqlen, nullptr, nullptr);
}

}  // namespace ss
}  // namespace mamba
