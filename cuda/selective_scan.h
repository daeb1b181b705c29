// Host entry points of the CUDA selective scan (mamba_ssm selective_scan_fn semantics, see native/params.h).
// Plain C++ so the N-API layer can include it without CUDA headers; `stream` is a cudaStream_t.
// Shapes: u/delta/z/out (batch, dim, L); A (dim, dstate) fp32; B/C (batch, n_groups, dstate, L) or (dim, dstate);
// checkpoints (batch, dim, scan_num_checkpoints(L), dstate) fp32. Reference: cuda/bench/selective_scan_lab.cu.
// The launchers never synchronize the device and throw std::runtime_error on launch errors.
#pragma once
#include <cstddef>
#include "../native/params.h"

namespace mamba {

// Writes out, and last_state / checkpoints when those pointers are non-null.
void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* stream);

// Device bytes the backward needs as scratch (partial sums); the backward initialises what it uses.
size_t selective_scan_bwd_workspace_bytes(const SelectiveScanParams& p);

// Recomputes states from p.checkpoints (written by the forward) and writes every gradient in p.
void selective_scan_bwd_cuda(const SelectiveScanParams& p, void* workspace, void* stream);

}  // namespace mamba
