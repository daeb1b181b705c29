// Layout kernels on the CPU, and the plain params structs they share with the CUDA launchers
// (cuda/shape.h): the strided copy behind permute, slice, expand, concat and the slice backward, and
// the (outer, index, inner) gather and scatter-add behind indexSelect and its backward. The copies move
// element bits unchanged (any dtype); only the scatter-add does arithmetic (float32 accumulation).
// JS side: lib/ops/shape.ts; tests: test/ops/shape.test.ts (float64 JS references).
#pragma once
#include <cstdint>
#include <vector>

#include "../dtype.h"

namespace mamba {

constexpr int kMaxCopyDims = 8;

// For every index (i_0 .. i_{ndim-1}) of `shape`:
//   dst[dst_offset + sum_d i_d * dst_strides[d]] = src[src_offset + sum_d i_d * src_strides[d]]
// Strides and offsets in elements, strides >= 0 (0 repeats, as in expand). Built by make_strided_copy,
// which merges dims so that most copies have one to three.
struct StridedCopyParams {
  int ndim = 0;
  int64_t shape[kMaxCopyDims] = {};
  int64_t src_strides[kMaxCopyDims] = {};
  int64_t dst_strides[kMaxCopyDims] = {};
  int64_t src_offset = 0, dst_offset = 0;
  int64_t numel = 0;
  int elem_bytes = 4;  // 2 or 4: bits are copied, never converted
  const void* src = nullptr;
  void* dst = nullptr;
};

// Fills `p` for a copy of any rank: drops size-1 dims and merges neighbours that are contiguous in
// both src and dst. Returns false when more than kMaxCopyDims dims remain (the caller reports it).
bool make_strided_copy(const std::vector<int64_t>& shape, const std::vector<int64_t>& src_strides, int64_t src_offset,
                       const std::vector<int64_t>& dst_strides, int64_t dst_offset, int elem_bytes, StridedCopyParams& p);

// Row-major strides (in elements) of a contiguous tensor of `shape`.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

// src viewed as (outer, rows, inner); index holds n_index int32 positions along rows, all in [0, rows).
// index_select: dst (outer, n_index, inner) = src[:, index[j], :]            (any dtype, bits copied)
// index_add:    dst (outer, rows, inner) = 0, then dst[:, index[j], :] += src (outer, n_index, inner)
//               in order of j with float32 accumulators (float dtypes): deterministic.
struct IndexParams {
  int64_t outer = 0, rows = 0, n_index = 0, inner = 0;
  DType dtype = DType::Float32;
  const void* src = nullptr;
  const int32_t* index = nullptr;
  void* dst = nullptr;
};

void strided_copy_cpu(const StridedCopyParams& p);
void index_select_cpu(const IndexParams& p);
void index_add_cpu(const IndexParams& p);
// The first j with index[j] outside [0, rows), or -1 when all are in range.
int64_t first_bad_index_cpu(const int32_t* index, int64_t n, int64_t rows);

}  // namespace mamba
