// Plain parameter structs passed from the N-API layer to the CPU kernels and the CUDA launchers.
// No napi.h, no CUDA headers: the same struct is filled once on the host and read by either backend.
// All tensors are contiguous, row-major; shapes are given next to each pointer.
#pragma once
#include <cstdint>
#include "dtype.h"

namespace mamba {

// Steps between float32 state checkpoints written by a forward that a backward will follow. 32 keeps the
// backward's recomputation window small enough for its staging buffers to leave room for 4-5 resident blocks
// per SM (16 fp32 values per (b, d) every 32 steps: 2 bytes per element-step, the size of a bf16 input).
// Checkpoint c holds the state *before* step c * kScanCheckpointChunk (so checkpoint 0 is the
// initial state, or zeros). Shared by CPU and CUDA so saved tensors are interchangeable.
constexpr int kScanCheckpointChunk = 32;

inline int scan_num_checkpoints(int seqlen) {
  return seqlen <= 0 ? 0 : (seqlen + kScanCheckpointChunk - 1) / kScanCheckpointChunk;
}

// Selective scan, mamba_ssm semantics, per (b, d):
//   dt_t  = delta[b,d,t] + delta_bias[d]          (if has_delta_bias)
//   dt_t  = softplus(dt_t)                          (if delta_softplus; softplus(x) = x > 20 ? x : log1p(exp(x)))
//   h_t,n = exp(dt_t * A[d,n]) * h_{t-1},n + dt_t * B_t,n * u_t      (h_{-1} = initial_state or 0)
//   y_t   = sum_n C_t,n * h_t,n + D[d] * u_t        (if has_D)
//   out_t = y_t * silu(z_t)                         (if has_z)
// B_t,n is B[b, g, n, t] with g = d / (dim / n_groups) when B is variable, else B[d, n]. Same for C.
struct SelectiveScanParams {
  int batch = 0, dim = 0, seqlen = 0, dstate = 0;
  int n_groups = 1;            // groups of channels sharing one B/C row; dim % n_groups == 0
  DType dtype = DType::Float32;  // dtype of u, delta, z, B, C, out and of their gradients
  bool is_variable_B = true, is_variable_C = true;
  bool delta_softplus = false;
  bool has_D = false, has_z = false, has_delta_bias = false;
  bool has_initial_state = false;
  bool deterministic = false;  // backward: no order-dependent float atomics
  // CUDA only, for tests and tuning; the CPU kernel and the N-API layer ignore it (0). 0: automatic. k > 0 forces
  // the dstate-16 fast kernels (variable B and C; the backward's only when not deterministic) to split L into
  // about k time segments processed in parallel (whole 32-step checkpoint intervals each, so the count used may
  // be lower; 1 forces the unsplit fast kernels even for small batch * dim). Results differ from the unsplit
  // kernels only by fp32 rounding. Workspace sizes depend on it: query them with the same params.
  int scan_segments = 0;
  // CUDA only, for tests and tuning, like scan_segments: how a split fast backward finds the adjoint entering each
  // segment. 0: automatic; 1: a summary pass over segments 1 .. K-1 first; 2: chained, each segment's blocks wait
  // for the blocks of the segment after it (no extra pass).
  int scan_bwd_chain = 0;

  // ---- forward inputs ----
  const void* u = nullptr;            // (batch, dim, seqlen)            dtype
  const void* delta = nullptr;        // (batch, dim, seqlen)            dtype
  const float* A = nullptr;           // (dim, dstate)                   float32
  const void* B = nullptr;            // (batch, n_groups, dstate, seqlen) dtype, or (dim, dstate) if !is_variable_B
  const void* C = nullptr;            // same layout rules as B
  const float* D = nullptr;           // (dim)                           float32, if has_D
  const void* z = nullptr;            // (batch, dim, seqlen)            dtype, if has_z
  const float* delta_bias = nullptr;  // (dim)                           float32, if has_delta_bias
  const float* initial_state = nullptr;  // (batch, dim, dstate)        float32, if has_initial_state

  // ---- forward outputs ----
  void* out = nullptr;                // (batch, dim, seqlen)            dtype (gated by silu(z) if has_z)
  float* last_state = nullptr;        // (batch, dim, dstate)            float32, optional (nullptr: not written)
  float* checkpoints = nullptr;       // (batch, dim, scan_num_checkpoints(seqlen), dstate) float32, optional

  // ---- backward inputs (forward inputs above + checkpoints are read again) ----
  const void* dout = nullptr;         // (batch, dim, seqlen)            dtype
  const float* dlast_state = nullptr; // (batch, dim, dstate)            float32, optional gradient of last_state

  // ---- backward outputs: du, ddelta, dA, dB, dC always; dD / dz / ddelta_bias when their flag is set;
  //      dinitial_state optional (nullptr: not wanted) ----
  void* du = nullptr;                 // (batch, dim, seqlen)            dtype
  void* ddelta = nullptr;             // (batch, dim, seqlen)            dtype
  float* dA = nullptr;                // (dim, dstate)                   float32
  void* dB = nullptr;                 // like B, dtype
  void* dC = nullptr;                 // like C, dtype
  float* dD = nullptr;                // (dim)                           float32, if has_D
  void* dz = nullptr;                 // (batch, dim, seqlen)            dtype, if has_z
  float* ddelta_bias = nullptr;       // (dim)                           float32, if has_delta_bias
  float* dinitial_state = nullptr;    // (batch, dim, dstate)            float32
};

}  // namespace mamba
