// The matmul parameters shared by the N-API layer (native/ops/matmul.cc), the CPU kernel
// (matmul_cpu.cc) and the CUDA launchers (cuda/matmul.cu), and the CPU kernel's entry point.
// Plain C++: no napi.h, no CUDA headers.
//
// For each batch index b:  C[b] (M, N) = op(A[b]) (M, K) @ op(B[b]) (K, N)  (+ bias (N) on every row),
// all row-major and contiguous. A[b] is stored (M, K), or (K, M) when trans_a; B[b] is stored (K, N),
// or (N, K) when trans_b. The batch strides count elements; a stride of 0 broadcasts one matrix over
// the batch. Accumulation is float32 for every dtype; float16 / bfloat16 inputs are converted with
// native/half.h and the float32 result (bias added) is rounded once to the output dtype.
#pragma once
#include <cstdint>

#include "../dtype.h"

namespace mamba {

struct MatmulParams {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  DType dtype = DType::Float32;  // of a, b, bias and c
  const void* a = nullptr;
  int64_t stride_a = 0;  // elements between A[b] and A[b + 1]; 0 when broadcast
  const void* b = nullptr;
  int64_t stride_b = 0;
  const void* bias = nullptr;  // (N) or nullptr
  void* c = nullptr;           // (batch, M, N), contiguous
};

// Blocked, multithreaded (parallel_for over output tiles); each output element is summed over k in
// the same order whatever the thread count, so results are deterministic.
void matmul_cpu(const MatmulParams& p);

}  // namespace mamba
