// CUDA layout kernels (declarations in shape.h, params in native/cpu/shape_cpu.h). The strided copy is
// one thread per output element, decomposing the linear index over at most 8 merged dims (32-bit index
// math when everything fits). The scatter-add gives one thread a whole output column (o, i) and walks
// the index in order, so it needs no atomics and is deterministic; its parallelism is outer * inner.
#include <climits>

#include "../native/elem.h"
#include "common.cuh"
#include "launch.h"
#include "shape.h"

namespace mamba {
namespace {

cudaStream_t S() { return static_cast<cudaStream_t>(cuda::stream()); }

template <typename T, typename I>
__global__ void strided_copy_kernel(StridedCopyParams p) {
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  const I n = static_cast<I>(p.numel);
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I rem = i, so = static_cast<I>(p.src_offset), dof = static_cast<I>(p.dst_offset);
    for (int d = p.ndim - 1; d >= 0; --d) {
      const I size = static_cast<I>(p.shape[d]);
      const I q = rem / size, c = rem - q * size;
      rem = q;
      so += c * static_cast<I>(p.src_strides[d]);
      dof += c * static_cast<I>(p.dst_strides[d]);
    }
    dst[dof] = src[so];
  }
}

template <typename T>
__global__ void index_select_kernel(IndexParams p) {
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  const int64_t n = p.outer * p.n_index * p.inner, per_outer = p.n_index * p.inner;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = k / per_outer, rem = k - o * per_outer, j = rem / p.inner, i = rem - j * p.inner;
    dst[k] = src[(o * p.rows + p.index[j]) * p.inner + i];
  }
}

template <DType DT>
__global__ void index_add_kernel(IndexParams p, float* acc) {
  const int64_t cols = p.outer * p.inner;
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = c / p.inner, i = c - o * p.inner;
    for (int64_t j = 0; j < p.n_index; ++j)
      acc[(o * p.rows + p.index[j]) * p.inner + i] += load_t<DT>(p.src, (o * p.n_index + j) * p.inner + i);
  }
}

template <DType DT>
__global__ void store_from_f32_kernel(const float* src, void* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store_t<DT>(dst, i, src[i]);
}

__global__ void first_bad_index_kernel(const int32_t* index, int64_t n, int64_t rows, unsigned long long* first) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n; j += int64_t(gridDim.x) * blockDim.x)
    if (index[j] < 0 || index[j] >= rows) atomicMin(first, static_cast<unsigned long long>(j));
}

// Whether every offset the copy touches fits in int32 (then the kernel divides in 32 bits).
bool fits_i32(const StridedCopyParams& p) {
  int64_t src_max = p.src_offset, dst_max = p.dst_offset;
  for (int d = 0; d < p.ndim; ++d) {
    src_max += (p.shape[d] - 1) * p.src_strides[d];
    dst_max += (p.shape[d] - 1) * p.dst_strides[d];
  }
  const int64_t lim = INT_MAX / 2;  // room for the grid-stride step past the end
  return p.numel < lim && src_max < lim && dst_max < lim;
}

}  // namespace

void strided_copy_cuda(const StridedCopyParams& p) {
  if (p.numel == 0) return;
  const unsigned grid = cuda::grid_for(p.numel);
  if (p.elem_bytes == 2) {
    if (fits_i32(p)) strided_copy_kernel<uint16_t, int32_t><<<grid, 256, 0, S()>>>(p);
    else strided_copy_kernel<uint16_t, int64_t><<<grid, 256, 0, S()>>>(p);
  } else {
    if (fits_i32(p)) strided_copy_kernel<uint32_t, int32_t><<<grid, 256, 0, S()>>>(p);
    else strided_copy_kernel<uint32_t, int64_t><<<grid, 256, 0, S()>>>(p);
  }
  cuda::check_last("stridedCopy");
}

void index_select_cuda(const IndexParams& p) {
  const int64_t n = p.outer * p.n_index * p.inner;
  if (n == 0) return;
  if (dtype_size(p.dtype) == 2) index_select_kernel<uint16_t><<<cuda::grid_for(n), 256, 0, S()>>>(p);
  else index_select_kernel<uint32_t><<<cuda::grid_for(n), 256, 0, S()>>>(p);
  cuda::check_last("indexSelect");
}

void index_add_cuda(const IndexParams& p) {
  const int64_t n_out = p.outer * p.rows * p.inner;
  if (n_out == 0) return;
  const bool direct = p.dtype == DType::Float32;
  float* acc = static_cast<float*>(direct ? p.dst : cuda::alloc(static_cast<size_t>(n_out) * 4, "indexAdd"));
  cuda::check(cudaMemsetAsync(acc, 0, static_cast<size_t>(n_out) * 4, S()), "indexAdd");
  const int64_t cols = p.outer * p.inner;
  dispatch_float(p.dtype, [&](auto c) {
    constexpr DType DT = decltype(c)::value;
    if (cols > 0 && p.n_index > 0) index_add_kernel<DT><<<cuda::grid_for(cols), 256, 0, S()>>>(p, acc);
    if (!direct) store_from_f32_kernel<DT><<<cuda::grid_for(n_out), 256, 0, S()>>>(acc, p.dst, n_out);
  });
  cuda::check_last("indexAdd");
  if (!direct) cuda::free(acc);  // stream-ordered: reused only after the kernels above
}

int64_t first_bad_index_cuda(const int32_t* index, int64_t n, int64_t rows) {
  if (n == 0) return -1;
  auto* first = static_cast<unsigned long long*>(cuda::alloc(sizeof(unsigned long long), "indexSelect"));
  cuda::check(cudaMemsetAsync(first, 0xff, sizeof(unsigned long long), S()), "indexSelect");
  first_bad_index_kernel<<<cuda::grid_for(n), 256, 0, S()>>>(index, n, rows, first);
  cuda::check_last("indexSelect");
  unsigned long long host = 0;
  cuda::copy_d2h(&host, first, sizeof(host));
  cuda::free(first);
  return host == ~0ull ? -1 : static_cast<int64_t>(host);
}

}  // namespace mamba
