// CPU creation and cast kernels (see creation_cpu.h). Large tensors split across threads.
#include "creation_cpu.h"

#include <cmath>
#include <cstring>

#include "../elem.h"
#include "../random.h"
#include "parallel.h"

namespace mamba {
namespace {
constexpr int64_t kGrain = 1 << 15;
}

void fill_cpu(void* dst, int64_t n, DType dt, double value) {
  uint32_t bits = value_bits(value, dt);
  if (dtype_size(dt) == 2) {
    uint16_t b16 = static_cast<uint16_t>(bits);
    uint16_t* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = b16;
  } else {
    uint32_t* d = static_cast<uint32_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = bits;
  }
}

void arange_cpu(void* dst, int64_t n, DType dt, double start, double step) {
  for (int64_t i = 0; i < n; ++i) store_double(dst, i, dt, std::fma(static_cast<double>(i), step, start));
}

void rand_cpu(void* dst, int64_t n, DType dt, uint64_t seed, double lo, double hi) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) store_double(dst, i, dt, rand_uniform_at(seed, static_cast<uint64_t>(i), lo, hi));
  });
}

void randn_cpu(void* dst, int64_t n, DType dt, uint64_t seed, double mean, double stddev) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) store_double(dst, i, dt, randn_at(seed, static_cast<uint64_t>(i), mean, stddev));
  });
}

void cast_cpu(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (st == dt) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(dt));
    return;
  }
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) cast_element(src, st, dst, dt, i);
  });
}

}  // namespace mamba
