// Elementwise ops with NumPy broadcasting (unary, unary backward, binary, where, broadcastTo) and sum
// over axes. Checks shapes/dtypes/devices, computes the broadcast shape and collapsed strides on the
// host, and dispatches to cpu/elementwise_cpu.cc or cuda/elementwise.cu. JS side: lib/ops/elementwise.ts,
// lib/ops/reduce.ts. Op codes: native/elementwise_ops.h.
#include <algorithm>
#include <string>
#include <vector>

#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/creation_cpu.h"
#include "../cpu/elementwise_cpu.h"
#ifdef MAMBA_WITH_CUDA
#include "../../cuda/elementwise.h"
#endif

namespace mamba {
namespace {

TensorHandle* float_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  TensorHandle* t = arg_tensor(info, i, fn, arg);
  if (t->dtype() == DType::Int32)
    fail(ErrorKind::DType, fn, arg, std::string(fn) + ": argument '" + arg + "' must be a float tensor but is int32");
  return t;
}

void same_device(const TensorHandle* a, const TensorHandle* b, const char* fn, const char* arg) {
  if (a->device() != b->device())
    fail(ErrorKind::Device, fn, arg, std::string(fn) + ": argument '" + arg + "' is on " + device_name(b->device()) + " but the first operand is on " + device_name(a->device()));
}

void same_dtype(const TensorHandle* a, const TensorHandle* b, const char* fn, const char* arg) {
  if (a->dtype() != b->dtype())
    fail(ErrorKind::DType, fn, arg, std::string(fn) + ": argument '" + arg + "' is " + dtype_name(b->dtype()) + " but the first operand is " + dtype_name(a->dtype()) + " (cast one of them)");
}

int arg_op(const Napi::CallbackInfo& info, size_t i, int count, const char* fn) {
  double v = arg_number(info, i, fn, "op");
  if (v < 0 || v >= count || v != static_cast<int>(v)) fail(ErrorKind::Argument, fn, "op", std::string(fn) + ": unknown op code");
  return static_cast<int>(v);
}

std::shared_ptr<Storage> alloc_like(Device dev, const std::vector<int64_t>& shape, DType dt, const char* fn) {
  return Storage::allocate(dev, static_cast<size_t>(shape_numel(shape)) * dtype_size(dt), fn);
}

// The broadcast of `shapes` (NumPy rules), or a ShapeError naming fn.
std::vector<int64_t> broadcast_shape(const std::vector<const std::vector<int64_t>*>& shapes, const char* fn) {
  size_t nd = 0;
  for (auto* s : shapes) nd = std::max(nd, s->size());
  std::vector<int64_t> out(nd, 1);
  for (auto* s : shapes) {
    for (size_t k = 0; k < s->size(); ++k) {
      int64_t v = (*s)[s->size() - 1 - k];
      int64_t& o = out[nd - 1 - k];
      if (v == o || v == 1) continue;
      if (o == 1) o = v;
      else {
        std::string msg = std::string(fn) + ": shapes";
        for (auto* t : shapes) msg += " " + shape_str(*t);
        fail(ErrorKind::Shape, fn, "shape", msg + " cannot be broadcast together");
      }
    }
  }
  return out;
}

// Per-input strides over `out` (0 where an input is broadcast), with adjacent dims merged where every
// input allows it. ndim 0 means all inputs have the output's shape (plain contiguous indexing).
BroadcastIndex make_index(const std::vector<int64_t>& out, const std::vector<const std::vector<int64_t>*>& ins, const char* fn) {
  BroadcastIndex bi;
  bool all_same = true;
  for (auto* s : ins) all_same = all_same && *s == out;
  if (all_same) return bi;
  const size_t nd = out.size();
  std::vector<std::vector<int64_t>> strides(ins.size(), std::vector<int64_t>(nd, 0));
  for (size_t k = 0; k < ins.size(); ++k) {
    const auto& s = *ins[k];
    int64_t st = 1;
    for (size_t j = 0; j < s.size(); ++j) {
      size_t d = nd - 1 - j;
      int64_t size = s[s.size() - 1 - j];
      strides[k][d] = size == 1 ? 0 : st;
      st *= size;
    }
  }
  std::vector<int64_t> shape;
  std::vector<std::vector<int64_t>> merged(ins.size());
  for (size_t d = 0; d < nd; ++d) {
    if (out[d] == 1) continue;  // size-1 dims contribute nothing
    bool can_merge = !shape.empty();
    for (size_t k = 0; k < ins.size() && can_merge; ++k) can_merge = merged[k].back() == strides[k][d] * out[d];
    if (can_merge) {
      shape.back() *= out[d];
      for (size_t k = 0; k < ins.size(); ++k) merged[k].back() = strides[k][d];
    } else {
      shape.push_back(out[d]);
      for (size_t k = 0; k < ins.size(); ++k) merged[k].push_back(strides[k][d]);
    }
  }
  if (shape.size() > static_cast<size_t>(kMaxDims))
    fail(ErrorKind::Shape, fn, "shape", std::string(fn) + ": broadcasting over more than 8 non-mergeable dims is not supported");
  bi.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < bi.ndim; ++d) {
    bi.shape[d] = shape[d];
    for (size_t k = 0; k < ins.size(); ++k) bi.stride[k][d] = merged[k][d];
  }
  if (bi.ndim == 0) bi.ndim = 1, bi.shape[0] = 1;  // a single element, possibly broadcast from size-1 dims
  return bi;
}

// unary(op, x, alpha, beta) -> f(x)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const char* fn = "unary";
  UnaryOp op = static_cast<UnaryOp>(arg_op(info, 0, kNumUnaryOps, fn));
  TensorHandle* x = float_tensor(info, 1, fn, "x");
  float alpha = static_cast<float>(arg_number(info, 2, fn, "alpha"));
  float beta = static_cast<float>(arg_number(info, 3, fn, "beta"));
  auto st = alloc_like(x->device(), x->shape(), x->dtype(), fn);
  if (x->device() == Device::CPU) unary_cpu(op, x->data(), x->dtype(), st->ptr, x->numel(), alpha, beta);
#ifdef MAMBA_WITH_CUDA
  else unary_cuda(op, x->data(), x->dtype(), st->ptr, x->numel(), alpha, beta);
#else
  else refuse_cuda(fn);
#endif
  return TensorHandle::Create(info.Env(), st, x->shape(), x->dtype());
}

// unaryBackward(op, x, grad, alpha, beta) -> grad * f'(x)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  const char* fn = "unaryBackward";
  UnaryOp op = static_cast<UnaryOp>(arg_op(info, 0, kNumUnaryOps, fn));
  TensorHandle* x = float_tensor(info, 1, fn, "x");
  TensorHandle* g = float_tensor(info, 2, fn, "grad");
  float alpha = static_cast<float>(arg_number(info, 3, fn, "alpha"));
  float beta = static_cast<float>(arg_number(info, 4, fn, "beta"));
  same_device(x, g, fn, "grad");
  same_dtype(x, g, fn, "grad");
  if (x->shape() != g->shape()) fail(ErrorKind::Shape, fn, "grad", std::string(fn) + ": grad shape " + shape_str(g->shape()) + " differs from " + shape_str(x->shape()));
  auto st = alloc_like(x->device(), x->shape(), x->dtype(), fn);
  if (x->device() == Device::CPU) unary_bwd_cpu(op, x->data(), g->data(), x->dtype(), st->ptr, x->numel(), alpha, beta);
#ifdef MAMBA_WITH_CUDA
  else unary_bwd_cuda(op, x->data(), g->data(), x->dtype(), st->ptr, x->numel(), alpha, beta);
#else
  else refuse_cuda(fn);
#endif
  return TensorHandle::Create(info.Env(), st, x->shape(), x->dtype());
}

// binary(op, a, b, fnName) -> a op b, broadcast
Napi::Value Binary(const Napi::CallbackInfo& info) {
  std::string name = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "binary";
  const char* fn = name.c_str();
  BinaryOp op = static_cast<BinaryOp>(arg_op(info, 0, kNumBinaryOps, fn));
  TensorHandle* a = float_tensor(info, 1, fn, "a");
  TensorHandle* b = float_tensor(info, 2, fn, "b");
  same_device(a, b, fn, "b");
  same_dtype(a, b, fn, "b");
  auto out_shape = broadcast_shape({&a->shape(), &b->shape()}, fn);
  BroadcastIndex bi = make_index(out_shape, {&a->shape(), &b->shape()}, fn);
  auto st = alloc_like(a->device(), out_shape, a->dtype(), fn);
  int64_t n = shape_numel(out_shape);
  if (a->device() == Device::CPU) binary_cpu(op, a->data(), b->data(), a->dtype(), st->ptr, n, bi);
#ifdef MAMBA_WITH_CUDA
  else binary_cuda(op, a->data(), b->data(), a->dtype(), st->ptr, n, bi);
#else
  else refuse_cuda(fn);
#endif
  return TensorHandle::Create(info.Env(), st, out_shape, a->dtype());
}

// broadcastTo(x, shape) -> x repeated along broadcast dims
Napi::Value BroadcastTo(const Napi::CallbackInfo& info) {
  const char* fn = "broadcastTo";
  TensorHandle* x = float_tensor(info, 0, fn, "x");
  auto shape = arg_shape(info, 1, fn, "shape");
  if (broadcast_shape({&x->shape(), &shape}, fn) != shape)
    fail(ErrorKind::Shape, fn, "shape", std::string(fn) + ": cannot broadcast " + shape_str(x->shape()) + " to " + shape_str(shape));
  BroadcastIndex bi = make_index(shape, {&x->shape(), &x->shape()}, fn);
  auto st = alloc_like(x->device(), shape, x->dtype(), fn);
  int64_t n = shape_numel(shape);
  if (x->device() == Device::CPU) binary_cpu(BinaryOp::Left, x->data(), x->data(), x->dtype(), st->ptr, n, bi);
#ifdef MAMBA_WITH_CUDA
  else binary_cuda(BinaryOp::Left, x->data(), x->data(), x->dtype(), st->ptr, n, bi);
#else
  else refuse_cuda(fn);
#endif
  return TensorHandle::Create(info.Env(), st, shape, x->dtype());
}

// where(cond, a, b) -> cond != 0 ? a : b, broadcast over all three
Napi::Value Where(const Napi::CallbackInfo& info) {
  const char* fn = "where";
  TensorHandle* c = arg_tensor(info, 0, fn, "cond");
  TensorHandle* a = float_tensor(info, 1, fn, "a");
  TensorHandle* b = float_tensor(info, 2, fn, "b");
  same_device(c, a, fn, "a");
  same_device(c, b, fn, "b");
  same_dtype(a, b, fn, "b");
  auto out_shape = broadcast_shape({&c->shape(), &a->shape(), &b->shape()}, fn);
  BroadcastIndex bi = make_index(out_shape, {&c->shape(), &a->shape(), &b->shape()}, fn);
  auto st = alloc_like(a->device(), out_shape, a->dtype(), fn);
  int64_t n = shape_numel(out_shape);
  if (a->device() == Device::CPU) where_cpu(c->data(), c->dtype(), a->data(), b->data(), a->dtype(), st->ptr, n, bi);
#ifdef MAMBA_WITH_CUDA
  else where_cuda(c->data(), c->dtype(), a->data(), b->data(), a->dtype(), st->ptr, n, bi);
#else
  else refuse_cuda(fn);
#endif
  return TensorHandle::Create(info.Env(), st, out_shape, a->dtype());
}

void run_sum(Device dev, const void* x, DType dt, void* out, int64_t outer, int64_t r, int64_t inner, const char* fn) {
  if (dev == Device::CPU) sum_cpu(x, dt, out, outer, r, inner);
#ifdef MAMBA_WITH_CUDA
  else sum_cuda(x, dt, out, outer, r, inner);
#else
  else refuse_cuda(fn);
#endif
  (void)fn;
}

void run_cast(Device dev, const void* x, DType from, void* out, DType to, int64_t n) {
  if (dev == Device::CPU) cast_cpu(x, from, out, to, n);
  else cuda::cast_cuda(x, from, out, to, n);
}

// sum(x, axes (sorted, unique, non-negative), keepDims) -> float32-accumulated sum in x's dtype
Napi::Value Sum(const Napi::CallbackInfo& info) {
  const char* fn = "sum";
  TensorHandle* x = float_tensor(info, 0, fn, "x");
  auto axes = arg_shape(info, 1, fn, "axes");
  if (info.Length() < 3 || !info[2].IsBoolean()) fail(ErrorKind::Argument, fn, "keepDims", "sum: argument 'keepDims' expected a boolean");
  bool keep = info[2].As<Napi::Boolean>().Value();
  const auto& in_shape = x->shape();
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] >= static_cast<int64_t>(in_shape.size()) || (i && axes[i] <= axes[i - 1]))
      fail(ErrorKind::Argument, fn, "axes", "sum: axes must be sorted, unique and within the tensor's rank");
  const Device dev = x->device();
  const DType dt = x->dtype();
  // Runs of adjacent axes, reduced last run first so earlier axis positions stay valid. With several
  // runs a 16-bit input is summed in float32 throughout and rounded once at the end.
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t a : axes) {
    if (!runs.empty() && runs.back().second == a) runs.back().second = a + 1;
    else runs.push_back({a, a + 1});
  }
  std::vector<int64_t> out_shape;
  for (size_t d = 0; d < in_shape.size(); ++d) {
    bool reduced = std::binary_search(axes.begin(), axes.end(), static_cast<int64_t>(d));
    if (!reduced) out_shape.push_back(in_shape[d]);
    else if (keep) out_shape.push_back(1);
  }
  auto out = alloc_like(dev, out_shape, dt, fn);
  if (runs.empty()) {
    if (dev == Device::CPU) std::memcpy(out->ptr, x->data(), x->nbytes());
    else cuda::copy_d2d(out->ptr, x->data(), x->nbytes());
    return TensorHandle::Create(info.Env(), out, out_shape, dt);
  }
  const DType work = runs.size() > 1 ? DType::Float32 : dt;
  std::shared_ptr<Storage> cur;
  const void* src = x->data();
  if (work != dt) {
    cur = alloc_like(dev, in_shape, work, fn);
    run_cast(dev, x->data(), dt, cur->ptr, work, x->numel());
    src = cur->ptr;
  }
  std::vector<int64_t> shape = in_shape;
  for (size_t k = runs.size(); k-- > 0;) {
    auto [lo, hi] = runs[k];
    int64_t outer = 1, r = 1, inner = 1;
    for (int64_t d = 0; d < lo; ++d) outer *= shape[d];
    for (int64_t d = lo; d < hi; ++d) r *= shape[d];
    for (size_t d = hi; d < shape.size(); ++d) inner *= shape[d];
    shape.erase(shape.begin() + lo, shape.begin() + hi);
    const bool last = k == 0;
    std::shared_ptr<Storage> next = (last && work == dt) ? out : alloc_like(dev, shape, work, fn);
    if (outer * inner > 0) {
      if (r == 0) {
        if (dev == Device::CPU) fill_cpu(next->ptr, outer * inner, work, 0.0);
        else cuda::fill_cuda(next->ptr, outer * inner, work, 0.0);
      } else {
        run_sum(dev, src, work, next->ptr, outer, r, inner, fn);
      }
    }
    cur = next;
    src = cur->ptr;
  }
  if (work != dt) run_cast(dev, src, work, out->ptr, dt, shape_numel(out_shape));
  return TensorHandle::Create(info.Env(), out, out_shape, dt);
}

}  // namespace

void InitElementwise(Napi::Env env, Napi::Object exports) {
  export_fn<Unary>(env, exports, "unary");
  export_fn<UnaryBackward>(env, exports, "unaryBackward");
  export_fn<Binary>(env, exports, "binary");
  export_fn<BroadcastTo>(env, exports, "broadcastTo");
  export_fn<Where>(env, exports, "where");
  export_fn<Sum>(env, exports, "sum");
}

}  // namespace mamba
