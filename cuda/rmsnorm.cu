// CUDA RMSNorm with optional residual add (mamba_ssm's fused add + norm), forward and backward; math and
// shapes in RmsNormParams (native/fused_params.h), CPU twin in native/cpu/rmsnorm_cpu.cc.
// Rows up to ~3k columns (1024 without vectors) take the register kernels: 128-thread blocks split into
// teams of 32, 64 or 128 threads, one row per team at a time, a persistent grid walking the rows. A thread holds NV vectors of its
// row in registers (vector i at column (i * team + t) * VEC), so every load of a row is issued before the
// first use, and a 32-thread team (the common case: 768 columns) reduces with shuffles only, no barrier.
// The weight is read once per thread; the backward keeps its dweight partial in registers, the teams of a
// block add theirs in team order and each block writes one partial row (grid <= a few blocks per SM), which a
// second kernel sums over blocks in a fixed order (deterministic, no atomics).
// Wider rows take the shared-memory kernels: one block per row (forward) / a persistent grid (backward),
// each thread owning every blockDim-th vector and keeping its float32 values in shared memory.
#include <type_traits>

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

// ---------------------------------------------------------------- register kernels (rows up to a few k)

constexpr int kRowThreads = 128;

// Sum over a team of `tpr` threads (32, 64 or 128; uniform over the block). Every thread of the block must call
// it the same number of times. 32: shuffles only. Wider: the warps' sums go through `red` (kRowThreads / 32
// floats; callers alternate two buffers, so one barrier per call suffices) and are added in warp order.
__device__ __forceinline__ float team_sum(float v, float* red, int tpr) {
  v = warp_sum(v);
  if (tpr == 32) return v;
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  const int nw = tpr >> 5, w0 = (threadIdx.x / tpr) * nw;
  float s = 0.0f;
  for (int k = 0; k < nw; ++k) s += red[w0 + k];
  return s;
}

template <typename T, typename R, int VEC, int NV>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_fwd_reg_kernel(RmsNormParams p, int tpr) {
  __shared__ float red[2][kRowThreads / 32];
  const int64_t C = p.cols;
  const int teams = kRowThreads / tpr, team = threadIdx.x / tpr, t = threadIdx.x % tpr;
  float w[NV][VEC];
#pragma unroll
  for (int i = 0; i < NV; ++i)
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const int64_t j = int64_t(i * tpr + t) * VEC + k;
      w[i][k] = j < C ? load_any(p.weight, j, p.wdtype) : 0.0f;
    }
  int buf = 0;
  for (int64_t base = int64_t(blockIdx.x) * teams; base < p.rows; base += int64_t(gridDim.x) * teams) {
    const int64_t row = base + team;
    const bool active = row < p.rows;
    float v[NV][VEC];
    float ss = 0.0f;
    if (active) {
      const T* x = static_cast<const T*>(p.x) + row * C;
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int64_t j = int64_t(i * tpr + t) * VEC;  // VEC > 1: C % VEC == 0, so a vector is all in or all out
        if (j < C) load_vec<VEC>(x + j, v[i]);
        else
#pragma unroll
          for (int k = 0; k < VEC; ++k) v[i][k] = 0.0f;
      }
      if (p.residual) {
        const R* res = static_cast<const R*>(p.residual) + row * C;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          const int64_t j = int64_t(i * tpr + t) * VEC;
          if (j < C) {
            float q[VEC];
            load_vec<VEC>(res + j, q);
#pragma unroll
            for (int k = 0; k < VEC; ++k) v[i][k] += q[k];
          }
        }
      }
      if (p.residual_out) {
        R* rout = static_cast<R*>(p.residual_out) + row * C;
#pragma unroll
        for (int i = 0; i < NV; ++i) {
          const int64_t j = int64_t(i * tpr + t) * VEC;
          if (j < C) store_vec<VEC>(rout + j, v[i]);
        }
      }
#pragma unroll
      for (int i = 0; i < NV; ++i)
#pragma unroll
        for (int k = 0; k < VEC; ++k) ss += v[i][k] * v[i][k];
    }
    ss = team_sum(ss, red[buf], tpr);
    buf ^= 1;
    if (active) {
      const float rstd = rsqrtf(ss / static_cast<float>(C) + p.eps);
      if (t == 0) p.rstd[row] = rstd;
      T* out = static_cast<T*>(p.out) + row * C;
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int64_t j = int64_t(i * tpr + t) * VEC;
        if (j < C) {
          float o[VEC];
#pragma unroll
          for (int k = 0; k < VEC; ++k) o[k] = v[i][k] * rstd * w[i][k];
          store_vec<VEC>(out + j, o);
        }
      }
    }
  }
}

template <typename T, typename R, int VEC, int NV>
__global__ void __launch_bounds__(kRowThreads) rmsnorm_bwd_reg_kernel(RmsNormParams p, int tpr, float* partial) {
  __shared__ float red[2][kRowThreads / 32];
  __shared__ float comb[kRowThreads * NV * VEC];  // the teams' dweight partials, added by team 0
  const int64_t C = p.cols;
  const int teams = kRowThreads / tpr, team = threadIdx.x / tpr, t = threadIdx.x % tpr;
  float w[NV][VEC], dw[NV][VEC];
#pragma unroll
  for (int i = 0; i < NV; ++i)
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const int64_t j = int64_t(i * tpr + t) * VEC + k;
      w[i][k] = j < C ? load_any(p.weight, j, p.wdtype) : 0.0f;
      dw[i][k] = 0.0f;
    }
  int buf = 0;
  for (int64_t base = int64_t(blockIdx.x) * teams; base < p.rows; base += int64_t(gridDim.x) * teams) {
    const int64_t row = base + team;
    const bool active = row < p.rows;
    // rh: r * rstd, g: weight * dout, dro: dresidual_out (all loads of the row are issued up front).
    float rh[NV][VEC], g[NV][VEC], dro[NV][VEC];
    float c = 0.0f, rstd = 0.0f;
    if (active) {
      rstd = p.rstd[row];
      const R* r = static_cast<const R*>(p.r) + row * C;
      const T* dy = static_cast<const T*>(p.dout) + row * C;
      const R* dr = p.dresidual_out ? static_cast<const R*>(p.dresidual_out) + row * C : nullptr;
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int64_t j = int64_t(i * tpr + t) * VEC;
        if (j < C) {
          load_vec<VEC>(r + j, rh[i]);
          load_vec<VEC>(dy + j, g[i]);
          if (p.dresidual_out) load_vec<VEC>(dr + j, dro[i]);
        } else {
#pragma unroll
          for (int k = 0; k < VEC; ++k) rh[i][k] = g[i][k] = 0.0f;
        }
      }
#pragma unroll
      for (int i = 0; i < NV; ++i)
#pragma unroll
        for (int k = 0; k < VEC; ++k) {
          const float d = g[i][k];
          rh[i][k] *= rstd;
          dw[i][k] += d * rh[i][k];
          g[i][k] = w[i][k] * d;
          c += g[i][k] * rh[i][k];
        }
    }
    c = team_sum(c, red[buf], tpr) / static_cast<float>(C);
    buf ^= 1;
    if (active) {
      T* dx = static_cast<T*>(p.dx) + row * C;
      R* dres = p.dresidual ? static_cast<R*>(p.dresidual) + row * C : nullptr;
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int64_t j = int64_t(i * tpr + t) * VEC;
        if (j < C) {
          float o[VEC];
#pragma unroll
          for (int k = 0; k < VEC; ++k) {
            const float d = rstd * (g[i][k] - rh[i][k] * c);
            o[k] = p.dresidual_out ? dro[i][k] + d : d;
          }
          store_vec<VEC>(dx + j, o);
          if (p.dresidual) store_vec<VEC>(dres + j, o);
        }
      }
    }
  }
  // Teams 1.. hand their partials to team 0, which adds them in team order and writes the block's row.
  constexpr int E = NV * VEC;
  if (teams > 1) {
#pragma unroll
    for (int i = 0; i < NV; ++i)
#pragma unroll
      for (int k = 0; k < VEC; ++k) comb[threadIdx.x * E + i * VEC + k] = dw[i][k];
    __syncthreads();
    if (team == 0)
      for (int m = 1; m < teams; ++m)
#pragma unroll
        for (int i = 0; i < NV; ++i)
#pragma unroll
          for (int k = 0; k < VEC; ++k) dw[i][k] += comb[(m * tpr + t) * E + i * VEC + k];
  }
  if (team == 0) {
    float* mine = partial + int64_t(blockIdx.x) * C;
#pragma unroll
    for (int i = 0; i < NV; ++i)
#pragma unroll
      for (int k = 0; k < VEC; ++k) {
        const int64_t j = int64_t(i * tpr + t) * VEC + k;
        if (j < C) mine[j] = dw[i][k];
      }
  }
}

// dweight[j] = sum over the partial rows b of partial[b, j] in a fixed order: a (32 columns x 32 lanes) block,
// lane y adds the rows b = y, y + 32, ... in order, then lane 0 adds the 32 lane sums in order.
constexpr int kSumLanes = 32;
__global__ void __launch_bounds__(32 * kSumLanes) column_sum_kernel(const float* partial, int64_t nblocks, int64_t cols, void* out, DType dt) {
  __shared__ float s[kSumLanes][33];
  const int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float v = 0.0f;
  if (j < cols)
    for (int64_t b = threadIdx.y; b < nblocks; b += kSumLanes) v += partial[b * cols + j];
  s[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float t = 0.0f;
    for (int y = 0; y < kSumLanes; ++y) t += s[y][threadIdx.x];
    store_any(out, j, dt, t);
  }
}

void column_sum(const float* partial, int64_t nblocks, const RmsNormParams& p, cudaStream_t s) {
  column_sum_kernel<<<static_cast<unsigned>((p.cols + 31) / 32), dim3(32, kSumLanes), 0, s>>>(partial, nblocks, p.cols, p.dweight, p.wdtype);
  check_launch("rmsNormBackward");
}

bool use_vectors(const RmsNormParams& p, int vec, std::initializer_list<const void*> ptrs) {
  if (p.cols % vec != 0) return false;
  // 32 bytes: a pack of 8 float32 residual values goes with a pack of 8 16-bit x values.
  for (const void* q : ptrs)
    if (q && !aligned(q, 32)) return false;
  return true;
}

// Register kernels: at most kMaxPerThread float32 values of a row per thread (NV vectors of VEC).
constexpr int kMaxPerThread = 24;
constexpr bool nv_ok(int vec, int nv) { return nv * vec <= kMaxPerThread; }

// The register-kernel shape of a row: the smallest team (32, 64 or 128 threads) whose threads need at most
// kMaxPerThread values, NV from {1, 2, 3, 4, 6, 8}. tpr == 0: too wide, use the shared-memory kernels.
struct RegPlan {
  int tpr = 0, nv = 0;
};
RegPlan reg_plan(int64_t cols, int vec) {
  const int64_t nvec = (cols + vec - 1) / vec;
  for (int tpr : {32, 64, 128}) {
    const int64_t need = (nvec + tpr - 1) / tpr;
    for (int nv : {1, 2, 3, 4, 6, 8})
      if (nv >= need) {
        if (nv_ok(vec, nv)) return {tpr, nv};
        break;
      }
  }
  return {};
}

// Resident 128-thread blocks per SM of a kernel without dynamic shared memory.
template <typename K>
int blocks_per_sm(K kernel, const char* fn) {
  int v = 0;
  cuda::check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, kernel, kRowThreads, 0), fn);
  return std::max(v, 1);
}

// Blocks of a persistent register kernel: at most min(per_sm, cap) per SM, and at least two row groups per block
// when there are enough rows (the weight registers are loaded once per block).
int64_t reg_blocks(int per_sm, int cap, int64_t groups) {
  const int64_t resident = static_cast<int64_t>(std::min(per_sm, cap)) * sm_count();
  return std::max<int64_t>(1, std::min(resident, (groups + 1) / 2));
}

template <typename T, typename R, int VEC, int NV>
void fwd_reg(const RmsNormParams& p, int tpr, cudaStream_t s) {
  auto kernel = rmsnorm_fwd_reg_kernel<T, R, VEC, NV>;
  static const int per_sm = blocks_per_sm(kernel, "rmsNorm");  // once per instantiation
  const int64_t teams = kRowThreads / tpr;
  const int64_t blocks = reg_blocks(per_sm, 16, (p.rows + teams - 1) / teams);
  kernel<<<static_cast<unsigned>(blocks), kRowThreads, 0, s>>>(p, tpr);
  check_launch("rmsNorm");
}

template <typename T, typename R, int VEC, int NV>
void bwd_reg(const RmsNormParams& p, int tpr, cudaStream_t s) {
  auto kernel = rmsnorm_bwd_reg_kernel<T, R, VEC, NV>;
  static const int per_sm = blocks_per_sm(kernel, "rmsNormBackward");  // once per instantiation
  const int64_t teams = kRowThreads / tpr;
  const int64_t blocks = reg_blocks(per_sm, 4, (p.rows + teams - 1) / teams);
  Scratch partial(static_cast<size_t>(blocks * p.cols) * sizeof(float), "rmsNormBackward");
  kernel<<<static_cast<unsigned>(blocks), kRowThreads, 0, s>>>(p, tpr, partial.as<float>());
  check_launch("rmsNormBackward");
  column_sum(partial.as<float>(), blocks, p, s);
}

// Runs CALL with the constant NV equal to the plan's nv and sets `launched` (false: no such instantiation).
#define RMS_CASE(VEC, N, CALL) \
  case N:                      \
    if constexpr (nv_ok(VEC, N)) { constexpr int NV = N; CALL; launched = true; } \
    break;
#define RMS_BY_NV(VEC, NV_, CALL) \
  switch (NV_) { RMS_CASE(VEC, 1, CALL) RMS_CASE(VEC, 2, CALL) RMS_CASE(VEC, 3, CALL) RMS_CASE(VEC, 4, CALL) RMS_CASE(VEC, 6, CALL) RMS_CASE(VEC, 8, CALL) default: break; }

// Runs launch(vec, nv) (std::integral_constant arguments) for the plan's register-resident kernel, vectorized
// with V elements per load when `vec`; false when the plan has none (the caller uses the shared-memory kernel).
template <int V, class F>
bool launch_reg(const RegPlan& plan, bool vec, F&& launch) {
  bool launched = false;
  if (plan.tpr && vec) {
    RMS_BY_NV(V, plan.nv, (launch(std::integral_constant<int, V>{}, std::integral_constant<int, NV>{})));
  } else if (plan.tpr) {
    RMS_BY_NV(1, plan.nv, (launch(std::integral_constant<int, 1>{}, std::integral_constant<int, NV>{})));
  }
  return launched;
}

template <typename T, typename R>
void fwd(const RmsNormParams& p, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = use_vectors(p, V, {p.x, p.residual, p.residual_out, p.out});
  const RegPlan plan = reg_plan(p.cols, vec ? V : 1);
  if (launch_reg<V>(plan, vec, [&](auto v, auto nv) { fwd_reg<T, R, decltype(v)::value, decltype(nv)::value>(p, plan.tpr, s); }))
    return;
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
  const RegPlan plan = reg_plan(p.cols, vec ? V : 1);
  if (launch_reg<V>(plan, vec, [&](auto v, auto nv) { bwd_reg<T, R, decltype(v)::value, decltype(nv)::value>(p, plan.tpr, s); }))
    return;
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
  column_sum(partial.as<float>(), blocks, p, s);
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
