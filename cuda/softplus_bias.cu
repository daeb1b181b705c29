// CUDA softplus(delta + bias[d]) (the delta path of the Mamba mixer) and its backward; math and shapes in
// SoftplusBiasParams (native/fused_params.h), CPU twin in native/cpu/softplus_bias_cpu.cc. The forward is a
// grid-stride loop over 16-byte vectors (one row never splits a vector when L allows vectors). The backward
// gives each (batch, channel) row to one warp, which writes ddelta and sums its row; a second kernel adds
// the row sums over batch in order, so dbias is deterministic.
#include "fused.h"
#include "fused_common.cuh"

namespace mamba {
namespace {
using namespace fused;

__device__ __forceinline__ float softplus(float v) { return v > 20.0f ? v : log1pf(__expf(v)); }

template <typename T, int VEC>
__global__ void softplus_bias_fwd_kernel(SoftplusBiasParams p) {
  const int64_t n = p.batch * p.dim * p.seqlen / VEC;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t first = e * VEC;
    const float b = load_any(p.bias, (first / p.seqlen) % p.dim, p.bdtype);
    float v[VEC];
    load_vec<VEC>(static_cast<const T*>(p.delta) + first, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) v[k] = softplus(v[k] + b);
    store_vec<VEC>(static_cast<T*>(p.out) + first, v);
  }
}

constexpr int kWarps = 8;

template <typename T, int VEC>
__global__ void __launch_bounds__(kWarps * 32) softplus_bias_bwd_kernel(SoftplusBiasParams p, float* row_sums) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (row >= p.batch * p.dim) return;
  const int lane = threadIdx.x & 31;
  const int64_t L = p.seqlen, base = row * L;
  const float b = load_any(p.bias, row % p.dim, p.bdtype);
  float acc = 0.0f;
  for (int64_t t = int64_t(lane) * VEC; t < L; t += 32 * VEC) {
    float v[VEC], g[VEC];
    load_vec<VEC>(static_cast<const T*>(p.delta) + base + t, v);
    load_vec<VEC>(static_cast<const T*>(p.dout) + base + t, g);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      g[k] = g[k] / (1.0f + __expf(-(v[k] + b)));
      acc += g[k];
    }
    store_vec<VEC>(static_cast<T*>(p.ddelta) + base + t, g);
  }
  acc = warp_sum(acc);
  if (lane == 0) row_sums[row] = acc;
}

__global__ void bias_grad_kernel(const float* row_sums, SoftplusBiasParams p) {
  for (int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; d < p.dim; d += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t b = 0; b < p.batch; ++b) s += row_sums[b * p.dim + d];
    store_any(p.dbias, d, p.bdtype, s);
  }
}

template <typename T>
bool vectorised(const SoftplusBiasParams& p, std::initializer_list<const void*> ptrs) {
  if (p.seqlen % (16 / sizeof(T)) != 0) return false;
  for (const void* q : ptrs)
    if (!aligned(q, 16)) return false;
  return true;
}

template <typename T>
void fwd(const SoftplusBiasParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const int64_t n = p.batch * p.dim * p.seqlen;
  if (vectorised<T>(p, {p.delta, p.out})) softplus_bias_fwd_kernel<T, V><<<cuda::grid_for(n / V), 256, 0, s>>>(p);
  else softplus_bias_fwd_kernel<T, 1><<<cuda::grid_for(n), 256, 0, s>>>(p);
  check_launch("softplusBias");
}

template <typename T>
void bwd(const SoftplusBiasParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const int64_t rows = p.batch * p.dim;
  Scratch sums(static_cast<size_t>(rows) * sizeof(float), "softplusBiasBackward");
  const unsigned blocks = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
  if (vectorised<T>(p, {p.delta, p.dout, p.ddelta})) softplus_bias_bwd_kernel<T, V><<<blocks, kWarps * 32, 0, s>>>(p, sums.as<float>());
  else softplus_bias_bwd_kernel<T, 1><<<blocks, kWarps * 32, 0, s>>>(p, sums.as<float>());
  check_launch("softplusBiasBackward");
  bias_grad_kernel<<<cuda::grid_for(p.dim), 256, 0, s>>>(sums.as<float>(), p);
  check_launch("softplusBiasBackward");
}

}  // namespace

void softplus_bias_fwd_cuda(const SoftplusBiasParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "softplusBias", fwd<T>(p, static_cast<cudaStream_t>(stream)));
}

void softplus_bias_bwd_cuda(const SoftplusBiasParams& p, void* stream) {
  FUSED_DISPATCH(p.dtype, T, "softplusBiasBackward", bwd<T>(p, static_cast<cudaStream_t>(stream)));
}

}  // namespace mamba
