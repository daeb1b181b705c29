// CPU selective scan (mamba_ssm selective_scan_fn semantics), forward and backward, over SelectiveScanParams
// (native/params.h holds the math and every shape: u/delta/z/out (batch, dim, seqlen); A (dim, dstate);
// B/C (batch, n_groups, dstate, seqlen) or (dim, dstate); states (batch, dim, dstate) float32).
// The float64 references are in test/native/selective_scan_cpu_test.cc (C++) and test/reference/selective_scan.ts.
// Both entry points throw std::invalid_argument on inconsistent params and never abort.
#pragma once
#include "../params.h"

namespace mamba {

// Writes p.out, and p.last_state / p.checkpoints when they are non-null.
void selective_scan_fwd_cpu(const SelectiveScanParams& p);

// Writes du, ddelta, dA, dB, dC (and dD, dz, ddelta_bias, dinitial_state as flagged). Reads p.checkpoints when
// non-null, else recomputes them per row. The result is bitwise independent of the thread count.
void selective_scan_bwd_cpu(const SelectiveScanParams& p);

}  // namespace mamba
