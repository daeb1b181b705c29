// CPU layout kernels (see shape_cpu.h). The strided copy walks each thread's range of the output in
// runs along the innermost merged dim (a memcpy when both sides are contiguous there). The scatter-add
// gives each thread whole columns of the output, so its order of accumulation never depends on the
// thread count.
#include "shape_cpu.h"

#include <algorithm>
#include <cstring>

#include "../elem.h"
#include "parallel.h"

namespace mamba {
namespace {

constexpr int64_t kCopyGrain = 1 << 16;

template <typename T>
void copy_range(const StridedCopyParams& p, int64_t begin, int64_t end) {
  const int last = p.ndim - 1;
  int64_t idx[kMaxCopyDims];
  int64_t rem = begin, so = p.src_offset, dof = p.dst_offset;
  for (int d = last; d >= 0; --d) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
    so += idx[d] * p.src_strides[d];
    dof += idx[d] * p.dst_strides[d];
  }
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  const int64_t ss = p.src_strides[last], ds = p.dst_strides[last];
  for (int64_t i = begin; i < end;) {
    const int64_t run = std::min(p.shape[last] - idx[last], end - i);
    if (ss == 1 && ds == 1) {
      std::memcpy(dst + dof, src + so, static_cast<size_t>(run) * sizeof(T));
    } else {
      for (int64_t k = 0; k < run; ++k) dst[dof + k * ds] = src[so + k * ss];
    }
    i += run;
    idx[last] += run;
    so += run * ss;
    dof += run * ds;
    for (int d = last; d > 0 && idx[d] == p.shape[d]; --d) {
      so += p.src_strides[d - 1] - p.shape[d] * p.src_strides[d];
      dof += p.dst_strides[d - 1] - p.shape[d] * p.dst_strides[d];
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
}

}  // namespace

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

bool make_strided_copy(const std::vector<int64_t>& shape, const std::vector<int64_t>& src_strides, int64_t src_offset,
                       const std::vector<int64_t>& dst_strides, int64_t dst_offset, int elem_bytes, StridedCopyParams& p) {
  p = StridedCopyParams{};
  p.src_offset = src_offset;
  p.dst_offset = dst_offset;
  p.elem_bytes = elem_bytes;
  p.numel = 1;
  for (int64_t s : shape) p.numel *= s;
  if (p.numel == 0) return true;
  std::vector<int64_t> ms, ma, mb;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!ms.empty() && ma.back() == src_strides[d] * shape[d] && mb.back() == dst_strides[d] * shape[d]) {
      ms.back() *= shape[d];
      ma.back() = src_strides[d];
      mb.back() = dst_strides[d];
    } else {
      ms.push_back(shape[d]);
      ma.push_back(src_strides[d]);
      mb.push_back(dst_strides[d]);
    }
  }
  if (ms.empty()) {  // a single element
    ms = {1};
    ma = {1};
    mb = {1};
  }
  if (ms.size() > static_cast<size_t>(kMaxCopyDims)) return false;
  p.ndim = static_cast<int>(ms.size());
  for (int d = 0; d < p.ndim; ++d) {
    p.shape[d] = ms[d];
    p.src_strides[d] = ma[d];
    p.dst_strides[d] = mb[d];
  }
  return true;
}

void strided_copy_cpu(const StridedCopyParams& p) {
  if (p.numel == 0) return;
  parallel_for(p.numel, kCopyGrain, [&](int64_t b, int64_t e) {
    if (p.elem_bytes == 2) copy_range<uint16_t>(p, b, e);
    else copy_range<uint32_t>(p, b, e);
  });
}

void index_select_cpu(const IndexParams& p) {
  const size_t row_bytes = static_cast<size_t>(p.inner) * dtype_size(p.dtype);
  if (row_bytes == 0) return;
  const char* src = static_cast<const char*>(p.src);
  char* dst = static_cast<char*>(p.dst);
  const int64_t grain = std::max<int64_t>(1, kCopyGrain / std::max<int64_t>(1, p.inner));
  parallel_for(p.outer * p.n_index, grain, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const int64_t o = k / p.n_index, j = k - o * p.n_index;
      std::memcpy(dst + k * row_bytes, src + (o * p.rows + p.index[j]) * row_bytes, row_bytes);
    }
  });
}

void index_add_cpu(const IndexParams& p) {
  const int64_t n_out = p.outer * p.rows * p.inner;
  if (n_out == 0) return;
  const bool direct = p.dtype == DType::Float32;
  std::vector<float> scratch(direct ? 0 : static_cast<size_t>(n_out));
  float* acc = direct ? static_cast<float*>(p.dst) : scratch.data();
  std::fill(acc, acc + n_out, 0.0f);
  // Tasks own (o, column tile) pairs: every column's sum is taken in order of j by one thread.
  constexpr int64_t kTile = 256;
  const int64_t tiles = (p.inner + kTile - 1) / kTile;
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    parallel_for(p.outer * tiles, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / tiles, c0 = (t - o * tiles) * kTile, c1 = std::min(p.inner, c0 + kTile);
        for (int64_t j = 0; j < p.n_index; ++j) {
          float* row = acc + (o * p.rows + p.index[j]) * p.inner;
          const int64_t src_row = (o * p.n_index + j) * p.inner;
          for (int64_t c = c0; c < c1; ++c) row[c] += load_t<DT>(p.src, src_row + c);
        }
      }
    });
    if (!direct) {
      parallel_for(n_out, kCopyGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) store_t<DT>(p.dst, i, acc[i]);
      });
    }
  });
}

int64_t first_bad_index_cpu(const int32_t* index, int64_t n, int64_t rows) {
  for (int64_t j = 0; j < n; ++j)
    if (index[j] < 0 || index[j] >= rows) return j;
  return -1;
}

}  // namespace mamba
