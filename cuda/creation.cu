// Fill, arange and seeded random kernels (declarations in launch.h). Elementwise over n contiguous
// elements; the per-element math lives in native/elem.h and native/random.h, shared with the CPU
// kernels, so both devices produce the same values for the same arguments.
#include "../native/elem.h"
#include "../native/random.h"
#include "common.cuh"
#include "launch.h"

namespace mamba {
namespace cuda {
namespace {

__global__ void fill32_kernel(uint32_t* dst, int64_t n, uint32_t bits) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] = bits;
}

__global__ void fill16_kernel(uint16_t* dst, int64_t n, uint16_t bits) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) dst[i] = bits;
}

__global__ void arange_kernel(void* dst, int64_t n, DType dt, double start, double step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_double(dst, i, dt, fma(static_cast<double>(i), step, start));
}

__global__ void rand_kernel(void* dst, int64_t n, DType dt, uint64_t seed, double lo, double hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_double(dst, i, dt, rand_uniform_at(seed, static_cast<uint64_t>(i), lo, hi));
}

__global__ void randn_kernel(void* dst, int64_t n, DType dt, uint64_t seed, double mean, double stddev) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_double(dst, i, dt, randn_at(seed, static_cast<uint64_t>(i), mean, stddev));
}

cudaStream_t S() { return static_cast<cudaStream_t>(stream()); }

}  // namespace

void fill_cuda(void* dst, int64_t n, DType dt, double value) {
  if (n <= 0) return;
  uint32_t bits = value_bits(value, dt);
  if (dtype_size(dt) == 2)
    fill16_kernel<<<grid_for(n), 256, 0, S()>>>(static_cast<uint16_t*>(dst), n, static_cast<uint16_t>(bits));
  else
    fill32_kernel<<<grid_for(n), 256, 0, S()>>>(static_cast<uint32_t*>(dst), n, bits);
  check_last("fill");
}

void arange_cuda(void* dst, int64_t n, DType dt, double start, double step) {
  if (n <= 0) return;
  arange_kernel<<<grid_for(n), 256, 0, S()>>>(dst, n, dt, start, step);
  check_last("arange");
}

void rand_cuda(void* dst, int64_t n, DType dt, uint64_t seed, double lo, double hi) {
  if (n <= 0) return;
  rand_kernel<<<grid_for(n), 256, 0, S()>>>(dst, n, dt, seed, lo, hi);
  check_last("rand");
}

void randn_cuda(void* dst, int64_t n, DType dt, uint64_t seed, double mean, double stddev) {
  if (n <= 0) return;
  randn_kernel<<<grid_for(n), 256, 0, S()>>>(dst, n, dt, seed, mean, stddev);
  check_last("randn");
}

}  // namespace cuda
}  // namespace mamba
