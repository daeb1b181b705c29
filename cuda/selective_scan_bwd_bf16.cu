// Selective-scan backward for bf16 activations: only the instantiation, so the dtypes compile in parallel.
#include "selective_scan_bwd.cuh"

namespace mamba {
void selective_scan_bwd_bf16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  ss::selective_scan_bwd_launch<DType::BFloat16>(p, workspace, stream);
}
size_t selective_scan_bwd_workspace_bf16(const SelectiveScanParams& p) {
  return ss::selective_scan_bwd_workspace<DType::BFloat16>(p);
}
}  // namespace mamba
