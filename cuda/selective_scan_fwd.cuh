// Selective-scan forward kernel and its launch template (instantiated per dtype in selective_scan_fwd_<dtype>.cu).
// Inputs/outputs and semantics: native/params.h. Per (b, d): out (batch, dim, L) = (C.h + D*u) * silu(z), with
// fp32 state h carried across chunks on chip; checkpoints (batch, dim, n_ckpt, dstate) fp32 hold the state
// before each kChunk-step chunk, last_state (batch, dim, dstate) the state after step L-1.
//
// Work split (see selective_scan_common.cuh): warp = channel, lane = kItems consecutive steps, states walked one
// after another. Per state a lane runs its steps sequentially from a zero state while keeping the running decay
// product, the warp combines the 32 lane maps with a shuffle scan (no block sync), and each step's state is then
// h_local + decay_product * h_in. B/C rows are staged in shared memory once per block and shared by kWarps channels.
#pragma once
#include <stdexcept>
#include <string>
#include "selective_scan_common.cuh"

namespace mamba {
namespace ss {

// Dynamic shared memory of the forward (floats): B and C slabs, the per-warp partial outputs (kWarps, kChunk)
// when kSplit > 1, then per-warp state carries, A*log2e and the time-invariant B/C values, each (kWarps, dstate).
inline size_t fwd_smem_bytes(int dstate, int split) {
  return sizeof(float) *
         (2 * kSlab * kChunk + (split > 1 ? kWarps * kChunk : 0) + 4 * kWarps * static_cast<size_t>(dstate));
}

template <class Io, int kSplit>
__global__ void __launch_bounds__(kThreads, MAMBA_SS_FWD_MIN_BLOCKS) selective_scan_fwd_kernel(const SelectiveScanParams p) {
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

  const ChannelTile<kSplit> ct(p);
  const size_t bd = static_cast<size_t>(ct.b) * p.dim + ct.d;
  const size_t row = bd * L;
  const int n_ckpt = num_chunks(L);

  for (int n = lane; n < N; n += 32) {
    sCarry[n] = (ct.active && p.has_initial_state) ? p.initial_state[bd * N + n] : 0.f;
    sA2[n] = ct.active ? p.A[static_cast<size_t>(ct.d) * N + n] * kLog2e : 0.f;
    sBi[n] = (ct.active && !p.is_variable_B) ? Io::load(static_cast<const raw*>(p.B)[static_cast<size_t>(ct.d) * N + n]) : 0.f;
    sCi[n] = (ct.active && !p.is_variable_C) ? Io::load(static_cast<const raw*>(p.C)[static_cast<size_t>(ct.d) * N + n]) : 0.f;
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

  for (int c = 0; c < n_ckpt; ++c) {
    const int c0 = c * kChunk;
    const int t0 = c0 + lane * kItems;
    __syncwarp();  // carries written by lane 0 in the previous chunk are visible to all lanes
    if (p.checkpoints != nullptr && ct.active)
      for (int n = lane * kSplit + ct.part; n < N; n += 32 * kSplit) p.checkpoints[(bd * n_ckpt + c) * N + n] = sCarry[n];

    float u[kItems], dt[kItems], dtu[kItems], y[kItems];
    if (ct.active) {
      load_items<Io>(u_row, t0, L, vec_u, u);
      load_items<Io>(dl_row, t0, L, vec_dl, dt);
    } else {
#pragma unroll
      for (int i = 0; i < kItems; ++i) u[i] = dt[i] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      float x = dt[i] + bias;
      if (p.delta_softplus) x = softplusf(x);
      // Steps past L (and inactive channels) get dt = 0: decay 1, no input, so the state passes through.
      dt[i] = (ct.active && t0 + i < L) ? x : 0.f;
      dtu[i] = dt[i] * u[i];
      y[i] = 0.f;
    }

    for (int s0 = 0; s0 < N; s0 += kSlab) {
      const int ns = min(kSlab, N - s0);
      __syncthreads();  // every warp is done reading the previous slab
      if (p.is_variable_B) stage_slab<Io>(sB, Bg, s0, ns, c0, L, vec_B);
      if (p.is_variable_C) stage_slab<Io>(sC, Cg, s0, ns, c0, L, vec_C);
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

template <DType kType, int kSplit>
void selective_scan_fwd_launch_split(const SelectiveScanParams& p, cudaStream_t stream) {
  auto kernel = selective_scan_fwd_kernel<IO<kType>, kSplit>;
  const size_t smem = fwd_smem_bytes(p.dstate, kSplit);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_fwd_cuda: ") + cudaGetErrorString(e));
  }
  const dim3 grid(p.n_groups * tiles_per_group(p, kSplit), p.batch);
  kernel<<<grid, kThreads, smem, stream>>>(p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("selective_scan_fwd_cuda: ") + cudaGetErrorString(e));
}

template <DType kType>
void selective_scan_fwd_launch(const SelectiveScanParams& p, cudaStream_t stream) {
  switch (choose_split(p)) {
    case 1: return selective_scan_fwd_launch_split<kType, 1>(p, stream);
    case 2: return selective_scan_fwd_launch_split<kType, 2>(p, stream);
    default: return selective_scan_fwd_launch_split<kType, 4>(p, stream);
  }
}

}  // namespace ss
}  // namespace mamba
