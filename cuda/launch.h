// Plain C++ declarations of everything the N-API layer calls on the CUDA side: device queries, the
// library stream, the caching allocator, copies and the kernel launchers. No CUDA headers, so the
// N-API layer compiles with any C++ compiler. Built from cuda/*.cu when nvcc is found; otherwise
// native/no_cuda.cc provides the same functions, reporting no device and refusing CUDA work with a
// DeviceError. Every function throws mamba::Error (native/error.h) on failure; none aborts.
// All work is enqueued on one library stream (stream()), so stream order is program order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../native/dtype.h"

namespace mamba {
namespace cuda {

// ---- runtime (cuda/runtime.cu) ----
bool compiled_with_cuda();
int device_count();  // 0 when there is no driver or no device; never throws
struct DeviceInfo {
  std::string name;
  size_t total_memory = 0;
  int major = 0, minor = 0;
  int multiprocessors = 0;
};
DeviceInfo device_info(int index);
void* stream();        // the library stream (a cudaStream_t), created on first use
void synchronize();    // waits for the library stream
void check_last(const char* what);  // throws DeviceError if the last launch failed
// Runs body(i) for i in [0, n) with a CUDA event recorded on the library stream before and after each
// call; returns each call's device time in milliseconds (for benchmarks).
std::vector<float> time_events(int n, const std::function<void(int)>& body);

// ---- caching allocator (cuda/allocator.cu) ----
// Blocks are cached by size class and reused in stream order, so no cudaMalloc per op.
void* alloc(size_t bytes, const char* fn);  // throws OutOfMemory when the device is full even after emptying the cache
void free(void* ptr);                       // back to the cache (the stream orders reuse after pending work)
void free_deferred(void* ptr);              // from GC finalizers: only queued; released by the next alloc/stats call
struct AllocatorStats {
  size_t allocated_bytes = 0;  // in tensors
  size_t reserved_bytes = 0;   // allocated + cached, i.e. what cudaMalloc holds
  size_t num_device_allocs = 0;  // cudaMalloc calls so far
  size_t num_pending_frees = 0;
  size_t peak_allocated_bytes = 0;  // highest allocated_bytes since start or the last reset_peak_stats()
  size_t peak_reserved_bytes = 0;   // highest reserved_bytes since then
};
AllocatorStats allocator_stats();
void reset_peak_stats();  // peaks := current allocated / reserved bytes (after draining queued frees)
void empty_cache();  // synchronizes, then returns every cached block to the driver
void release_all_at_exit();  // addon teardown: frees what the cache holds, tolerating a driver that is shutting down

// ---- copies ----
void copy_h2d(void* dst, const void* src, size_t bytes);  // returns once src may be reused
void copy_d2d(void* dst, const void* src, size_t bytes);  // enqueued
void copy_d2h(void* dst, const void* src, size_t bytes);  // waits for the stream
// Asynchronous read-back: start() enqueues the copy into a pinned buffer on the JS thread (stream
// order), wait() may run on a worker thread, finish() frees the buffer.
struct HostCopy {
  void* host = nullptr;
  void* event = nullptr;
  size_t bytes = 0;
};
HostCopy host_copy_start(const void* src, size_t bytes);
void host_copy_wait(const HostCopy& c);
void host_copy_finish(HostCopy& c);

// ---- elementwise creation and casts (cuda/creation.cu, cuda/cast.cu); n elements, contiguous ----
void fill_cuda(void* dst, int64_t n, DType dt, double value);
void arange_cuda(void* dst, int64_t n, DType dt, double start, double step);
void rand_cuda(void* dst, int64_t n, DType dt, uint64_t seed, double lo, double hi);
void randn_cuda(void* dst, int64_t n, DType dt, uint64_t seed, double mean, double stddev);
void cast_cuda(const void* src, DType st, void* dst, DType dt, int64_t n);

}  // namespace cuda
}  // namespace mamba
