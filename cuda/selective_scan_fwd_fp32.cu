// Selective-scan forward for fp32 activations: only the instantiation, so the dtypes compile in parallel.
#include "selective_scan_fwd.cuh"

namespace mamba {
void selective_scan_fwd_fp32(const SelectiveScanParams& p, cudaStream_t stream) {
  ss::selective_scan_fwd_launch<DType::Float32>(p, stream);
}
}  // namespace mamba
