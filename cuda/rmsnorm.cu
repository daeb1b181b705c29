// CUDA RMSNorm with optional residual add (mamba_ssm's fused add + norm), forward and backward; math and
// shapes in RmsNormParams (native/fused_params.h), CPU twin in native/cpu/rmsnorm_cpu.cc.
// Forward: one block per row, each thread owning every blockDim-th 16-byte vector of the row; the float32
// r = x + residual stays in the thread's slice of shared memory between the sum of squares and the scaling,
// so x and residual are read once. Backward: a persistent grid, each block walking rows; a thread keeps its
// columns' weight, rhat, weight * dout and dweight partial in shared memory, the block writes its dweight
// partial row to scratch and a second kernel adds the partials in block order (deterministic, no atomics).
#include "fused.h"
#include "fused_common.cuh"

namespace mamba {
namespace {
using namespace fused;

// Threads per row: enough for one vector each, a multiple of 32, at most 1024 (larger rows loop).
int threads_for(int64_t cols, int vec) {
  int64_t nvec = (cols + vec - 1) / vec;
  int64_t t = (nvec + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : t > 1024 ? 1024 : t);
}

template <typename T, typename R, int VEC>
__global__ void rmsnorm_fwd_kernel(RmsNormParams p) {
  extern __shared__ float smem[];  // [32] reduction + [cols] r
  float* red = smem;
  float* rbuf = smem + 32;
  const int64_t C = p.cols, row = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + row * C;
  const R* res = p.residual ? static_cast<const R*>(p.residual) + row * C : nullptr;
  R* rout = p.residual_out ? static_cast<R*>(p.residual_out) + row * C : nullptr;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC) {
    float v[VEC];
    load_vec<VEC>(x + j, v);
    if (res) {
      float q[VEC];
      load_vec<VEC>(res + j, q);
#pragma unroll
      for (int k = 0; k < VEC; ++k) v[k] += q[k];
    }
    if (rout) store_vec<VEC>(rout + j, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      rbuf[j + k] = v[k];
      ss += v[k] * v[k];
    }
  }
  ss = block_sum(ss, red);
  const float rstd = rsqrtf(ss / static_cast<float>(C) + p.eps);
  if (threadIdx.x == 0) p.rstd[row] = rstd;
  T* out = static_cast<T*>(p.out) + row * C;
  // Each thread reads back only the r values it wrote itself, so no barrier is needed here.
  for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC) {
    float o[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) o[k] = rbuf[j + k] * rstd * load_any(p.weight, j + k, p.wdtype);
    store_vec<VEC>(out + j, o);
  }
}

template <typename T, typename R, int VEC>
__global__ void rmsnorm_bwd_kernel(RmsNormParams p, float* partial) {
  extern __shared__ float smem[];  // [32] reduction, then [cols] each: weight, rhat, weight * dout, dweight
  float* red = smem;
  const int64_t C = p.cols;
  float* w = smem + 32;
  float* rhat = w + C;
  float* wdy = rhat + C;
  float* dw = wdy + C;
  for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC)
    for (int k = 0; k < VEC; ++k) {
      w[j + k] = load_any(p.weight, j + k, p.wdtype);
      dw[j + k] = 0.0f;
    }
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t base = row * C;
    const float rstd = p.rstd[row];
    float c = 0.0f;
    for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC) {
      float r[VEC], dy[VEC];
      load_vec<VEC>(static_cast<const R*>(p.r) + base + j, r);
      load_vec<VEC>(static_cast<const T*>(p.dout) + base + j, dy);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float rh = r[k] * rstd, g = w[j + k] * dy[k];
        rhat[j + k] = rh;
        wdy[j + k] = g;
        c += g * rh;
        dw[j + k] += dy[k] * rh;
      }
    }
    c = block_sum(c, red) / static_cast<float>(C);
    for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC) {
      float dr[VEC];
      if (p.dresidual_out) load_vec<VEC>(static_cast<const R*>(p.dresidual_out) + base + j, dr);
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const float d = rstd * (wdy[j + k] - rhat[j + k] * c);
        dr[k] = p.dresidual_out ? dr[k] + d : d;
      }
      store_vec<VEC>(static_cast<T*>(p.dx) + base + j, dr);
      if (p.dresidual) store_vec<VEC>(static_cast<R*>(p.dresidual) + base + j, dr);
    }
  }
  float* mine = partial + blockIdx.x * C;
  for (int64_t j = threadIdx.x * VEC; j < C; j += blockDim.x * VEC)
    for (int k = 0; k < VEC; ++k) mine[j + k] = dw[j + k];
}

// dweight[j] = sum over blocks b (in order) of partial[b, j].
__global__ void column_sum_kernel(const float* partial, int64_t nblocks, int64_t cols, void* out, DType dt) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < cols; j += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t b = 0; b < nblocks; ++b) s += partial[b * cols + j];
    store_any(out, j, dt, s);
  }
}

bool use_vectors(const RmsNormParams& p, int vec, std::initializer_list<const void*> ptrs) {
  if (p.cols % vec != 0) return false;
  // 32 bytes: a pack of 8 float32 residual values goes with a pack of 8 16-bit x values.
  for (const void* q : ptrs)
    if (q && !aligned(q, 32)) return false;
  return true;
}

template <typename T, typename R>
void fwd(const RmsNormParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = use_vectors(p, V, {p.x, p.residual, p.residual_out, p.out});
  const int threads = threads_for(p.cols, vec ? V : 1);
  const size_t smem = (32 + p.cols) * sizeof(float);
  auto kernel = vec ? rmsnorm_fwd_kernel<T, R, V> : rmsnorm_fwd_kernel<T, R, 1>;
  if (smem > 48 * 1024) cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), "rmsNorm");
  kernel<<<static_cast<unsigned>(p.rows), threads, smem, s>>>(p);
  check_launch("rmsNorm");
}

template <typename T, typename R>
void bwd(const RmsNormParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = use_vectors(p, V, {p.r, p.dout, p.dresidual_out, p.dx, p.dresidual});
  const int threads = threads_for(p.cols, vec ? V : 1);
  const size_t smem = (32 + 4 * p.cols) * sizeof(float);
  auto kernel = vec ? rmsnorm_bwd_kernel<T, R, V> : rmsnorm_bwd_kernel<T, R, 1>;
  if (smem > 48 * 1024) cuda::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), "rmsNormBackward");
  int per_sm = 0;
  cuda::check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem), "rmsNormBackward");
  const int64_t blocks = std::min<int64_t>(p.rows, static_cast<int64_t>(std::max(per_sm, 1)) * sm_count());
  Scratch partial(static_cast<size_t>(blocks * p.cols) * sizeof(float), "rmsNormBackward");
  kernel<<<static_cast<unsigned>(blocks), threads, smem, s>>>(p, partial.as<float>());
  check_launch("rmsNormBackward");
  column_sum_kernel<<<cuda::grid_for(p.cols), 256, 0, s>>>(partial.as<float>(), blocks, p.cols, p.dweight, p.wdtype);
  check_launch("rmsNormBackward");
}

void check_cols(const RmsNormParams& p, const char* fn, int copies) {
  // The kernels keep `copies` float32 rows in shared memory (227 KiB per block on sm_90).
  if ((32 + copies * p.cols) * 4 > 227 * 1024)
    fail(ErrorKind::Shape, fn, "x", std::string(fn) + ": the CUDA kernel supports a last dim of at most " + std::to_string((227 * 1024 / 4 - 32) / copies));
}

}  // namespace

void rmsnorm_fwd_cuda(const RmsNormParams& p, void* stream) {
  check_cols(p, "rmsNorm", 1);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.rdtype == DType::Float32) {
    FUSED_DISPATCH(p.dtype, T, "rmsNorm", fwd<T, float>(p, s));
  } else {
    FUSED_DISPATCH(p.dtype, T, "rmsNorm", fwd<T, T>(p, s));
  }
}

void rmsnorm_bwd_cuda(const RmsNormParams& p, void* stream) {
  check_cols(p, "rmsNormBackward", 4);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.rdtype == DType::Float32) {
    FUSED_DISPATCH(p.dtype, T, "rmsNormBackward", bwd<T, float>(p, s));
  } else {
    FUSED_DISPATCH(p.dtype, T, "rmsNormBackward", bwd<T, T>(p, s));
  }
}

}  // namespace mamba
