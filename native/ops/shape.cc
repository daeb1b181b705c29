// The layout ops: stridedCopy (the one kernel behind permute, slice, expand and contiguous copies; the
// TypeScript layer computes the strides), concat, sliceScatter (a slice's backward: the slice put back
// into zeros), indexSelect and indexAdd (its backward). Every result is a new contiguous tensor.
// Checks here are the cheap second line (lib/ops/shape.ts validates first, naming the public function):
// offsets are bounds-checked so no argument can make a kernel read or write outside a tensor.
// Kernels: cpu/shape_cpu.cc, cuda/shape.cu. Tests: test/ops/shape.test.ts.
#include <string>
#include <vector>

#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/creation_cpu.h"
#include "../cpu/shape_cpu.h"
#ifdef MAMBA_WITH_CUDA
#include "../../cuda/shape.h"
#endif

namespace mamba {
namespace {

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  double v = arg_number(info, i, fn, arg);
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || v != static_cast<double>(static_cast<int64_t>(v)))
    fail(ErrorKind::Argument, fn, arg, arg_prefix(fn, arg) + "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(v);
}

// A normalized axis of a tensor of rank `rank` (negative counts from the end).
int arg_axis(const Napi::CallbackInfo& info, size_t i, const char* fn, int64_t rank) {
  int64_t a = arg_int(info, i, fn, "axis", -rank, rank - 1);
  return static_cast<int>(a < 0 ? a + rank : a);
}

void run_copy(const StridedCopyParams& p, Device dev, [[maybe_unused]] const char* fn) {
  if (dev == Device::CPU) return strided_copy_cpu(p);
#ifdef MAMBA_WITH_CUDA
  strided_copy_cuda(p);
#else
  refuse_cuda(fn);
#endif
}

StridedCopyParams copy_params(const std::vector<int64_t>& shape, const std::vector<int64_t>& src_strides, int64_t src_offset,
                              const std::vector<int64_t>& dst_strides, int64_t dst_offset, DType dt, const char* fn) {
  StridedCopyParams p;
  if (!make_strided_copy(shape, src_strides, src_offset, dst_strides, dst_offset, static_cast<int>(dtype_size(dt)), p))
    fail(ErrorKind::Shape, fn, "shape", std::string(fn) + ": the copy of shape " + shape_str(shape) + " has more than " +
                                            std::to_string(kMaxCopyDims) + " dims that cannot be merged");
  return p;
}

Napi::Object allocate(Napi::Env env, Device dev, const std::vector<int64_t>& shape, DType dt, const char* fn,
                      std::shared_ptr<Storage>& st) {
  st = Storage::allocate(dev, static_cast<size_t>(shape_numel(shape)) * dtype_size(dt), fn);
  return TensorHandle::Create(env, st, shape, dt);
}

// stridedCopy(x, shape, strides, offset) -> out (shape): out[i] = x[offset + sum_d i_d * strides[d]].
Napi::Value StridedCopy(const Napi::CallbackInfo& info) {
  const char* fn = "stridedCopy";
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  auto shape = arg_shape(info, 1, fn, "shape");
  auto strides = arg_shape(info, 2, fn, "strides");
  int64_t offset = arg_int(info, 3, fn, "offset", 0, x->numel());
  if (strides.size() != shape.size())
    fail(ErrorKind::Shape, fn, "strides", arg_prefix(fn, "strides") + "must have one entry per dim of " + shape_str(shape));
  const int64_t n = shape_numel(shape);
  if (n > 0) {
    int64_t last = offset;
    for (size_t d = 0; d < shape.size(); ++d) last += (shape[d] - 1) * strides[d];
    if (last >= x->numel())
      fail(ErrorKind::Shape, fn, "strides", arg_prefix(fn, "strides") + "reach element " + std::to_string(last) + " of a tensor of " +
                                                std::to_string(x->numel()));
  }
  auto p = copy_params(shape, strides, offset, contiguous_strides(shape), 0, x->dtype(), fn);
  std::shared_ptr<Storage> st;
  Napi::Object out = allocate(info.Env(), x->device(), shape, x->dtype(), fn, st);
  p.src = x->data();
  p.dst = st->ptr;
  run_copy(p, x->device(), fn);
  return out;
}

// concat(xs[], axis) -> out: the xs (same rank, dtype and device; equal sizes except along axis) joined along axis.
Napi::Value Concat(const Napi::CallbackInfo& info) {
  const char* fn = "concat";
  if (info.Length() < 1 || !info[0].IsArray()) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "expected an array of tensors");
  Napi::Array arr = info[0].As<Napi::Array>();
  if (arr.Length() == 0) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "must hold at least one tensor");
  std::vector<TensorHandle*> xs;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!TensorHandle::Is(info.Env(), v)) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "expected only tensor handles");
    TensorHandle* t = TensorHandle::Unwrap(v.As<Napi::Object>());
    if (t->disposed()) fail(ErrorKind::Disposed, fn, "tensors", arg_prefix(fn, "tensors") + "holds a disposed tensor");
    xs.push_back(t);
  }
  const TensorHandle* x0 = xs[0];
  const int64_t rank = static_cast<int64_t>(x0->shape().size());
  if (rank == 0) fail(ErrorKind::Shape, fn, "tensors", arg_prefix(fn, "tensors") + "cannot join 0-d tensors");
  const int axis = arg_axis(info, 1, fn, rank);
  std::vector<int64_t> shape = x0->shape();
  shape[axis] = 0;
  for (const TensorHandle* t : xs) {
    if (t->dtype() != x0->dtype()) fail(ErrorKind::DType, fn, "tensors", arg_prefix(fn, "tensors") + "mixes dtypes");
    if (t->device() != x0->device()) fail(ErrorKind::Device, fn, "tensors", arg_prefix(fn, "tensors") + "mixes devices");
    bool ok = t->shape().size() == x0->shape().size();
    for (int64_t d = 0; ok && d < rank; ++d) ok = d == axis || t->shape()[d] == x0->shape()[d];
    if (!ok)
      fail(ErrorKind::Shape, fn, "tensors", arg_prefix(fn, "tensors") + "has shapes " + shape_str(x0->shape()) + " and " + shape_str(t->shape()) +
                                                " that differ outside axis " + std::to_string(axis));
    shape[axis] += t->shape()[axis];
  }
  std::shared_ptr<Storage> st;
  Napi::Object out = allocate(info.Env(), x0->device(), shape, x0->dtype(), fn, st);
  const auto dst_strides = contiguous_strides(shape);
  int64_t offset = 0;
  for (const TensorHandle* t : xs) {
    auto p = copy_params(t->shape(), contiguous_strides(t->shape()), 0, dst_strides, offset * dst_strides[axis], t->dtype(), fn);
    p.src = t->data();
    p.dst = st->ptr;
    run_copy(p, t->device(), fn);
    offset += t->shape()[axis];
  }
  return out;
}

// sliceScatter(src, shape, starts) -> out (shape): zeros, with src at [starts, starts + src.shape).
Napi::Value SliceScatter(const Napi::CallbackInfo& info) {
  const char* fn = "sliceScatter";
  TensorHandle* src = arg_tensor(info, 0, fn, "src");
  auto shape = arg_shape(info, 1, fn, "shape");
  auto starts = arg_shape(info, 2, fn, "starts");
  if (shape.size() != src->shape().size() || starts.size() != shape.size())
    fail(ErrorKind::Shape, fn, "shape", arg_prefix(fn, "shape") + "and 'starts' must have the rank of src " + shape_str(src->shape()));
  for (size_t d = 0; d < shape.size(); ++d)
    if (starts[d] + src->shape()[d] > shape[d])
      fail(ErrorKind::Shape, fn, "starts", arg_prefix(fn, "starts") + shape_str(starts) + " put src " + shape_str(src->shape()) + " outside " + shape_str(shape));
  std::shared_ptr<Storage> st;
  Napi::Object out = allocate(info.Env(), src->device(), shape, src->dtype(), fn, st);
  const auto dst_strides = contiguous_strides(shape);
  int64_t offset = 0;
  for (size_t d = 0; d < shape.size(); ++d) offset += starts[d] * dst_strides[d];
  auto p = copy_params(src->shape(), contiguous_strides(src->shape()), 0, dst_strides, offset, src->dtype(), fn);
  p.src = src->data();
  p.dst = st->ptr;
  const int64_t n = shape_numel(shape);
  if (src->device() == Device::CPU) {
    fill_cpu(st->ptr, n, src->dtype(), 0.0);
  } else {
#ifdef MAMBA_WITH_CUDA
    cuda::fill_cuda(st->ptr, n, src->dtype(), 0.0);
#else
    refuse_cuda(fn);
#endif
  }
  run_copy(p, src->device(), fn);
  return out;
}

// Shared checks of indexSelect / indexAdd: index is a 1-d int32 tensor on x's device, all in [0, rows).
IndexParams index_params(TensorHandle* x, int axis, TensorHandle* index, int64_t rows, const char* fn) {
  if (index->dtype() != DType::Int32) fail(ErrorKind::DType, fn, "index", arg_prefix(fn, "index") + "expected dtype int32 but received " + dtype_name(index->dtype()));
  if (index->shape().size() != 1) fail(ErrorKind::Shape, fn, "index", arg_prefix(fn, "index") + "expected a 1-d tensor but received shape " + shape_str(index->shape()));
  if (index->device() != x->device())
    fail(ErrorKind::Device, fn, "index", arg_prefix(fn, "index") + "is on " + device_name(index->device()) + " but x is on " + device_name(x->device()));
  IndexParams p;
  p.outer = 1;
  for (int d = 0; d < axis; ++d) p.outer *= x->shape()[d];
  p.inner = 1;
  for (size_t d = axis + 1; d < x->shape().size(); ++d) p.inner *= x->shape()[d];
  p.rows = rows;
  p.n_index = index->numel();
  p.dtype = x->dtype();
  p.index = static_cast<const int32_t*>(index->data());
  int64_t bad = -1;
  if (index->device() == Device::CPU) {
    bad = first_bad_index_cpu(p.index, p.n_index, rows);
  } else {
#ifdef MAMBA_WITH_CUDA
    bad = first_bad_index_cuda(p.index, p.n_index, rows);
#else
    refuse_cuda(fn);
#endif
  }
  if (bad >= 0) {
    int32_t v = 0;
    if (index->device() == Device::CPU) v = p.index[bad];
    else cuda::copy_d2h(&v, p.index + bad, sizeof(v));
    fail(ErrorKind::Argument, fn, "index", arg_prefix(fn, "index") + "holds " + std::to_string(v) + " at position " + std::to_string(bad) +
                                              ", outside [0, " + std::to_string(rows) + ")");
  }
  return p;
}

// indexSelect(x, axis, index) -> out: x with axis replaced by index.length, out[.., j, ..] = x[.., index[j], ..].
Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  const char* fn = "indexSelect";
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  const int64_t rank = static_cast<int64_t>(x->shape().size());
  if (rank == 0) fail(ErrorKind::Shape, fn, "x", arg_prefix(fn, "x") + "must have at least one dim");
  const int axis = arg_axis(info, 1, fn, rank);
  TensorHandle* index = arg_tensor(info, 2, fn, "index");
  IndexParams p = index_params(x, axis, index, x->shape()[axis], fn);
  std::vector<int64_t> shape = x->shape();
  shape[axis] = p.n_index;
  std::shared_ptr<Storage> st;
  Napi::Object out = allocate(info.Env(), x->device(), shape, x->dtype(), fn, st);
  p.src = x->data();
  p.dst = st->ptr;
  if (x->device() == Device::CPU) {
    index_select_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    index_select_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  return out;
}

// indexAdd(src, axis, index, size) -> out: zeros of src's shape with axis = size, then
// out[.., index[j], ..] += src[.., j, ..] (float dtypes; float32 accumulation in order of j).
Napi::Value IndexAdd(const Napi::CallbackInfo& info) {
  const char* fn = "indexAdd";
  TensorHandle* src = arg_tensor(info, 0, fn, "src");
  const int64_t rank = static_cast<int64_t>(src->shape().size());
  if (rank == 0) fail(ErrorKind::Shape, fn, "src", arg_prefix(fn, "src") + "must have at least one dim");
  if (!is_floating(src->dtype())) fail(ErrorKind::DType, fn, "src", arg_prefix(fn, "src") + "must be float32, float16 or bfloat16");
  const int axis = arg_axis(info, 1, fn, rank);
  TensorHandle* index = arg_tensor(info, 2, fn, "index");
  const int64_t size = arg_int(info, 3, fn, "size", 0, INT32_MAX);
  if (index->numel() != src->shape()[axis])
    fail(ErrorKind::Shape, fn, "index", arg_prefix(fn, "index") + "has " + std::to_string(index->numel()) + " entries but src has " +
                                           std::to_string(src->shape()[axis]) + " along axis " + std::to_string(axis));
  IndexParams p = index_params(src, axis, index, size, fn);
  std::vector<int64_t> shape = src->shape();
  shape[axis] = size;
  std::shared_ptr<Storage> st;
  Napi::Object out = allocate(info.Env(), src->device(), shape, src->dtype(), fn, st);
  p.src = src->data();
  p.dst = st->ptr;
  if (src->device() == Device::CPU) {
    index_add_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    index_add_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  return out;
}

}  // namespace

void InitShape(Napi::Env env, Napi::Object exports) {
  export_fn<StridedCopy>(env, exports, "stridedCopy");
  export_fn<Concat>(env, exports, "concat");
  export_fn<SliceScatter>(env, exports, "sliceScatter");
  export_fn<IndexSelect>(env, exports, "indexSelect");
  export_fn<IndexAdd>(env, exports, "indexAdd");
}

}  // namespace mamba
