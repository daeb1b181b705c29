// Host entry points of the CUDA fused ops (RMSNorm, causal conv1d, embedding, cross-entropy, softplus + bias)
// over the params structs of native/fused_params.h (shapes and math there). Plain C++ so the N-API layer can
// include it without CUDA headers; `stream` is a cudaStream_t. Launchers enqueue on that stream, never
// synchronize, take scratch from the caching allocator and throw mamba::Error on launch failures.
// Sizes are assumed non-empty (the N-API layer handles empty tensors). Kernels: cuda/<op>.cu.
#pragma once
#include "../native/fused_params.h"

namespace mamba {

void rmsnorm_fwd_cuda(const RmsNormParams& p, void* stream);
void rmsnorm_bwd_cuda(const RmsNormParams& p, void* stream);
void conv1d_fwd_cuda(const Conv1dParams& p, void* stream);
void conv1d_bwd_cuda(const Conv1dParams& p, void* stream);
// Ids are not range-checked on the device (that would need a synchronisation): an out-of-range id gives a
// NaN output row in the forward and is skipped by the backward.
void embedding_fwd_cuda(const EmbeddingParams& p, void* stream);
void embedding_bwd_cuda(const EmbeddingParams& p, void* stream);
// Out-of-range targets (other than ignore_index) give a NaN loss and NaN gradient rows.
void cross_entropy_fwd_cuda(const CrossEntropyParams& p, void* stream);
void cross_entropy_bwd_cuda(const CrossEntropyParams& p, void* stream);
void softplus_bias_fwd_cuda(const SoftplusBiasParams& p, void* stream);
void softplus_bias_bwd_cuda(const SoftplusBiasParams& p, void* stream);

}  // namespace mamba
