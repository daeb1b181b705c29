// Caching device allocator on the library stream (declarations in launch.h).
// Sizes round up to classes 25% apart (minimum 512 B), so a freed block serves any later request of
// its class. Every kernel runs on the one library stream, so a block freed by the host may be handed
// out again at once: the kernels that used it are ahead of any new user in stream order (the scheme
// of PyTorch's caching allocator, restricted to one stream). Frees that come from GC finalizers are
// only queued; the JS thread drains the queue at its next allocation, so a finalizer never makes a
// CUDA call. When cudaMalloc fails, the cache is returned to the driver and the call retried once,
// then OutOfMemory is thrown; the failed cudaMalloc leaves no sticky error, so the next call works.
// Peaks of allocated and reserved bytes are kept as torch.cuda.max_memory_allocated / max_memory_reserved
// do; reset_peak_stats() sets them back to the current values.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace cuda {
namespace {

struct Allocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> cached;  // class size -> free blocks
  std::unordered_map<void*, size_t> in_use;               // block -> class size
  std::vector<void*> pending;                             // queued by finalizers
  size_t allocated = 0, reserved = 0, device_allocs = 0;
  size_t peak_allocated = 0, peak_reserved = 0;
};

Allocator& A() {
  static Allocator* a = new Allocator();  // never destroyed: finalizers may run during teardown
  return *a;
}

size_t size_class(size_t bytes) {
  if (bytes <= 512) return 512;
  size_t p = 512;
  while (p * 2 < bytes) p <<= 1;  // now p < bytes <= 2p
  for (size_t j = 5; j <= 7; ++j) {  // classes p*5/4, p*6/4, p*7/4, then 2p
    if (p / 4 * j >= bytes) return p / 4 * j;
  }
  return p * 2;
}

void release_locked(Allocator& a, void* ptr) {
  auto it = a.in_use.find(ptr);
  if (it == a.in_use.end()) return;  // not ours (or already released): ignore rather than corrupt the cache
  a.allocated -= it->second;
  a.cached[it->second].push_back(ptr);
  a.in_use.erase(it);
}

void drain_pending_locked(Allocator& a) {
  for (void* p : a.pending) release_locked(a, p);
  a.pending.clear();
}

void free_cached_locked(Allocator& a) {
  for (auto& kv : a.cached) {
    for (void* p : kv.second) {
      cudaFree(p);
      a.reserved -= kv.first;
    }
  }
  a.cached.clear();
}

}  // namespace

void* alloc(size_t bytes, const char* fn) {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  drain_pending_locked(a);
  size_t cls = size_class(bytes == 0 ? 1 : bytes);
  auto it = a.cached.find(cls);
  if (it != a.cached.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    a.in_use[p] = cls;
    a.allocated += cls;
    if (a.allocated > a.peak_allocated) a.peak_allocated = a.allocated;
    return p;
  }
  stream();  // fails with DeviceError when there is no device
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, cls);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    // Pending work may still use cached blocks: wait for it before handing them back to the driver.
    cudaStreamSynchronize(static_cast<cudaStream_t>(stream()));
    free_cached_locked(a);
    e = cudaMalloc(&p, cls);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      cudaGetLastError();
      fail(ErrorKind::OutOfMemory, fn, "",
           std::string(fn) + ": CUDA out of memory allocating " + std::to_string(bytes) + " bytes (" +
               std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free on the device, " +
               std::to_string(a.allocated) + " held by live tensors)");
    }
    throw_cuda(e, fn);
  }
  ++a.device_allocs;
  a.reserved += cls;
  a.allocated += cls;
  if (a.allocated > a.peak_allocated) a.peak_allocated = a.allocated;
  if (a.reserved > a.peak_reserved) a.peak_reserved = a.reserved;
  a.in_use[p] = cls;
  return p;
}

void free(void* ptr) {
  if (!ptr) return;
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  release_locked(a, ptr);
}

void free_deferred(void* ptr) {
  if (!ptr) return;
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  a.pending.push_back(ptr);
}

AllocatorStats allocator_stats() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  drain_pending_locked(a);
  AllocatorStats s;
  s.allocated_bytes = a.allocated;
  s.reserved_bytes = a.reserved;
  s.num_device_allocs = a.device_allocs;
  s.num_pending_frees = a.pending.size();
  s.peak_allocated_bytes = a.peak_allocated;
  s.peak_reserved_bytes = a.peak_reserved;
  return s;
}

void reset_peak_stats() {
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  drain_pending_locked(a);  // blocks the GC already let go of do not count as current
  a.peak_allocated = a.allocated;
  a.peak_reserved = a.reserved;
}

void empty_cache() {
  if (device_count() == 0) return;
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  drain_pending_locked(a);
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream())), "emptyCache");
  free_cached_locked(a);
}

void release_all_at_exit() {
  if (device_count() == 0) return;
  Allocator& a = A();
  std::lock_guard<std::mutex> lock(a.mu);
  drain_pending_locked(a);
  // During process exit the runtime may already be unloading (cudaErrorCudartUnloading): ignore errors.
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream()));
  free_cached_locked(a);
  cudaGetLastError();
}

}  // namespace cuda
}  // namespace mamba
