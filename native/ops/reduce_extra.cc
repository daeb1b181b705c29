// Axis reductions and softmax: reduceAxes (max, min with their int32 positions, logsumexp over a
// block of adjacent axes [start, end)), softmax / logSoftmax along one axis and their backward, and
// argScatter (the backward of max/min). lib/ops/reduce_extra.ts validates first (axes, keepDims,
// permuting non-adjacent axes together); these checks are the cheap second line.
// Kernels: cpu/reduce_extra_cpu.cc, cuda/reduce_extra.cu. Tests: test/ops/reduce_extra.test.ts.
#include <climits>
#include <string>
#include <vector>

#include "../addon.h"
#include "../check.h"
#include "../cpu/reduce_extra_cpu.h"
#ifdef MAMBA_WITH_CUDA
#include "../../cuda/reduce_extra.h"
#endif

namespace mamba {
namespace {

int64_t arg_index(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  double v = arg_number(info, i, fn, arg);
  if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || v != static_cast<double>(static_cast<int64_t>(v)))
    fail(ErrorKind::Argument, fn, arg, arg_prefix(fn, arg) + "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int64_t>(v);
}

int64_t prod(const std::vector<int64_t>& s, size_t b, size_t e) {
  int64_t n = 1;
  for (size_t d = b; d < e; ++d) n *= s[d];
  return n;
}

// reduceAxes(x, op, start, end, withIndex) -> [values, index | null]: x reduced over its axes
// [start, end); op is 'max', 'min' or 'logsumexp'; index (int32, the same shape as values)
// for max / min when withIndex.
Napi::Value ReduceAxes(const Napi::CallbackInfo& info) {
  const char* fn = "reduceAxes";
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  expect_float(x, fn, "x");
  if (info.Length() < 2 || !info[1].IsString()) fail(ErrorKind::Argument, fn, "op", arg_prefix(fn, "op") + "expected a string");
  const std::string name = info[1].As<Napi::String>().Utf8Value();
  AxisReduceParams p;
  if (name == "max") p.op = AxisReduceOp::Max;
  else if (name == "min") p.op = AxisReduceOp::Min;
  else if (name == "logsumexp") p.op = AxisReduceOp::LogSumExp;
  else fail(ErrorKind::Argument, fn, "op", arg_prefix(fn, "op") + "expected 'max', 'min' or 'logsumexp' but received '" + name + "'");
  const auto& shape = x->shape();
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t start = arg_index(info, 2, fn, "start", 0, rank);
  const int64_t end = arg_index(info, 3, fn, "end", start, rank);
  const bool arg_op = p.op == AxisReduceOp::Max || p.op == AxisReduceOp::Min;
  const bool with_index = arg_bool(info, 4, fn, "withIndex") && arg_op;
  p.outer = prod(shape, 0, start);
  p.R = prod(shape, start, end);
  p.inner = prod(shape, end, shape.size());
  p.dtype = x->dtype();
  std::vector<int64_t> out_shape(shape.begin(), shape.begin() + start);
  out_shape.insert(out_shape.end(), shape.begin() + end, shape.end());
  if (arg_op && p.R == 0 && p.outer * p.inner > 0)
    fail(ErrorKind::Shape, name, "x", name + ": cannot take the " + name + " over axes of size 0 (shape " + shape_str(shape) + ")");
  if (arg_op && p.R > INT32_MAX) fail(ErrorKind::Shape, name, "x", name + ": the reduced axes hold more than 2^31 - 1 elements");

  Napi::Env env = info.Env();
  const int64_t n_out = p.outer * p.inner;
  auto st = Storage::allocate(x->device(), static_cast<size_t>(n_out) * dtype_size(p.dtype), fn);
  Napi::Value values = TensorHandle::Create(env, st, out_shape, p.dtype);
  Napi::Value index = env.Null();
  if (with_index) {
    auto ist = Storage::allocate(x->device(), static_cast<size_t>(n_out) * 4, fn);
    index = TensorHandle::Create(env, ist, out_shape, DType::Int32);
    p.index = static_cast<int32_t*>(ist->ptr);
  }
  p.x = x->data();
  p.out = st->ptr;
  if (x->device() == Device::CPU) {
    axis_reduce_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    axis_reduce_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(uint32_t{0}, values);
  result.Set(uint32_t{1}, index);
  return result;
}

SoftmaxParams softmax_params(const TensorHandle* x, int64_t axis, bool log) {
  SoftmaxParams p;
  const auto& s = x->shape();
  p.outer = prod(s, 0, axis);
  p.R = s[axis];
  p.inner = prod(s, axis + 1, s.size());
  p.dtype = x->dtype();
  p.log = log;
  return p;
}

int64_t arg_axis(const Napi::CallbackInfo& info, size_t i, const char* fn, const TensorHandle* x) {
  const int64_t rank = static_cast<int64_t>(x->shape().size());
  if (rank == 0) fail(ErrorKind::Shape, fn, "x", arg_prefix(fn, "x") + "must have at least one dim");
  const int64_t a = arg_index(info, i, fn, "axis", -rank, rank - 1);
  return a < 0 ? a + rank : a;
}

// softmax(x, axis, log) -> softmax (or log_softmax when log) of x along axis, in x's dtype.
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  TensorHandle* x = arg_tensor(info, 0, "softmax", "x");
  const bool log = arg_bool(info, 2, "softmax", "log");
  const char* fn = log ? "logSoftmax" : "softmax";
  expect_float(x, fn, "x");
  SoftmaxParams p = softmax_params(x, arg_axis(info, 1, fn, x), log);
  auto st = Storage::allocate(x->device(), x->nbytes(), fn);
  p.x = x->data();
  p.out = st->ptr;
  if (x->device() == Device::CPU) {
    softmax_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    softmax_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  return TensorHandle::Create(info.Env(), st, x->shape(), x->dtype());
}

// softmaxBackward(y, g, axis, log) -> dx, from the forward's output y and its gradient g (same shape).
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* fn = "softmaxBackward";
  TensorHandle* y = arg_tensor(info, 0, fn, "y");
  TensorHandle* g = arg_tensor(info, 1, fn, "g");
  expect_float(y, fn, "y");
  if (g->shape() != y->shape()) fail(ErrorKind::Shape, fn, "g", arg_prefix(fn, "g") + "has shape " + shape_str(g->shape()) + " but y has " + shape_str(y->shape()));
  if (g->dtype() != y->dtype()) fail(ErrorKind::DType, fn, "g", arg_prefix(fn, "g") + "has dtype " + dtype_name(g->dtype()) + " but y has " + dtype_name(y->dtype()));
  if (g->device() != y->device()) fail(ErrorKind::Device, fn, "g", arg_prefix(fn, "g") + "is on " + device_name(g->device()) + " but y is on " + device_name(y->device()));
  SoftmaxParams p = softmax_params(y, arg_axis(info, 2, fn, y), arg_bool(info, 3, fn, "log"));
  auto st = Storage::allocate(y->device(), y->nbytes(), fn);
  p.x = y->data();
  p.g = g->data();
  p.out = st->ptr;
  if (y->device() == Device::CPU) {
    softmax_bwd_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    softmax_bwd_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  return TensorHandle::Create(info.Env(), st, y->shape(), y->dtype());
}

// argScatter(g, index, shape, axis) -> out (shape): zeros except out[.., index[k], ..] = g[k] along
// axis, where g and index have `shape` without that axis (index int32 in [0, shape[axis])).
Napi::Value ArgScatter(const Napi::CallbackInfo& info) {
  const char* fn = "argScatter";
  TensorHandle* g = arg_tensor(info, 0, fn, "g");
  TensorHandle* index = arg_tensor(info, 1, fn, "index");
  auto shape = arg_shape(info, 2, fn, "shape");
  expect_float(g, fn, "g");
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (rank == 0) fail(ErrorKind::Shape, fn, "shape", arg_prefix(fn, "shape") + "must have at least one dim");
  const int64_t axis = arg_index(info, 3, fn, "axis", 0, rank - 1);
  ArgScatterParams p;
  p.outer = prod(shape, 0, axis);
  p.R = shape[axis];
  p.inner = prod(shape, axis + 1, shape.size());
  if (g->numel() != p.outer * p.inner || index->numel() != g->numel())
    fail(ErrorKind::Shape, fn, "g", arg_prefix(fn, "g") + "and 'index' must hold " + std::to_string(p.outer * p.inner) + " elements");
  if (index->dtype() != DType::Int32) fail(ErrorKind::DType, fn, "index", arg_prefix(fn, "index") + "must be int32");
  if (index->device() != g->device()) fail(ErrorKind::Device, fn, "index", arg_prefix(fn, "index") + "is on another device than g");
  p.dtype = g->dtype();
  auto st = Storage::allocate(g->device(), static_cast<size_t>(shape_numel(shape)) * dtype_size(p.dtype), fn);
  p.g = g->data();
  p.index = static_cast<const int32_t*>(index->data());
  p.out = st->ptr;
  if (g->device() == Device::CPU) {
    arg_scatter_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    arg_scatter_cuda(p);
#else
    refuse_cuda(fn);
#endif
  }
  return TensorHandle::Create(info.Env(), st, shape, p.dtype);
}

}  // namespace

void InitReduceExtra(Napi::Env env, Napi::Object exports) {
  export_fn<ReduceAxes>(env, exports, "reduceAxes");
  export_fn<Softmax>(env, exports, "softmax");
  export_fn<SoftmaxBackward>(env, exports, "softmaxBackward");
  export_fn<ArgScatter>(env, exports, "argScatter");
}

}  // namespace mamba
