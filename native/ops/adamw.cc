// N-API layer of the fused AdamW step: `adamwStep(param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps,
// weightDecay, step, gradScale)`. param, expAvg and expAvgSq are float32 tensors of one shape and device and
// are UPDATED IN PLACE — the only op in the addon that writes into existing storage (tensors are otherwise
// immutable). Every handle sharing their storage (reshape views, detach(), tensors saved by a graph that was
// not yet run backward) sees the new values; lib/optim/adamw.ts owns the state tensors and is the only
// caller. grad has the same number of elements (any shape) in float32, float16 or bfloat16. The bias corrections are
// computed here in double, as PyTorch computes them in Python floats. Returns undefined.
// Also `multiNormSq(tensors[])`: the float32 sum of the squares of every element of a list of float tensors
// on one device, as a 0-d float32 tensor on that device (the squared global gradient norm of
// lib/optim/clip.ts; on CUDA one multi-tensor kernel, cuda/multi_norm.cu, with no host synchronization).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../../cuda/launch.h"
#include "../addon.h"
#include "../adamw_ops.h"
#include "../check.h"
#include "../cpu/adamw_cpu.h"
#ifdef MAMBA_WITH_CUDA
#include "../../cuda/adamw.h"
#include "../../cuda/multi_norm.h"
#endif
#include "../elem.h"

namespace mamba {
namespace {

TensorHandle* state_tensor(const Napi::CallbackInfo& info, size_t i, const TensorHandle* param, const char* fn, const char* arg) {
  TensorHandle* t = arg_tensor(info, i, fn, arg);
  if (t->dtype() != DType::Float32)
    fail(ErrorKind::DType, fn, arg, arg_prefix(fn, arg) + "expected dtype float32 but received " + dtype_name(t->dtype()));
  if (param && t->device() != param->device())
    fail(ErrorKind::Device, fn, arg, arg_prefix(fn, arg) + "is on " + device_name(t->device()) + " but the parameter is on " + device_name(param->device()));
  if (param && t->shape() != param->shape())
    fail(ErrorKind::Shape, fn, arg, arg_prefix(fn, arg) + "expected shape " + shape_str(param->shape()) + " but received " + shape_str(t->shape()));
  return t;
}

double finite_number(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  double v = arg_number(info, i, fn, arg);
  if (!std::isfinite(v)) fail(ErrorKind::Argument, fn, arg, arg_prefix(fn, arg) + "expected a finite number");
  return v;
}

Napi::Value AdamWStep(const Napi::CallbackInfo& info) {
  const char* fn = "adamwStep";
  TensorHandle* param = state_tensor(info, 0, nullptr, fn, "param");
  TensorHandle* grad = arg_tensor(info, 1, fn, "grad");
  if (!is_floating(grad->dtype()))
    fail(ErrorKind::DType, fn, "grad", arg_prefix(fn, "grad") + "expected a float dtype but received " + dtype_name(grad->dtype()));
  if (grad->device() != param->device())
    fail(ErrorKind::Device, fn, "grad", arg_prefix(fn, "grad") + "is on " + device_name(grad->device()) + " but the parameter is on " + device_name(param->device()));
  // Element counts, not shapes: both are contiguous, and lib/optim has already compared the JS shapes.
  if (grad->numel() != param->numel())
    fail(ErrorKind::Shape, fn, "grad", arg_prefix(fn, "grad") + "expected " + std::to_string(param->numel()) + " elements (shape " + shape_str(param->shape()) + ") but received shape " + shape_str(grad->shape()));
  TensorHandle* m = state_tensor(info, 2, param, fn, "expAvg");
  TensorHandle* v = state_tensor(info, 3, param, fn, "expAvgSq");
  if (param->numel() > 0 && (m->data() == v->data() || param->data() == m->data() || param->data() == v->data()))
    fail(ErrorKind::Argument, fn, "expAvg", std::string(fn) + ": param, expAvg and expAvgSq must not share storage");
  const double lr = finite_number(info, 4, fn, "lr");
  const double beta1 = finite_number(info, 5, fn, "beta1");
  const double beta2 = finite_number(info, 6, fn, "beta2");
  const double eps = finite_number(info, 7, fn, "eps");
  const double wd = finite_number(info, 8, fn, "weightDecay");
  const double step = finite_number(info, 9, fn, "step");
  const double scale = arg_number(info, 10, fn, "gradScale");
  if (lr < 0) fail(ErrorKind::Argument, fn, "lr", arg_prefix(fn, "lr") + "must be >= 0");
  if (beta1 < 0 || beta1 >= 1) fail(ErrorKind::Argument, fn, "beta1", arg_prefix(fn, "beta1") + "must be in [0, 1)");
  if (beta2 < 0 || beta2 >= 1) fail(ErrorKind::Argument, fn, "beta2", arg_prefix(fn, "beta2") + "must be in [0, 1)");
  if (eps < 0) fail(ErrorKind::Argument, fn, "eps", arg_prefix(fn, "eps") + "must be >= 0");
  if (wd < 0) fail(ErrorKind::Argument, fn, "weightDecay", arg_prefix(fn, "weightDecay") + "must be >= 0");
  if (step < 1 || step != std::floor(step)) fail(ErrorKind::Argument, fn, "step", arg_prefix(fn, "step") + "must be an integer >= 1");

  AdamWParams p;
  p.param = static_cast<float*>(param->data());
  p.exp_avg = static_cast<float*>(m->data());
  p.exp_avg_sq = static_cast<float*>(v->data());
  p.grad = grad->data();
  p.grad_dtype = grad->dtype();
  p.n = param->numel();
  p.decay = static_cast<float>(1.0 - lr * wd);
  p.beta1 = static_cast<float>(beta1);
  p.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  p.beta2 = static_cast<float>(beta2);
  p.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  p.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, step)));
  p.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step)));
  p.eps = static_cast<float>(eps);
  p.grad_scale = static_cast<float>(scale);
  if (p.n == 0) return info.Env().Undefined();
  if (param->device() == Device::CPU) adamw_step_cpu(p);
#ifdef MAMBA_WITH_CUDA
  else adamw_step_cuda(p);
#else
  else refuse_cuda(fn);
#endif
  return info.Env().Undefined();
}

// The CPU twin of cuda/multi_norm.cu's order: float32 partials over chunks of 64K elements, added in order.
float multi_norm_sq_cpu(const std::vector<const TensorHandle*>& ts) {
  constexpr int64_t kChunk = 65536;
  float total = 0.0f;
  for (const TensorHandle* t : ts) {
    const int64_t n = t->numel();
    for (int64_t b = 0; b < n; b += kChunk) {
      const int64_t e = std::min(n, b + kChunk);
      float acc = 0.0f;
      for (int64_t i = b; i < e; ++i) {
        const float v = load_float(t->data(), i, t->dtype());
        acc += v * v;
      }
      total += acc;
    }
  }
  return total;
}

// multiNormSq(tensors[]) -> 0-d float32 tensor: sum over all tensors of the squares of their elements.
Napi::Value MultiNormSq(const Napi::CallbackInfo& info) {
  const char* fn = "multiNormSq";
  if (info.Length() < 1 || !info[0].IsArray()) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "expected an array of tensors");
  Napi::Array arr = info[0].As<Napi::Array>();
  if (arr.Length() == 0) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "must hold at least one tensor");
  std::vector<const TensorHandle*> ts;
  ts.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!TensorHandle::Is(info.Env(), v)) fail(ErrorKind::Argument, fn, "tensors", arg_prefix(fn, "tensors") + "expected only tensor handles");
    const TensorHandle* t = TensorHandle::Unwrap(v.As<Napi::Object>());
    if (t->disposed()) fail(ErrorKind::Disposed, fn, "tensors", arg_prefix(fn, "tensors") + "holds a disposed tensor (index " + std::to_string(k) + ")");
    if (!is_floating(t->dtype()))
      fail(ErrorKind::DType, fn, "tensors", arg_prefix(fn, "tensors") + "expected float tensors but index " + std::to_string(k) + " is " + dtype_name(t->dtype()));
    if (!ts.empty() && t->device() != ts[0]->device())
      fail(ErrorKind::Device, fn, "tensors", arg_prefix(fn, "tensors") + "mixes devices: index " + std::to_string(k) + " is on " + device_name(t->device()) +
                                                " but index 0 is on " + device_name(ts[0]->device()));
    ts.push_back(t);
  }
  const Device dev = ts[0]->device();
  auto out = Storage::allocate(dev, sizeof(float), fn);
  if (dev == Device::CPU) {
    *static_cast<float*>(out->ptr) = multi_norm_sq_cpu(ts);
  } else {
#ifdef MAMBA_WITH_CUDA
    std::vector<MultiNormTensor> list;
    list.reserve(ts.size());
    for (const TensorHandle* t : ts) list.push_back({t->data(), t->numel(), t->dtype()});
    multi_norm_sq_cuda(list, static_cast<float*>(out->ptr));
#else
    refuse_cuda(fn);
#endif
  }
  return TensorHandle::Create(info.Env(), out, {}, DType::Float32);
}

}  // namespace

void InitAdamW(Napi::Env env, Napi::Object exports) {
  export_fn<AdamWStep>(env, exports, "adamwStep");
  export_fn<MultiNormSq>(env, exports, "multiNormSq");
}

}  // namespace mamba
