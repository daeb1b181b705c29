// The CUDA side of launch.h for builds without nvcc (binding.gyp, MAMBA_NO_CUDA=1): no device is
// ever reported, and any CUDA request is refused with a DeviceError saying how to get CUDA support.
#include "../cuda/launch.h"
#include "error.h"

namespace mamba {
namespace cuda {
namespace {

[[noreturn]] void no_cuda(const char* fn) {
  fail(ErrorKind::Device, fn, "device",
       std::string(fn) + ": this build of mamba-node has no CUDA support (rebuild with the CUDA toolkit on PATH "
                         "and without MAMBA_NO_CUDA=1: npm run build:addon)");
}

}  // namespace

bool compiled_with_cuda() { return false; }
int device_count() { return 0; }
DeviceInfo device_info(int) { no_cuda("devices"); }
void* stream() { no_cuda("cuda"); }
void synchronize() {}
void check_last(const char*) {}
void* alloc(size_t, const char* fn) { no_cuda(fn); }
void free(void*) {}
void free_deferred(void*) {}
AllocatorStats allocator_stats() { return AllocatorStats{}; }
void empty_cache() {}
void release_all_at_exit() {}
void copy_h2d(void*, const void*, size_t) { no_cuda("to"); }
void copy_d2d(void*, const void*, size_t) { no_cuda("to"); }
void copy_d2h(void*, const void*, size_t) { no_cuda("to"); }
HostCopy host_copy_start(const void*, size_t) { no_cuda("data"); }
void host_copy_wait(const HostCopy&) {}
void host_copy_finish(HostCopy&) {}
void fill_cuda(void*, int64_t, DType, double) { no_cuda("fill"); }
void arange_cuda(void*, int64_t, DType, double, double) { no_cuda("arange"); }
void rand_cuda(void*, int64_t, DType, uint64_t, double, double) { no_cuda("rand"); }
void randn_cuda(void*, int64_t, DType, uint64_t, double, double) { no_cuda("randn"); }
void cast_cuda(const void*, DType, void*, DType, int64_t) { no_cuda("cast"); }

}  // namespace cuda
}  // namespace mamba
