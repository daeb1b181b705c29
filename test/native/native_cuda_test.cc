// Native unit tests for the CUDA building blocks, run on the GPU machine: every creation/cast kernel
// against its CPU twin (bitwise, except randn: at most one float32 ulp), the caching allocator (reuse,
// out-of-memory then recovery) and the asynchronous host copy. Exits 77 (ctest: skipped) without a GPU.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../../cuda/launch.h"
#include "cpu/creation_cpu.h"
#include "error.h"
#include "harness.h"

using namespace mamba;

namespace {

std::vector<uint8_t> to_host(const void* d, size_t bytes) {
  std::vector<uint8_t> h(bytes);
  cuda::copy_d2h(h.data(), d, bytes);
  return h;
}

const DType kAll[] = {DType::Float32, DType::Float16, DType::BFloat16, DType::Int32};
const int64_t kSizes[] = {1, 7, 257, 1000003};

}  // namespace

TEST_CASE("fill / arange / rand match the CPU bitwise") {
  for (DType dt : kAll)
    for (int64_t n : kSizes) {
      size_t bytes = n * dtype_size(dt);
      std::vector<uint8_t> cpu(bytes);
      void* d = cuda::alloc(bytes, "test");
      fill_cpu(cpu.data(), n, dt, -3.25);
      cuda::fill_cuda(d, n, dt, -3.25);
      CHECK_MSG(to_host(d, bytes) == cpu, std::string("fill ") + dtype_name(dt));
      arange_cpu(cpu.data(), n, dt, -5.0, 0.37);
      cuda::arange_cuda(d, n, dt, -5.0, 0.37);
      CHECK_MSG(to_host(d, bytes) == cpu, std::string("arange ") + dtype_name(dt));
      if (dt != DType::Int32) {
        rand_cpu(cpu.data(), n, dt, 0x1234567890abcdefULL, -2.0, 5.0);
        cuda::rand_cuda(d, n, dt, 0x1234567890abcdefULL, -2.0, 5.0);
        CHECK_MSG(to_host(d, bytes) == cpu, std::string("rand ") + dtype_name(dt));
      }
      cuda::free(d);
    }
}

TEST_CASE("randn matches the CPU within one float32 ulp") {
  const int64_t n = 1 << 20;
  std::vector<float> cpu(n);
  randn_cpu(cpu.data(), n, DType::Float32, 42, 0.5, 2.0);
  void* d = cuda::alloc(n * 4, "test");
  cuda::randn_cuda(d, n, DType::Float32, 42, 0.5, 2.0);
  auto h = to_host(d, n * 4);
  const float* g = reinterpret_cast<const float*>(h.data());
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (g[i] != cpu[i]) {
      ++differ;
      CHECK_MSG(std::fabs(g[i] - cpu[i]) <= std::fabs(cpu[i]) * 1.2e-7f + 1e-30f, "randn differs by more than an ulp");
    }
  }
  std::printf("     randn: %lld of %lld elements differ by one ulp\n", static_cast<long long>(differ), static_cast<long long>(n));
  cuda::free(d);
}

TEST_CASE("cast matches the CPU bitwise for every dtype pair") {
  const int64_t n = 100003;
  std::vector<float> src(n);
  randn_cpu(src.data(), n, DType::Float32, 7, 0.0, 3000.0);
  src[0] = NAN;
  src[1] = INFINITY;
  src[2] = 1e-7f;  // float16 subnormal
  src[3] = 70000.f;  // float16 overflow
  for (DType a : kAll)
    for (DType b : kAll) {
      std::vector<uint8_t> ca(n * dtype_size(a)), cb(n * dtype_size(b));
      cast_cpu(src.data(), DType::Float32, ca.data(), a, n);
      cast_cpu(ca.data(), a, cb.data(), b, n);
      void* da = cuda::alloc(ca.size(), "test");
      void* db = cuda::alloc(cb.size(), "test");
      cuda::copy_h2d(da, ca.data(), ca.size());
      cuda::cast_cuda(da, a, db, b, n);
      CHECK_MSG(to_host(db, cb.size()) == cb, std::string("cast ") + dtype_name(a) + " -> " + dtype_name(b));
      cuda::free(da);
      cuda::free(db);
    }
}

TEST_CASE("allocator reuses freed blocks without new cudaMalloc calls") {
  cuda::empty_cache();
  void* a = cuda::alloc(1000000, "test");
  size_t mallocs = cuda::allocator_stats().num_device_allocs;
  cuda::free(a);
  for (int i = 0; i < 100; ++i) {
    void* b = cuda::alloc(999000 + i, "test");  // same size class
    cuda::free(b);
  }
  CHECK(cuda::allocator_stats().num_device_allocs == mallocs);
  void* c = cuda::alloc(4096, "test");
  cuda::free_deferred(c);
  CHECK(cuda::allocator_stats().allocated_bytes == 0);  // the deferred free was drained
}

TEST_CASE("out of memory throws OutOfMemory and the next allocation works") {
  bool threw = false;
  try {
    void* p = cuda::alloc(size_t(1) << 50, "test");
    cuda::free(p);
  } catch (const Error& e) {
    threw = e.kind == ErrorKind::OutOfMemory;
  }
  CHECK(threw);
  void* q = cuda::alloc(1 << 20, "test");
  cuda::fill_cuda(q, 1 << 18, DType::Float32, 1.0);
  auto h = to_host(q, 4);
  float v;
  std::memcpy(&v, h.data(), 4);
  CHECK(v == 1.0f);
  cuda::free(q);
}

TEST_CASE("asynchronous host copy sees the data enqueued before it") {
  const int64_t n = 1 << 22;
  void* d = cuda::alloc(n * 4, "test");
  cuda::fill_cuda(d, n, DType::Float32, 2.5);
  cuda::HostCopy c = cuda::host_copy_start(d, n * 4);
  cuda::free(d);  // stream order keeps the copy ahead of any reuse
  void* e = cuda::alloc(n * 4, "test");
  cuda::fill_cuda(e, n, DType::Float32, -1.0);
  cuda::host_copy_wait(c);
  const float* f = static_cast<const float*>(c.host);
  bool ok = true;
  for (int64_t i = 0; i < n; i += 4097) ok = ok && f[i] == 2.5f;
  CHECK(ok);
  cuda::host_copy_finish(c);
  cuda::free(e);
}

int main() {
  if (cuda::device_count() == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  cuda::DeviceInfo info = cuda::device_info(0);
  std::printf("device: %s (sm_%d%d, %d SMs)\n", info.name.c_str(), info.major, info.minor, info.multiprocessors);
  return harness::run_all();
}
