// CUDA matmul / linear launcher (cuda/matmul.cu): plain C++ declarations for the N-API layer
// (native/ops/matmul.cc), no CUDA headers. Shapes and layouts: MatmulParams in native/cpu/matmul_cpu.h.
#pragma once
#include <string>

#include "../native/cpu/matmul_cpu.h"

namespace mamba {

// Enqueues C = op(A) @ op(B) (+ bias) on `stream` (a cudaStream_t), float32 accumulation. Runs cuBLASLt
// (loaded at run time, cuda/cublas_loader.h) unless it is absent, has no algorithm for the problem, or the
// fallback is forced; then a hand-written tiled kernel. Never synchronizes; throws mamba::Error on failure.
void matmul_cuda(const MatmulParams& p, void* stream);

// Which implementation matmul_cuda uses: Auto = cuBLASLt when available, Fallback = always the hand-written
// kernel (for tests and comparison). The initial value is Fallback when MAMBA_MATMUL_FALLBACK=1.
enum class MatmulBackend { Auto = 0, Fallback = 1 };
void set_matmul_backend(MatmulBackend b);
MatmulBackend matmul_backend();

// What ran in the last matmul_cuda call: "cublasLt", "fallback", or "" before the first call.
const char* matmul_last_path();

// Whether libcublasLt could be loaded (loads it on first call); cublas_info() gives the file and version,
// or the reason it is unavailable.
bool cublas_available();
std::string cublas_info();

}  // namespace mamba
