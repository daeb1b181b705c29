// Selective-scan forward for fp16 activations: only the instantiation, so the dtypes compile in parallel.
#include "selective_scan_fwd.cuh"

namespace mamba {
void selective_scan_fwd_fp16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream) {
  ss::selective_scan_fwd_launch<DType::Float16>(p, workspace, stream);
}
size_t selective_scan_fwd_workspace_fp16(const SelectiveScanParams& p) {
  return ss::selective_scan_fwd_workspace<DType::Float16>(p);
}
const char* selective_scan_fwd_plan_fp16(const SelectiveScanParams& p) {
  return ss::selective_scan_fwd_plan_name<DType::Float16>(p);
}
}  // namespace mamba
