// CUDA matmul: C[b] (M, N) = op(A[b]) (M, K) @ op(B[b]) (K, N) (+ bias (N)), row-major, float32
// accumulation (layouts in native/cpu/matmul_cpu.h). Two implementations:
//  - cuBLASLt, loaded at run time (cublas_loader.h). cuBLAS is column-major, and a row-major (M, N) matrix
//    is the column-major (N, M) matrix of its transpose, so C^T = op(B)^T op(A)^T is computed: cuBLAS's
//    "A" is our B and its "B" is our A, with the same transpose flags. The bias then runs along cuBLAS's
//    rows, which is what CUBLASLT_EPILOGUE_BIAS adds. Compute type CUBLAS_COMPUTE_32F (no TF32).
//    Descriptors and the heuristic's algorithm are cached per problem (shape, flags, strides, alignment),
//    so a repeated call costs one cublasLtMatmul; the workspace comes from the caching allocator.
//  - a tiled shared-memory kernel (64 x 64 output tiles, 16-deep k steps, 4 x 4 outputs per thread), for
//    when cuBLASLt is absent, has no algorithm, or the fallback is forced. Correct for any shape, strides,
//    transposes and K = 0; not tuned. Each output is summed over k in order by one thread (deterministic).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "../native/half.h"
#include "common.cuh"
#include "cublas_loader.h"
#include "launch.h"
#include "matmul.h"

namespace mamba {
namespace {

// ---- fallback kernel ----

constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;

template <DType T>
__device__ __forceinline__ float load_elem(const void* p, int64_t i) {
  if constexpr (T == DType::Float32) return static_cast<const float*>(p)[i];
  else if constexpr (T == DType::Float16) return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  else return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

template <DType T>
__device__ __forceinline__ void store_elem(void* p, int64_t i, float v) {
  if constexpr (T == DType::Float32) static_cast<float*>(p)[i] = v;
  else if constexpr (T == DType::Float16) static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
  else static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
}

// Grid: x over column tiles, y over row tiles, z over the batch (y and z loop when the grid is capped).
// Tile loads follow the stored layout so that consecutive threads read consecutive addresses.
template <DType T>
__global__ void __launch_bounds__(kThreads) matmul_fallback_kernel(MatmulParams p) {
  __shared__ float As[kBK][kBM + 1];
  __shared__ float Bs[kBK][kBN];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t n0 = int64_t(blockIdx.x) * kBN;
  for (int64_t bi = blockIdx.z; bi < p.batch; bi += gridDim.z) {
    const int64_t a_off = bi * p.stride_a, b_off = bi * p.stride_b;
    for (int64_t m0 = int64_t(blockIdx.y) * kBM; m0 < p.M; m0 += int64_t(gridDim.y) * kBM) {
      float acc[4][4] = {};
      for (int64_t k0 = 0; k0 < p.K; k0 += kBK) {
        for (int l = 0; l < kBM * kBK / kThreads; ++l) {
          const int idx = tid + l * kThreads;
          int row, kk;
          if (p.trans_a) row = idx % kBM, kk = idx / kBM;
          else row = idx / kBK, kk = idx % kBK;
          const int64_t m = m0 + row, k = k0 + kk;
          float v = 0.f;
          if (m < p.M && k < p.K) v = load_elem<T>(p.a, a_off + (p.trans_a ? k * p.M + m : m * p.K + k));
          As[kk][row] = v;
        }
        for (int l = 0; l < kBN * kBK / kThreads; ++l) {
          const int idx = tid + l * kThreads;
          int col, kk;
          if (p.trans_b) col = idx / kBK, kk = idx % kBK;
          else col = idx % kBN, kk = idx / kBN;
          const int64_t n = n0 + col, k = k0 + kk;
          float v = 0.f;
          if (n < p.N && k < p.K) v = load_elem<T>(p.b, b_off + (p.trans_b ? n * p.K + k : k * p.N + n));
          Bs[kk][col] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < kBK; ++kk) {
          float a[4], b[4];
#pragma unroll
          for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
          for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
      }
      const int64_t c_off = bi * p.M * p.N;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t m = m0 + ty + 16 * i;
        if (m >= p.M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t n = n0 + tx + 16 * j;
          if (n >= p.N) continue;
          const float bias = p.bias ? load_elem<T>(p.bias, n) : 0.f;
          store_elem<T>(p.c, c_off + m * p.N + n, acc[i][j] + bias);
        }
      }
    }
  }
}

void launch_fallback(const MatmulParams& p, cudaStream_t s) {
  dim3 grid(static_cast<unsigned>((p.N + kBN - 1) / kBN), static_cast<unsigned>(std::min<int64_t>((p.M + kBM - 1) / kBM, 65535)),
            static_cast<unsigned>(std::min<int64_t>(p.batch, 65535)));
  switch (p.dtype) {
    case DType::Float32: matmul_fallback_kernel<DType::Float32><<<grid, kThreads, 0, s>>>(p); break;
    case DType::Float16: matmul_fallback_kernel<DType::Float16><<<grid, kThreads, 0, s>>>(p); break;
    case DType::BFloat16: matmul_fallback_kernel<DType::BFloat16><<<grid, kThreads, 0, s>>>(p); break;
    default: fail(ErrorKind::Internal, "matmul", "", "matmul: unsupported dtype");
  }
  cuda::check_last("matmul");
}

// ---- cuBLASLt ----

namespace lt = cuda::cublaslt;

// Hopper kernels may use up to 32 MiB of workspace (NVIDIA's recommendation for sm_90); it is taken from the
// caching allocator only for the calls whose algorithm asks for it.
constexpr uint64_t kMaxWorkspace = 32ull << 20;

struct PlanKey {
  int64_t batch, M, N, K, stride_a, stride_b;
  int32_t dtype;
  uint32_t flags;  // trans_a | trans_b << 1 | bias << 2 | (alignment bytes of a, b, c, bias) << 3..
  bool operator==(const PlanKey& o) const {
    return batch == o.batch && M == o.M && N == o.N && K == o.K && stride_a == o.stride_a && stride_b == o.stride_b && dtype == o.dtype &&
           flags == o.flags;
  }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : {k.batch, k.M, k.N, k.K, k.stride_a, k.stride_b, int64_t(k.dtype), int64_t(k.flags)}) h = (h ^ uint64_t(v)) * 1099511628211ull;
    return size_t(h);
  }
};

struct Plan {
  bool usable = false;  // false: cuBLASLt offered no algorithm; use the fallback
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;  // cuBLAS's A (our B), B (our A), C = D
  lt::MatmulAlgo algo{};
  size_t workspace = 0;
};

std::mutex g_plans_mu;
std::unordered_map<PlanKey, Plan, PlanKeyHash> g_plans;
constexpr size_t kMaxPlans = 512;

void destroy_plan(const lt::Api* api, Plan& pl) {
  if (pl.desc) api->matmul_desc_destroy(pl.desc);
  for (lt::MatrixLayout l : {pl.a, pl.b, pl.c})
    if (l) api->matrix_layout_destroy(l);
}

void check_lt(const lt::Api* api, lt::Status s, const char* what) {
  if (s != lt::kSuccess)
    fail(ErrorKind::Device, "matmul", "", std::string("matmul: ") + what + " failed: " + api->status_string(s));
}

uint32_t alignment(const void* ptr) {
  uintptr_t v = reinterpret_cast<uintptr_t>(ptr);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a /= 2;
  return a;
}

int32_t cuda_type(DType t) {
  return t == DType::Float16 ? lt::kR16F : t == DType::BFloat16 ? lt::kR16BF : lt::kR32F;
}

lt::MatrixLayout make_layout(const lt::Api* api, int32_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  lt::MatrixLayout l = nullptr;
  check_lt(api, api->matrix_layout_create(&l, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
  if (batch > 1) {
    int32_t count = static_cast<int32_t>(batch);
    check_lt(api, api->matrix_layout_set_attribute(l, lt::kLayoutBatchCount, &count, sizeof(count)), "cublasLtMatrixLayoutSetAttribute");
    check_lt(api, api->matrix_layout_set_attribute(l, lt::kLayoutStridedBatchOffset, &stride, sizeof(stride)), "cublasLtMatrixLayoutSetAttribute");
  }
  return l;
}

Plan make_plan(const lt::Api* api, const MatmulParams& p, uint32_t align_a, uint32_t align_b, uint32_t align_c) {
  Plan pl;
  const int32_t type = cuda_type(p.dtype);
  check_lt(api, api->matmul_desc_create(&pl.desc, lt::kCompute32F, lt::kR32F), "cublasLtMatmulDescCreate");
  int32_t op_a = p.trans_b ? lt::kOpT : lt::kOpN, op_b = p.trans_a ? lt::kOpT : lt::kOpN;
  check_lt(api, api->matmul_desc_set_attribute(pl.desc, lt::kDescTransA, &op_a, sizeof(op_a)), "cublasLtMatmulDescSetAttribute");
  check_lt(api, api->matmul_desc_set_attribute(pl.desc, lt::kDescTransB, &op_b, sizeof(op_b)), "cublasLtMatmulDescSetAttribute");
  uint32_t epilogue = p.bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
  check_lt(api, api->matmul_desc_set_attribute(pl.desc, lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "cublasLtMatmulDescSetAttribute");
  if (p.bias) {
    // The heuristic reads the bias pointer's alignment; the actual pointer is set again at every call.
    check_lt(api, api->matmul_desc_set_attribute(pl.desc, lt::kDescBiasPointer, &p.bias, sizeof(p.bias)), "cublasLtMatmulDescSetAttribute");
  }
  const uint64_t M = p.M, N = p.N, K = p.K;
  // Stored matrices, column-major view: our B (K, N) row-major is (N, K) col-major with ld N; (N, K)
  // row-major (trans_b) is (K, N) with ld K. Likewise our A.
  pl.a = p.trans_b ? make_layout(api, type, K, N, p.K, p.batch, p.stride_b) : make_layout(api, type, N, K, p.N, p.batch, p.stride_b);
  pl.b = p.trans_a ? make_layout(api, type, M, K, p.M, p.batch, p.stride_a) : make_layout(api, type, K, M, p.K, p.batch, p.stride_a);
  pl.c = make_layout(api, type, N, M, p.N, p.batch, p.M * p.N);

  lt::Preference pref = nullptr;
  check_lt(api, api->preference_create(&pref), "cublasLtMatmulPreferenceCreate");
  uint64_t ws = kMaxWorkspace;
  lt::Status s = api->preference_set_attribute(pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof(ws));
  // cuBLAS's A is our B and vice versa; C and D are the output.
  const uint32_t aligns[4] = {align_b, align_a, align_c, align_c};
  const int attrs[4] = {lt::kPrefMinAlignmentA, lt::kPrefMinAlignmentB, lt::kPrefMinAlignmentC, lt::kPrefMinAlignmentD};
  for (int i = 0; i < 4 && s == lt::kSuccess; ++i) s = api->preference_set_attribute(pref, attrs[i], &aligns[i], sizeof(uint32_t));
  lt::HeuristicResult result{};
  int returned = 0;
  if (s == lt::kSuccess) s = api->algo_get_heuristic(api->handle, pl.desc, pl.a, pl.b, pl.c, pl.c, pref, 1, &result, &returned);
  api->preference_destroy(pref);
  if (s == lt::kSuccess && returned > 0 && result.state == lt::kSuccess) {
    pl.usable = true;
    pl.algo = result.algo;
    pl.workspace = result.workspace_size;
  } else if (s != lt::kSuccess && s != lt::kNotSupported) {
    destroy_plan(api, pl);
    check_lt(api, s, "cublasLtMatmulAlgoGetHeuristic");
  }
  return pl;
}

// Runs p through cuBLASLt; false when cuBLASLt has no algorithm for it (the caller runs the fallback).
bool run_cublaslt(const lt::Api* api, const MatmulParams& p, cudaStream_t s) {
  const uint32_t align_a = alignment(p.a), align_b = alignment(p.b), align_c = alignment(p.c);
  const uint32_t align_bias = p.bias ? alignment(p.bias) : 0;
  PlanKey key{p.batch, p.M, p.N, p.K, p.stride_a, p.stride_b, static_cast<int32_t>(p.dtype),
              uint32_t(p.trans_a) | uint32_t(p.trans_b) << 1 | uint32_t(p.bias != nullptr) << 2 | __builtin_ctz(align_a) << 3 |
                  __builtin_ctz(align_b) << 7 | __builtin_ctz(align_c) << 11 | (p.bias ? __builtin_ctz(align_bias) : 0) << 15};
  std::lock_guard<std::mutex> lock(g_plans_mu);
  auto it = g_plans.find(key);
  if (it == g_plans.end()) {
    if (g_plans.size() >= kMaxPlans) {
      for (auto& kv : g_plans) destroy_plan(api, kv.second);
      g_plans.clear();
    }
    it = g_plans.emplace(key, make_plan(api, p, align_a, align_b, align_c)).first;
  }
  Plan& pl = it->second;
  if (!pl.usable) return false;
  if (p.bias)
    check_lt(api, api->matmul_desc_set_attribute(pl.desc, lt::kDescBiasPointer, &p.bias, sizeof(p.bias)), "cublasLtMatmulDescSetAttribute");
  void* ws = pl.workspace ? cuda::alloc(pl.workspace, "matmul") : nullptr;
  const float alpha = 1.f, beta = 0.f;
  lt::Status st = api->matmul(api->handle, pl.desc, &alpha, p.b, pl.a, p.a, pl.b, &beta, p.c, pl.c, p.c, pl.c, &pl.algo, ws, pl.workspace, s);
  // Back to the cache at once: later users of the block are queued behind this matmul on the one stream.
  if (ws) cuda::free(ws);
  check_lt(api, st, "cublasLtMatmul");
  return true;
}

MatmulBackend initial_backend() {
  const char* v = std::getenv("MAMBA_MATMUL_FALLBACK");
  return v && v[0] == '1' ? MatmulBackend::Fallback : MatmulBackend::Auto;
}

std::atomic<int> g_backend{static_cast<int>(initial_backend())};
std::atomic<const char*> g_last_path{""};

}  // namespace

void set_matmul_backend(MatmulBackend b) { g_backend = static_cast<int>(b); }
MatmulBackend matmul_backend() { return static_cast<MatmulBackend>(g_backend.load()); }
const char* matmul_last_path() { return g_last_path.load(); }

bool cublas_available() { return lt::lt() != nullptr; }

std::string cublas_info() {
  const lt::Api* api = lt::lt();
  if (!api) return lt::load_error();
  return api->path + " (version " + std::to_string(api->version) + ")";
}

void matmul_cuda(const MatmulParams& p, void* stream) {
  if (p.batch <= 0 || p.M <= 0 || p.N <= 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  // cuBLASLt takes int32 batch counts and leading dimensions and rejects K = 0.
  const bool fits = p.K > 0 && p.M <= INT32_MAX && p.N <= INT32_MAX && p.K <= INT32_MAX && p.batch <= INT32_MAX;
  if (matmul_backend() == MatmulBackend::Auto && fits) {
    if (const lt::Api* api = lt::lt(); api && run_cublaslt(api, p, s)) {
      g_last_path = "cublasLt";
      return;
    }
  }
  launch_fallback(p, s);
  g_last_path = "fallback";
}

}  // namespace mamba
