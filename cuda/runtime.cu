// Device queries, the library stream and plain copies (declarations in launch.h).
#include <mutex>

#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace cuda {

bool compiled_with_cuda() { return true; }

int device_count() {
  // cudaGetDeviceCount fails with cudaErrorNoDevice / cudaErrorInsufficientDriver on machines without
  // a GPU or driver; that is the normal "no CUDA here" answer, not an error. Clear it so it is not
  // reported by a later cudaGetLastError.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

DeviceInfo device_info(int index) {
  if (index < 0 || index >= device_count())
    fail(ErrorKind::Device, "devices", "index", "no CUDA device " + std::to_string(index));
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, index), "devices");
  DeviceInfo info;
  info.name = prop.name;
  info.total_memory = prop.totalGlobalMem;
  info.major = prop.major;
  info.minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  return info;
}

void* stream() {
  static cudaStream_t s = nullptr;
  static std::once_flag once;
  static cudaError_t err = cudaSuccess;
  if (device_count() == 0) fail(ErrorKind::Device, "cuda", "device", "no CUDA device is available");
  std::call_once(once, [] { err = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); });
  if (err != cudaSuccess) throw_cuda(err, "cudaStreamCreate");
  return s;
}

void synchronize() { check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream())), "synchronize"); }

void check_last(const char* what) { check(cudaGetLastError(), what); }

std::vector<float> time_events(int n, const std::function<void(int)>& body) {
  cudaStream_t s = static_cast<cudaStream_t>(stream());
  std::vector<cudaEvent_t> ev(static_cast<size_t>(n) + 1, nullptr);
  std::vector<float> ms(static_cast<size_t>(n), 0.f);
  auto destroy = [&] {
    for (cudaEvent_t e : ev)
      if (e) cudaEventDestroy(e);
  };
  try {
    for (auto& e : ev) check(cudaEventCreate(&e), "cudaTime");
    check(cudaEventRecord(ev[0], s), "cudaTime");
    for (int i = 0; i < n; ++i) {
      body(i);
      check(cudaEventRecord(ev[i + 1], s), "cudaTime");
    }
    check(cudaEventSynchronize(ev[n]), "cudaTime");
    for (int i = 0; i < n; ++i) check(cudaEventElapsedTime(&ms[i], ev[i], ev[i + 1]), "cudaTime");
  } catch (...) {
    destroy();
    throw;
  }
  destroy();
  return ms;
}

void copy_h2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // From pageable memory the call returns once src has been staged, so the caller may free it.
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream())), "copy_h2d");
}

void copy_d2d(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream())), "copy_d2d");
}

void copy_d2h(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream());
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy_d2h");
  check(cudaStreamSynchronize(s), "copy_d2h");
}

HostCopy host_copy_start(const void* src, size_t bytes) {
  HostCopy c;
  c.bytes = bytes;
  cudaStream_t s = static_cast<cudaStream_t>(stream());
  check(cudaMallocHost(&c.host, bytes == 0 ? 1 : bytes), "data");
  cudaEvent_t ev = nullptr;
  cudaError_t e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
  if (e == cudaSuccess && bytes) e = cudaMemcpyAsync(c.host, src, bytes, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaEventRecord(ev, s);
  if (e != cudaSuccess) {
    if (ev) cudaEventDestroy(ev);
    cudaFreeHost(c.host);
    throw_cuda(e, "data");
  }
  c.event = ev;
  return c;
}

void host_copy_wait(const HostCopy& c) { check(cudaEventSynchronize(static_cast<cudaEvent_t>(c.event)), "data"); }

void host_copy_finish(HostCopy& c) {
  if (c.event) cudaEventDestroy(static_cast<cudaEvent_t>(c.event));
  if (c.host) cudaFreeHost(c.host);
  c.event = nullptr;
  c.host = nullptr;
}

}  // namespace cuda
}  // namespace mamba
