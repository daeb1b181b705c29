// CPU kernels of the fused ops over the params structs of native/fused_params.h (shapes and math there):
// rmsnorm_cpu.cc, conv1d_cpu.cc, embedding_cpu.cc, cross_entropy_cpu.cc, softplus_bias_cpu.cc.
// All accumulate in float32, run on parallel_for and reduce in an order fixed by the shape alone, so results
// are bitwise independent of the thread count. References: the float64 code in test/ops/<op>.test.ts.
#pragma once
#include <cstdint>

#include "../elem.h"
#include "../fused_params.h"

namespace mamba {

void rmsnorm_fwd_cpu(const RmsNormParams& p);
void rmsnorm_bwd_cpu(const RmsNormParams& p);
void conv1d_fwd_cpu(const Conv1dParams& p);
void conv1d_bwd_cpu(const Conv1dParams& p);
// Returns the index of the first id outside [0, vocab), or -1 when all are valid (then out is written).
int64_t embedding_fwd_cpu(const EmbeddingParams& p);
int64_t embedding_bwd_cpu(const EmbeddingParams& p);
// Returns the index of the first target outside [0, vocab) that is not ignore_index, or -1.
int64_t cross_entropy_fwd_cpu(const CrossEntropyParams& p);
void cross_entropy_bwd_cpu(const CrossEntropyParams& p);
void softplus_bias_fwd_cpu(const SoftplusBiasParams& p);
void softplus_bias_bwd_cpu(const SoftplusBiasParams& p);

// Element access for the CPU kernels (the per-element dtype switch is predictable and cheap next to the math).
inline float ld(const void* p, int64_t i, DType t) { return load_float(p, i, t); }
inline void st(void* p, int64_t i, DType t, float v) { store_double(p, i, t, static_cast<double>(v)); }

}  // namespace mamba
