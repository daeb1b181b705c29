// Selective-scan backward, fast path for dstate == 16 with variable B and C when batch * dim is large (S1, S2),
// non-deterministic mode. Included by selective_scan_bwd.cuh, which owns the workspace and the finishing kernels
// (dB/dC conversion, per-channel sums over the batch); this kernel fills the same workspace as the warp-chunk
// kernel: dB_acc/dC_acc by fp32 atomics, dA_part/dD_part/ddb_part per (b, d).
//
// Layout as the forward fast path: lane = (channel cl, quad j of 4 states), 8 channels per warp, kBfChannels per
// block, strictly sequential in time, one chunk = one checkpoint interval (kScanCheckpointChunk steps), chunks
// walked last to first. Per chunk:
//   1. stage B, C as (t, 16) fp32 and per (t, channel) (dt, dt*u, dy, u) and (softplus', dout*silu'(z)) where
//      dy = dout*silu(z) is the gradient of the pre-gate output;
//   2. prepass: from the chunk's checkpoint, run the recurrence to the starts of sub-chunks 1..3 (registers);
//   3. per sub-chunk of kBfSub steps, last to first: recompute its states into registers H (and the pre-gate
//      output y when z is given), then walk it backwards with the adjoint g_t = C_t*dy_t + a_{t+1}*g_{t+1}:
//      dA, and per step s1 = sum_n g*B, s2 = sum_n A*g*a*h_{t-1} (du = dt*s1 + D*dy, ddelta = (s2 + u*s1)*
//      softplus'), dB = g*dt*u and dC = h*dy summed over the block's channels through shared memory every
//      kBfRed steps and added to the accumulators with one fp32 atomic per (b, state, step) per block.
// Per element-state: 2.75 exps (prepass 0.75, recompute 1, reverse 1) and ~30 instructions, against ~65 for the
// warp-chunk kernel. Sums over the 4 lanes of a channel are reduce-scatters (each lane ends with whole sums for
// some steps), so no lane idles and no value is reduced twice.
#pragma once
#include "selective_scan_common.cuh"

namespace mamba {
namespace ss {

#ifndef MAMBA_SS_BWD_FAST
#define MAMBA_SS_BWD_FAST 0
#endif
// Resident blocks per SM asked of the compiler: 3 (72 KB shared each) caps registers at 170.
#ifndef MAMBA_SS_BWD_FAST_MIN_BLOCKS
#define MAMBA_SS_BWD_FAST_MIN_BLOCKS 3
#endif
constexpr int kBfWarps = 4;
constexpr int kBfThreads = kBfWarps * 32;
constexpr int kBfChannels = kBfWarps * 8;
constexpr int kBfChunk = kScanCheckpointChunk;  // one checkpoint interval
constexpr int kBfSub = 16;                      // steps whose states a lane keeps in registers
constexpr int kBfHalf = kBfSub / 2;             // steps per reduce-scatter of s1/s2/y
constexpr int kBfRed = 4;                       // steps per dB/dC reduction over channels
static_assert(kBfChunk == 64 && kBfChunk % kBfSub == 0, "staging maps 128 threads onto 64 steps");
static_assert(kBfThreads == 16 * kBfChunk / kItems, "one B run and one C run per thread");
static_assert(2 * kBfThreads == kBfChannels * kBfChunk / kItems, "two channel runs per thread");
static_assert(kBfThreads / 4 == 2 * kBfRed * 4, "one reduction output per 4 threads");

inline bool use_bwd_fast(const SelectiveScanParams& p) {
  return MAMBA_SS_BWD_FAST && p.dstate == 16 && p.is_variable_B && p.is_variable_C && !p.deterministic &&
         static_cast<long>(p.batch) * p.dim >= 4096;
}

inline size_t bwd_fast_smem_bytes() {
  return sizeof(float) * (2 * kBfChunk * 16) + sizeof(float4) * kBfChunk * kBfChannels +
         sizeof(float2) * kBfChunk * kBfChannels + sizeof(float4) * 2 * kBfRed * kBfChannels * 4;
}

// Reduce-scatter of v[0..7] (one value per step of a half sub-chunk) over the 4 lanes of a channel: afterwards
// lane j holds the 4-lane sums of steps 4*(j&1) + 2*(j>>1) + {0, 1} in v[0], v[1].
__device__ __forceinline__ void reduce_scatter8(float (&v)[kBfHalf], int j) {
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

// row[t + i] = v[i] for i < 2 and t + i < L (t even).
template <class Io>
__device__ __forceinline__ void store2(typename Io::raw* row, int t, int L, bool vec, float v0, float v1) {
  if (vec && t + 2 <= L) {
    if constexpr (sizeof(typename Io::raw) == 4) {
      *reinterpret_cast<float2*>(row + t) = make_float2(v0, v1);
    } else {
      *reinterpret_cast<uint32_t*>(row + t) =
          static_cast<uint32_t>(Io::store(v0)) | (static_cast<uint32_t>(Io::store(v1)) << 16);
    }
  } else {
    if (t < L) row[t] = Io::store(v0);
    if (t + 1 < L) row[t + 1] = Io::store(v1);
  }
}

template <class Io>
__global__ void __launch_bounds__(kBfThreads, MAMBA_SS_BWD_FAST_MIN_BLOCKS) selective_scan_bwd_fast_kernel(const SelectiveScanParams p,
                                                                                 const BwdWorkspace ws) {
  using raw = typename Io::raw;
  extern __shared__ float4 smem_f4[];
  float* sB = reinterpret_cast<float*>(smem_f4);                      // (kBfChunk, 16)
  float* sC = sB + kBfChunk * 16;                                     // (kBfChunk, 16)
  float4* sE = reinterpret_cast<float4*>(sC + kBfChunk * 16);         // (kBfChunk, kBfChannels) dt, dt*u, dy, u
  float2* sF = reinterpret_cast<float2*>(sE + kBfChunk * kBfChannels);  // (kBfChunk, kBfChannels) softplus', dz factor
  float4* sRed = reinterpret_cast<float4*>(sF + kBfChunk * kBfChannels);  // (2, kBfRed, kBfChannels, 4) dB / dC quads
  const float4* sB4 = reinterpret_cast<const float4*>(sB);
  const float4* sC4 = reinterpret_cast<const float4*>(sC);

  constexpr int N = 16;
  const int L = p.seqlen;
  const int gs = p.dim / p.n_groups;
  const int tiles = (gs + kBfChannels - 1) / kBfChannels;
  const int b = blockIdx.y, g = blockIdx.x / tiles, tile = blockIdx.x % tiles;
  const int tid = threadIdx.x, lane = tid % 32;
  const size_t group_off = (static_cast<size_t>(b) * p.n_groups + g) * N * L;
  const raw* Bg = static_cast<const raw*>(p.B) + group_off;
  const raw* Cg = static_cast<const raw*>(p.C) + group_off;
  const bool vec_B = rows_vectorizable(p.B, L), vec_C = rows_vectorizable(p.C, L);
  const bool vec_u = rows_vectorizable(p.u, L), vec_dl = rows_vectorizable(p.delta, L);
  const bool vec_z = rows_vectorizable(p.z, L), vec_dout = rows_vectorizable(p.dout, L);
  const bool vec_du = rows_vectorizable(p.du, L), vec_ddl = rows_vectorizable(p.ddelta, L);
  const bool vec_dz = rows_vectorizable(p.dz, L);

  // Staging role: B/C state row sn at step offset soff; channel cs at step offsets s_off[0], s_off[1].
  const int sn = tid % 16, soff = (tid / 16) * kItems;
  const int cs = tid % 32;
  const bool s_active = tile * kBfChannels + cs < gs;
  const int ds = g * gs + (s_active ? tile * kBfChannels + cs : 0);
  const size_t s_row = (static_cast<size_t>(b) * p.dim + ds) * L;
  const float s_bias = (s_active && p.has_delta_bias) ? p.delta_bias[ds] : 0.f;
  const int s_off[2] = {(tid / 32) * kItems, (tid / 32) * kItems + kBfThreads / 32 * kItems};

  // Scan role: channel cl, states 4j .. 4j+3.
  const int cl = (tid / 32) * 8 + lane / 4, j = lane % 4;
  const bool l_active = tile * kBfChannels + cl < gs;
  const int dl = g * gs + (l_active ? tile * kBfChannels + cl : 0);
  const size_t bdl = static_cast<size_t>(b) * p.dim + dl;
  const size_t l_row = bdl * L;
  const float l_D = (l_active && p.has_D) ? p.D[dl] : 0.f;
  float An[4], A2[4], gin[4], dA[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    An[q] = l_active ? p.A[static_cast<size_t>(dl) * N + 4 * j + q] : 0.f;
    A2[q] = An[q] * kLog2e;
    // The adjoint entering h_{L-1} from the right: the gradient of last_state, if any.
    gin[q] = (l_active && p.dlast_state != nullptr) ? p.dlast_state[bdl * N + 4 * j + q] : 0.f;
    dA[q] = 0.f;
  }
  float dD_acc = 0.f, ddb_acc = 0.f;  // this lane's steps of channel cl

  // Reduction role (between barriers): output o = (matrix m, slot k, quad jq), channels 8*part .. 8*part+7.
  const int r_o = tid / 4, r_part = tid % 4;
  const int r_m = r_o / (kBfRed * 4), r_k = (r_o / 4) % kBfRed, r_jq = r_o % 4;

  const int n_ckpt = num_ckpts(L);
  for (int c = n_ckpt - 1; c >= 0; --c) {
    const int t0 = c * kBfChunk;
    __syncthreads();  // the previous chunk's readers are done with every buffer
    {
      float v[kItems];
      load_items<Io>(Bg + static_cast<size_t>(sn) * L, t0 + soff, L, vec_B, v);
#pragma unroll
      for (int i = 0; i < kItems; ++i) sB[(soff + i) * N + sn] = v[i];
      load_items<Io>(Cg + static_cast<size_t>(sn) * L, t0 + soff, L, vec_C, v);
#pragma unroll
      for (int i = 0; i < kItems; ++i) sC[(soff + i) * N + sn] = v[i];
    }
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      float u[kItems], dlt[kItems], dout[kItems], z[kItems];
      if (s_active) {
        load_items<Io>(static_cast<const raw*>(p.u) + s_row, t0 + s_off[k], L, vec_u, u);
        load_items<Io>(static_cast<const raw*>(p.delta) + s_row, t0 + s_off[k], L, vec_dl, dlt);
        load_items<Io>(static_cast<const raw*>(p.dout) + s_row, t0 + s_off[k], L, vec_dout, dout);
        if (p.has_z) load_items<Io>(static_cast<const raw*>(p.z) + s_row, t0 + s_off[k], L, vec_z, z);
      }
#pragma unroll
      for (int i = 0; i < kItems; ++i) {
        const int t = s_off[k] + i;
        float dt = 0.f, uu = 0.f, dy = 0.f, dsp = 0.f, dzf = 0.f;
        // Padded steps and inactive channels: dt = 0 and no output gradient, so the adjoint passes through and
        // nothing is accumulated.
        if (s_active && t0 + t < L) {
          const float x = dlt[i] + s_bias;
          dt = p.delta_softplus ? softplusf(x) : x;
          dsp = p.delta_softplus ? sigmoidf_fast(x) : 1.f;
          uu = u[i];
          dy = dout[i];
          if (p.has_z) {
            const float sg = sigmoidf_fast(z[i]);
            dy = dout[i] * z[i] * sg;
            dzf = dout[i] * sg * fmaf(z[i], 1.f - sg, 1.f);
          }
        }
        sE[t * kBfChannels + cs] = make_float4(dt, dt * uu, dy, uu);
        sF[t * kBfChannels + cs] = make_float2(dsp, dzf);
      }
    }
    __syncthreads();

    // Prepass: the states before steps 16, 32 and 48 of the chunk.
    float h0[4], hs1[4], hs2[4], hs3[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) h0[q] = l_active ? p.checkpoints[(bdl * n_ckpt + c) * N + 4 * j + q] : 0.f;
    {
      float h[4] = {h0[0], h0[1], h0[2], h0[3]};
#pragma unroll
      for (int s = 1; s < kBfChunk / kBfSub; ++s) {
#pragma unroll 4
        for (int i = 0; i < kBfSub; ++i) {
          const int t = (s - 1) * kBfSub + i;
          const float4 e = sE[t * kBfChannels + cl];
          const float4 bv = sB4[t * 4 + j];
          h[0] = fmaf(fast_exp2(e.x * A2[0]), h[0], e.y * bv.x);
          h[1] = fmaf(fast_exp2(e.x * A2[1]), h[1], e.y * bv.y);
          h[2] = fmaf(fast_exp2(e.x * A2[2]), h[2], e.y * bv.z);
          h[3] = fmaf(fast_exp2(e.x * A2[3]), h[3], e.y * bv.w);
        }
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          if (s == 1) hs1[q] = h[q];
          if (s == 2) hs2[q] = h[q];
          if (s == 3) hs3[q] = h[q];
        }
      }
    }

#pragma unroll 1
    for (int s = kBfChunk / kBfSub - 1; s >= 0; --s) {
      const int tb = s * kBfSub;  // first step of the sub-chunk within the chunk
      float hstart[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) hstart[q] = s == 3 ? hs3[q] : s == 2 ? hs2[q] : s == 1 ? hs1[q] : h0[q];

      // Recompute: H[i] = state after step tb + i; y = C . h over this lane's states, reduced below.
      float H[kBfSub][4];
      float y[2][2];  // this lane's two steps of each half: pre-gate output without D*u
      {
        float yp[kBfSub];
        float h[4] = {hstart[0], hstart[1], hstart[2], hstart[3]};
#pragma unroll
        for (int i = 0; i < kBfSub; ++i) {
          const int t = tb + i;
          const float4 e = sE[t * kBfChannels + cl];
          const float4 bv = sB4[t * 4 + j];
          h[0] = fmaf(fast_exp2(e.x * A2[0]), h[0], e.y * bv.x);
          h[1] = fmaf(fast_exp2(e.x * A2[1]), h[1], e.y * bv.y);
          h[2] = fmaf(fast_exp2(e.x * A2[2]), h[2], e.y * bv.z);
          h[3] = fmaf(fast_exp2(e.x * A2[3]), h[3], e.y * bv.w);
#pragma unroll
          for (int q = 0; q < 4; ++q) H[i][q] = h[q];
          if (p.has_z) {
            const float4 cv = sC4[t * 4 + j];
            yp[i] = fmaf(cv.w, h[3], fmaf(cv.z, h[2], fmaf(cv.y, h[1], cv.x * h[0])));
          }
        }
        if (p.has_z) {
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            float v[kBfHalf];
#pragma unroll
            for (int i = 0; i < kBfHalf; ++i) v[i] = yp[hf * kBfHalf + i];
            reduce_scatter8(v, j);
            y[hf][0] = v[0];
            y[hf][1] = v[1];
          }
        }
      }

      // Reverse walk, in two halves of kBfHalf steps (the s1/s2 reduce-scatter and the epilogue per half).
#pragma unroll
      for (int hf = 1; hf >= 0; --hf) {
        float s1v[kBfHalf], s2v[kBfHalf];
#pragma unroll
        for (int ii = kBfHalf - 1; ii >= 0; --ii) {
          const int i = hf * kBfHalf + ii;
          const int t = tb + i;
          const float4 e = sE[t * kBfChannels + cl];
          const float4 bv4 = sB4[t * 4 + j];
          const float4 cv4 = sC4[t * 4 + j];
          const float bv[4] = {bv4.x, bv4.y, bv4.z, bv4.w};
          const float cv[4] = {cv4.x, cv4.y, cv4.z, cv4.w};
          float s1 = 0.f, s2 = 0.f, dBq[4], dCq[4];
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const float hprev = i == 0 ? hstart[q] : H[i - 1][q];
            const float a = fast_exp2(e.x * A2[q]);
            const float gq = fmaf(cv[q], e.z, gin[q]);  // g_t = C_t*dy_t + a_{t+1}*g_{t+1}
            const float qv = gq * (a * hprev);
            dA[q] = fmaf(e.x, qv, dA[q]);
            s2 = fmaf(An[q], qv, s2);
            s1 = fmaf(gq, bv[q], s1);
            dBq[q] = gq * e.y;
            dCq[q] = H[i][q] * e.z;
            gin[q] = a * gq;
          }
          s1v[ii] = s1;
          s2v[ii] = s2;
          const int slot = i % kBfRed;
          sRed[(0 * kBfRed + slot) * kBfChannels * 4 + cl * 4 + j] = make_float4(dBq[0], dBq[1], dBq[2], dBq[3]);
          sRed[(1 * kBfRed + slot) * kBfChannels * 4 + cl * 4 + j] = make_float4(dCq[0], dCq[1], dCq[2], dCq[3]);
          if (slot == 0) {
            // Steps t .. t + kBfRed - 1 are complete: sum each (matrix, step, state) over the block's channels.
            __syncthreads();
            float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int ch = 0; ch < 8; ++ch) {
              const float4 v = sRed[(r_m * kBfRed + r_k) * kBfChannels * 4 + (r_part * 8 + ch) * 4 + r_jq];
              acc.x += v.x;
              acc.y += v.y;
              acc.z += v.z;
              acc.w += v.w;
            }
#pragma unroll
            for (int off = 1; off < 4; off <<= 1) {
              acc.x += __shfl_xor_sync(0xffffffffu, acc.x, off);
              acc.y += __shfl_xor_sync(0xffffffffu, acc.y, off);
              acc.z += __shfl_xor_sync(0xffffffffu, acc.z, off);
              acc.w += __shfl_xor_sync(0xffffffffu, acc.w, off);
            }
            // Each of the 4 lanes adds one state of the quad.
            const int tt = t0 + tb + hf * kBfHalf + (ii - slot) + r_k;
            const float val = r_part == 0 ? acc.x : r_part == 1 ? acc.y : r_part == 2 ? acc.z : acc.w;
            if (tt < L)
              atomicAdd((r_m == 0 ? ws.dB_acc : ws.dC_acc) + group_off + static_cast<size_t>(4 * r_jq + r_part) * L + tt,
                        val);
            __syncthreads();  // the slots are rewritten by the next steps
          }
        }
        reduce_scatter8(s1v, j);
        reduce_scatter8(s2v, j);
        // Epilogue for this lane's two steps of the half.
        const int te = tb + hf * kBfHalf + 4 * (j & 1) + 2 * (j >> 1);
        float du[2], ddl[2], dz[2];
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          const float4 e = sE[(te + k) * kBfChannels + cl];
          const float2 f = sF[(te + k) * kBfChannels + cl];
          du[k] = fmaf(e.x, s1v[k], l_D * e.z);
          ddl[k] = fmaf(e.w, s1v[k], s2v[k]) * f.x;
          dz[k] = p.has_z ? fmaf(l_D, e.w, y[hf][k]) * f.y : 0.f;
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
  }

  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 1);
  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 2);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 1);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 2);
  if (!l_active) return;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    ws.dA_part[bdl * N + 4 * j + q] = dA[q];
    if (p.dinitial_state != nullptr) p.dinitial_state[bdl * N + 4 * j + q] = gin[q];
  }
  if (j == 0) {
    ws.dD_part[bdl] = dD_acc;
    ws.ddb_part[bdl] = ddb_acc;
  }
}

template <DType kType>
void selective_scan_bwd_fast_launch(const SelectiveScanParams& p, const BwdWorkspace& ws, cudaStream_t stream) {
  auto kernel = selective_scan_bwd_fast_kernel<IO<kType>>;
  const size_t smem = bwd_fast_smem_bytes();
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
  const int gs = p.dim / p.n_groups;
  const dim3 grid(p.n_groups * ((gs + kBfChannels - 1) / kBfChannels), p.batch);
  kernel<<<grid, kBfThreads, smem, stream>>>(p, ws);
  e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_bwd_cuda: ") + cudaGetErrorString(e));
}

}  // namespace ss
}  // namespace mamba
