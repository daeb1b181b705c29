// CPU embedding lookup and its scatter-add backward (EmbeddingParams in native/fused_params.h). The backward
// splits the embedding columns over threads and walks the ids in order for each column range, so every
// dweight element is summed in id order whatever the thread count.
#include <cstring>
#include <vector>

#include "fused_cpu.h"
#include "parallel.h"

namespace mamba {
namespace {

int64_t first_bad_id(const EmbeddingParams& p) {
  for (int64_t i = 0; i < p.n; ++i)
    if (p.ids[i] < 0 || p.ids[i] >= p.vocab) return i;
  return -1;
}

}  // namespace

int64_t embedding_fwd_cpu(const EmbeddingParams& p) {
  if (int64_t bad = first_bad_id(p); bad >= 0) return bad;
  const size_t row_bytes = static_cast<size_t>(p.dim) * dtype_size(p.dtype);
  parallel_for(p.n, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(static_cast<char*>(p.out) + i * row_bytes, static_cast<const char*>(p.weight) + p.ids[i] * row_bytes, row_bytes);
  });
  return -1;
}

int64_t embedding_bwd_cpu(const EmbeddingParams& p) {
  if (int64_t bad = first_bad_id(p); bad >= 0) return bad;
  const int64_t D = p.dim;
  std::vector<float> acc;
  float* dw;
  if (p.dtype == DType::Float32) {
    dw = static_cast<float*>(p.dweight);
  } else {
    acc.resize(static_cast<size_t>(p.vocab * D));
    dw = acc.data();
  }
  std::memset(dw, 0, static_cast<size_t>(p.vocab * D) * sizeof(float));
  parallel_for(D, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < p.n; ++i) {
      float* row = dw + static_cast<int64_t>(p.ids[i]) * D;
      for (int64_t c = c0; c < c1; ++c) row[c] += ld(p.dout, i * D + c, p.dtype);
    }
  });
  if (p.dtype != DType::Float32) {
    parallel_for(p.vocab * D, 4096, [&](int64_t a, int64_t b) {
      for (int64_t k = a; k < b; ++k) st(p.dweight, k, p.dtype, dw[k]);
    });
  }
  return -1;
}

}  // namespace mamba
