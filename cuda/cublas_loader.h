// cuBLASLt loaded at run time: the addon neither includes nor links cuBLAS, so it builds with a toolkit
// that lacks it and loads on machines without it. On first use, `lt()` dlopen()s libcublasLt.so.13
// (then .so.12; first MAMBA_CUBLASLT_PATH if set, then the loader's search path, then $CUDA_HOME/lib64,
// $CUDA_PATH/lib64 and /usr/local/cuda/lib64) and resolves the few entry points matmul needs.
// The types and enum values below are copied by hand from NVIDIA's public cublasLt.h / cublas_api.h /
// library_types.h (CUDA 12.x-13.x; the values used here have not changed since CUDA 11): only what
// cuda/matmul.cu uses. Plain C++, no CUDA headers; the stream is passed as void* (a cudaStream_t).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mamba {
namespace cuda {
namespace cublaslt {

using Status = int;  // cublasStatus_t; 0 = CUBLAS_STATUS_SUCCESS
constexpr Status kSuccess = 0;
constexpr Status kNotSupported = 15;  // CUBLAS_STATUS_NOT_SUPPORTED

using Handle = struct cublasLtContext*;
using MatmulDesc = void*;    // cublasLtMatmulDesc_t
using MatrixLayout = void*;  // cublasLtMatrixLayout_t
using Preference = void*;    // cublasLtMatmulPreference_t

struct MatmulAlgo {  // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cudaDataType_t (library_types.h)
constexpr int32_t kR32F = 0, kR16F = 2, kR16BF = 14;
// cublasComputeType_t: float32 accumulation, no TF32 or reduced-precision shortcuts
constexpr int32_t kCompute32F = 68;
// cublasOperation_t
constexpr int32_t kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8;
// cublasLtEpilogue_t
constexpr uint32_t kEpilogueDefault = 1, kEpilogueBias = 4;
// cublasLtMatrixLayoutAttribute_t
constexpr int kLayoutBatchCount = 5, kLayoutStridedBatchOffset = 6;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1, kPrefMinAlignmentA = 5, kPrefMinAlignmentB = 6, kPrefMinAlignmentC = 7,
              kPrefMinAlignmentD = 8;

// Entry points, with the signatures of cublasLt.h (enum arguments as int).
struct Api {
  Status (*create)(Handle*);
  Status (*matmul_desc_create)(MatmulDesc*, int32_t compute_type, int32_t scale_type);
  Status (*matmul_desc_destroy)(MatmulDesc);
  Status (*matmul_desc_set_attribute)(MatmulDesc, int attr, const void* buf, size_t bytes);
  Status (*matrix_layout_create)(MatrixLayout*, int32_t type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*matrix_layout_destroy)(MatrixLayout);
  Status (*matrix_layout_set_attribute)(MatrixLayout, int attr, const void* buf, size_t bytes);
  Status (*preference_create)(Preference*);
  Status (*preference_destroy)(Preference);
  Status (*preference_set_attribute)(Preference, int attr, const void* buf, size_t bytes);
  Status (*algo_get_heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d, Preference,
                               int requested, HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b, MatrixLayout,
                   const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout, const MatmulAlgo* algo, void* workspace,
                   size_t workspace_bytes, void* stream);
  const char* (*status_string)(Status);
  Handle handle;  // created once for the current device, kept for the life of the process
  size_t version;  // cublasLtGetVersion(), e.g. 130100
  std::string path;  // the library file that was loaded
};

// The loaded API, or nullptr when no usable libcublasLt was found (load_error() says why). Thread-safe;
// the search runs once per process.
const Api* lt();
std::string load_error();

}  // namespace cublaslt
}  // namespace cuda
}  // namespace mamba
