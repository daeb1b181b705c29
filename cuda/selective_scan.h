// Host entry points of the CUDA selective scan (mamba_ssm selective_scan_fn semantics, see native/params.h).
// Plain C++ so the N-API layer can include it without CUDA headers; `stream` is a cudaStream_t.
// Shapes: u/delta/z/out (batch, dim, L); A (dim, dstate) fp32; B/C (batch, n_groups, dstate, L) or (dim, dstate);
// checkpoints (batch, dim, scan_num_checkpoints(L), dstate) fp32. Reference: cuda/bench/selective_scan_lab.cu.
// The launchers never synchronize the device and throw std::runtime_error on launch errors.
#pragma once
#include <cstddef>
#include "../native/params.h"

namespace mamba {

// Device bytes the forward needs as scratch: 0 unless it splits L into time segments (dstate 16 with variable
// B/C when batch * dim is too small to fill the GPU, or p.scan_segments > 1); depends on p and the current device.
size_t selective_scan_fwd_workspace_bytes(const SelectiveScanParams& p);

// Writes out, and last_state / checkpoints when those pointers are non-null. `workspace`: at least
// selective_scan_fwd_workspace_bytes(p) device bytes (uninitialised is fine), or nullptr when that is 0; with
// nullptr the forward never splits L (and p.scan_segments > 1 that would split throws).
void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* workspace, void* stream);

// The forward kernel the automatic plan picks for p ("time-lane", "time-split", "sequential" or "general"); for
// benchmarks and tests.
const char* selective_scan_fwd_plan(const SelectiveScanParams& p);

// Device bytes the backward needs as scratch (partial sums); the backward initialises what it uses.
size_t selective_scan_bwd_workspace_bytes(const SelectiveScanParams& p);

// Recomputes states from p.checkpoints (written by the forward) and writes every gradient in p.
void selective_scan_bwd_cuda(const SelectiveScanParams& p, void* workspace, void* stream);

}  // namespace mamba
