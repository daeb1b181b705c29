// The CUDA side of launch.h for builds without nvcc (binding.gyp, MAMBA_NO_CUDA=1): no device is
// ever reported, and any CUDA request is refused with a DeviceError saying how to get CUDA support.
#include "../cuda/launch.h"
#include "../cuda/selective_scan.h"
#include "error.h"

namespace mamba {
namespace cuda {
[[noreturn]] void no_cuda_error(const char* fn) {
  fail(ErrorKind::Device, fn, "device",
       std::string(fn) + ": this build of mamba-node has no CUDA support (rebuild with the CUDA toolkit on PATH "
                         "and without MAMBA_NO_CUDA=1: npm run build:addon)");
}

bool compiled_with_cuda() { return false; }
int device_count() { return 0; }
DeviceInfo device_info(int) { no_cuda_error("devices"); }
void* stream() { no_cuda_error("cuda"); }
void synchronize() {}
void check_last(const char*) {}
std::vector<float> time_events(int, const std::function<void(int)>&) { no_cuda_error("cudaTime"); }
void* alloc(size_t, const char* fn) { no_cuda_error(fn); }
void free(void*) {}
void free_deferred(void*) {}
AllocatorStats allocator_stats() { return AllocatorStats{}; }
void reset_peak_stats() {}
void empty_cache() {}
void release_all_at_exit() {}
void copy_h2d(void*, const void*, size_t) { no_cuda_error("to"); }
void copy_d2d(void*, const void*, size_t) { no_cuda_error("to"); }
void copy_d2h(void*, const void*, size_t) { no_cuda_error("to"); }
HostCopy host_copy_start(const void*, size_t) { no_cuda_error("data"); }
void host_copy_wait(const HostCopy&) {}
void host_copy_finish(HostCopy&) {}
void fill_cuda(void*, int64_t, DType, double) { no_cuda_error("fill"); }
void arange_cuda(void*, int64_t, DType, double, double) { no_cuda_error("arange"); }
void rand_cuda(void*, int64_t, DType, uint64_t, double, double) { no_cuda_error("rand"); }
void randn_cuda(void*, int64_t, DType, uint64_t, double, double) { no_cuda_error("randn"); }
void cast_cuda(const void*, DType, void*, DType, int64_t) { no_cuda_error("cast"); }

}  // namespace cuda

size_t selective_scan_fwd_workspace_bytes(const SelectiveScanParams&) { return 0; }
const char* selective_scan_fwd_plan(const SelectiveScanParams&) { return "none"; }
void selective_scan_fwd_cuda(const SelectiveScanParams&, void*, void*) { cuda::no_cuda_error("selectiveScan"); }
size_t selective_scan_bwd_workspace_bytes(const SelectiveScanParams&) { return 0; }
void selective_scan_bwd_cuda(const SelectiveScanParams&, void*, void*) { cuda::no_cuda_error("selectiveScanBackward"); }

}  // namespace mamba
