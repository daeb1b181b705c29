// Public selective-scan entry points (cuda/selective_scan.h): validate the few things the kernels rely on and
// dispatch on p.dtype to the per-dtype instantiations in selective_scan_{fwd,bwd}_<dtype>.cu.
#include <stdexcept>
#include <string>
#include <cuda_runtime.h>
#include "selective_scan.h"
#include "selective_scan_bwd.cuh"

namespace mamba {

void selective_scan_fwd_fp32(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);
void selective_scan_fwd_fp16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);
void selective_scan_fwd_bf16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);
size_t selective_scan_fwd_workspace_fp32(const SelectiveScanParams& p);
size_t selective_scan_fwd_workspace_fp16(const SelectiveScanParams& p);
size_t selective_scan_fwd_workspace_bf16(const SelectiveScanParams& p);
const char* selective_scan_fwd_plan_fp32(const SelectiveScanParams& p);
const char* selective_scan_fwd_plan_fp16(const SelectiveScanParams& p);
const char* selective_scan_fwd_plan_bf16(const SelectiveScanParams& p);
size_t selective_scan_bwd_workspace_fp32(const SelectiveScanParams& p);
size_t selective_scan_bwd_workspace_fp16(const SelectiveScanParams& p);
size_t selective_scan_bwd_workspace_bf16(const SelectiveScanParams& p);
void selective_scan_bwd_fp32(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);
void selective_scan_bwd_fp16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);
void selective_scan_bwd_bf16(const SelectiveScanParams& p, void* workspace, cudaStream_t stream);

namespace {

void check_shape(const SelectiveScanParams& p, const char* who) {
  if (p.batch <= 0 || p.dim <= 0 || p.seqlen <= 0)
    throw std::runtime_error(std::string(who) + ": batch, dim and seqlen must be positive");
  if (p.dstate < 1 || p.dstate > 256) throw std::runtime_error(std::string(who) + ": dstate must be in [1, 256]");
  if (p.n_groups < 1 || p.dim % p.n_groups != 0)
    throw std::runtime_error(std::string(who) + ": n_groups must divide dim");
  if (p.batch > 65535) throw std::runtime_error(std::string(who) + ": batch must be at most 65535");
}

}  // namespace

size_t selective_scan_fwd_workspace_bytes(const SelectiveScanParams& p) {
  check_shape(p, "selective_scan_fwd_workspace_bytes");
  switch (p.dtype) {
    case DType::Float32: return selective_scan_fwd_workspace_fp32(p);
    case DType::Float16: return selective_scan_fwd_workspace_fp16(p);
    case DType::BFloat16: return selective_scan_fwd_workspace_bf16(p);
    default: throw std::runtime_error("selective_scan_fwd_workspace_bytes: unsupported dtype");
  }
}

const char* selective_scan_fwd_plan(const SelectiveScanParams& p) {
  check_shape(p, "selective_scan_fwd_plan");
  switch (p.dtype) {
    case DType::Float32: return selective_scan_fwd_plan_fp32(p);
    case DType::Float16: return selective_scan_fwd_plan_fp16(p);
    case DType::BFloat16: return selective_scan_fwd_plan_bf16(p);
    default: throw std::runtime_error("selective_scan_fwd_plan: unsupported dtype");
  }
}

void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* workspace, void* stream) {
  check_shape(p, "selective_scan_fwd_cuda");
  if (p.scan_segments < 0) throw std::runtime_error("selective_scan_fwd_cuda: scan_segments must be >= 0");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: return selective_scan_fwd_fp32(p, workspace, s);
    case DType::Float16: return selective_scan_fwd_fp16(p, workspace, s);
    case DType::BFloat16: return selective_scan_fwd_bf16(p, workspace, s);
    default: throw std::runtime_error("selective_scan_fwd_cuda: unsupported dtype");
  }
}

size_t selective_scan_bwd_workspace_bytes(const SelectiveScanParams& p) {
  check_shape(p, "selective_scan_bwd_workspace_bytes");
  switch (p.dtype) {
    case DType::Float32: return selective_scan_bwd_workspace_fp32(p);
    case DType::Float16: return selective_scan_bwd_workspace_fp16(p);
    case DType::BFloat16: return selective_scan_bwd_workspace_bf16(p);
    default: throw std::runtime_error("selective_scan_bwd_workspace_bytes: unsupported dtype");
  }
}

void selective_scan_bwd_cuda(const SelectiveScanParams& p, void* workspace, void* stream) {
  check_shape(p, "selective_scan_bwd_cuda");
  if (p.checkpoints == nullptr)
    throw std::runtime_error("selective_scan_bwd_cuda: checkpoints from the forward are required");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: return selective_scan_bwd_fp32(p, workspace, s);
    case DType::Float16: return selective_scan_bwd_fp16(p, workspace, s);
    case DType::BFloat16: return selective_scan_bwd_bf16(p, workspace, s);
    default: throw std::runtime_error("selective_scan_bwd_cuda: unsupported dtype");
  }
}

}  // namespace mamba
