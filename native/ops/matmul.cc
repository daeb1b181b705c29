// The matmul op family: matmul(a, b, transA, transB) for a (..., M, K) @ b (..., K, N), and
// linear(x, weight, bias) = x @ weight^T + bias with weight (out, in) as in PyTorch; plus the switches
// that say and choose how CUDA runs them (cuBLASLt or the hand-written kernel). Validates, allocates the
// output, fills one MatmulParams and dispatches to the CPU kernel (cpu/matmul_cpu.cc) or the CUDA
// launcher (cuda/matmul.cu). JS side: lib/ops/matmul.ts. Reference: test/ops/matmul.test.ts.
//
// Batching: the leading dims of a and b must be equal, or one operand is 2-d and is broadcast over the
// other's batch (stride 0). A 2-d b under a batched, untransposed a (the linear case) is run as one
// GEMM with M = batch * rows, which is the same memory.
#include <string>
#include <vector>

#include "../addon.h"
#include "../check.h"
#include "../cpu/matmul_cpu.h"
#ifdef MAMBA_WITH_CUDA
#include "../../cuda/launch.h"
#include "../../cuda/matmul.h"
#endif

namespace mamba {
namespace {

void check_float(const TensorHandle* t, const char* fn, const char* arg) {
  if (!is_floating(t->dtype()))
    fail(ErrorKind::DType, fn, arg, arg_prefix(fn, arg) + "expected dtype float32, float16 or bfloat16 but received " + dtype_name(t->dtype()));
}

void check_same(const TensorHandle* t, const TensorHandle* ref, const char* fn, const char* arg, const char* ref_arg) {
  if (t->dtype() != ref->dtype())
    fail(ErrorKind::DType, fn, arg, arg_prefix(fn, arg) + "has dtype " + dtype_name(t->dtype()) + " but '" + ref_arg + "' has " + dtype_name(ref->dtype()));
  if (t->device() != ref->device())
    fail(ErrorKind::Device, fn, arg, arg_prefix(fn, arg) + "is on " + device_name(t->device()) + " but '" + ref_arg + "' is on " + device_name(ref->device()));
}

// Allocates the output (shape), runs p on the tensors' device and returns the handle.
Napi::Value run(Napi::Env env, MatmulParams& p, Device dev, const std::vector<int64_t>& shape, const char* fn) {
  auto out = Storage::allocate(dev, static_cast<size_t>(shape_numel(shape)) * dtype_size(p.dtype), fn);
  p.c = out->ptr;
  if (dev == Device::CPU) {
    matmul_cpu(p);
  } else {
#ifdef MAMBA_WITH_CUDA
    matmul_cuda(p, cuda::stream());
#else
    refuse_cuda(fn);
#endif
  }
  return TensorHandle::Create(env, out, shape, p.dtype);
}

// matmul(a, b, transA, transB) -> handle (..., M, N)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* fn = "matmul";
  TensorHandle* a = arg_tensor(info, 0, fn, "a");
  TensorHandle* b = arg_tensor(info, 1, fn, "b");
  const bool ta = arg_bool(info, 2, fn, "transA"), tb = arg_bool(info, 3, fn, "transB");
  check_float(a, fn, "a");
  check_same(b, a, fn, "b", "a");
  const auto &sa = a->shape(), &sb = b->shape();
  if (sa.size() < 2) fail(ErrorKind::Shape, fn, "a", arg_prefix(fn, "a") + "expected at least 2 dimensions but received " + shape_str(sa));
  if (sb.size() < 2) fail(ErrorKind::Shape, fn, "b", arg_prefix(fn, "b") + "expected at least 2 dimensions but received " + shape_str(sb));
  const size_t ra = sa.size(), rb = sb.size();
  MatmulParams p;
  p.dtype = a->dtype();
  p.trans_a = ta;
  p.trans_b = tb;
  p.M = ta ? sa[ra - 1] : sa[ra - 2];
  p.K = ta ? sa[ra - 2] : sa[ra - 1];
  const int64_t kb = tb ? sb[rb - 1] : sb[rb - 2];
  p.N = tb ? sb[rb - 2] : sb[rb - 1];
  if (kb != p.K)
    fail(ErrorKind::Shape, fn, "b",
         arg_prefix(fn, "b") + "has " + std::to_string(kb) + " rows (after transB) but 'a' has " + std::to_string(p.K) + " columns (after transA): shapes " +
             shape_str(sa) + " and " + shape_str(sb));
  std::vector<int64_t> batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2), batch;
  if (batch_a == batch_b || rb == 2) batch = batch_a;
  else if (ra == 2) batch = batch_b;
  else
    fail(ErrorKind::Shape, fn, "b",
         arg_prefix(fn, "b") + "has batch dims " + shape_str(batch_b) + " but 'a' has " + shape_str(batch_a) + " (they must be equal, or one operand 2-d)");
  p.batch = shape_numel(batch);
  p.a = a->data();
  p.b = b->data();
  p.stride_a = ra == 2 ? 0 : p.M * p.K;
  p.stride_b = rb == 2 ? 0 : p.K * p.N;
  if (p.stride_b == 0 && !ta && p.batch > 1) {
    p.M *= p.batch;
    p.batch = 1;
  }
  std::vector<int64_t> shape = batch;
  shape.push_back(ta ? sa[ra - 1] : sa[ra - 2]);
  shape.push_back(p.N);
  return run(info.Env(), p, a->device(), shape, fn);
}

// linear(x, weight, bias | null) -> handle (..., out): x (..., in), weight (out, in), bias (out).
Napi::Value Linear(const Napi::CallbackInfo& info) {
  const char* fn = "linear";
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  TensorHandle* w = arg_tensor(info, 1, fn, "weight");
  TensorHandle* bias = info.Length() > 2 && !info[2].IsNull() && !info[2].IsUndefined() ? arg_tensor(info, 2, fn, "bias") : nullptr;
  check_float(x, fn, "x");
  check_same(w, x, fn, "weight", "x");
  const auto &sx = x->shape(), &sw = w->shape();
  if (sx.empty()) fail(ErrorKind::Shape, fn, "x", arg_prefix(fn, "x") + "expected at least 1 dimension (..., in) but received " + shape_str(sx));
  if (sw.size() != 2 || sw[1] != sx.back())
    fail(ErrorKind::Shape, fn, "weight",
         arg_prefix(fn, "weight") + "expected shape (out, in=" + std::to_string(sx.back()) + ") but received " + shape_str(sw));
  MatmulParams p;
  p.dtype = x->dtype();
  p.K = sx.back();
  p.N = sw[0];
  p.M = shape_numel(std::vector<int64_t>(sx.begin(), sx.end() - 1));
  p.trans_b = true;
  p.a = x->data();
  p.b = w->data();
  if (bias) {
    check_same(bias, x, fn, "bias", "x");
    if (bias->shape() != std::vector<int64_t>{p.N})
      fail(ErrorKind::Shape, fn, "bias", arg_prefix(fn, "bias") + "expected shape [" + std::to_string(p.N) + "] but received " + shape_str(bias->shape()));
    p.bias = bias->data();
  }
  std::vector<int64_t> shape(sx.begin(), sx.end() - 1);
  shape.push_back(p.N);
  return run(info.Env(), p, x->device(), shape, fn);
}

// cublasAvailable() -> boolean: whether CUDA matmuls can use cuBLASLt (loads it on first call).
Napi::Value CublasAvailable(const Napi::CallbackInfo& info) {
#ifdef MAMBA_WITH_CUDA
  return Napi::Boolean::New(info.Env(), cublas_available());
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// cublasInfo() -> string: the cuBLASLt file and version, or why it is not used.
Napi::Value CublasInfo(const Napi::CallbackInfo& info) {
#ifdef MAMBA_WITH_CUDA
  return Napi::String::New(info.Env(), cublas_info());
#else
  return Napi::String::New(info.Env(), "this build of mamba-node has no CUDA support");
#endif
}

// setMatmulBackend('auto' | 'fallback') -> the previous setting. 'fallback' makes every CUDA matmul run
// the hand-written kernel (tests compare both paths).
Napi::Value SetMatmulBackend(const Napi::CallbackInfo& info) {
  const char* fn = "setMatmulBackend";
  std::string v = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (v != "auto" && v != "fallback") fail(ErrorKind::Argument, fn, "backend", arg_prefix(fn, "backend") + "expected 'auto' or 'fallback'");
#ifdef MAMBA_WITH_CUDA
  const bool was_fallback = matmul_backend() == MatmulBackend::Fallback;
  set_matmul_backend(v == "fallback" ? MatmulBackend::Fallback : MatmulBackend::Auto);
  return Napi::String::New(info.Env(), was_fallback ? "fallback" : "auto");
#else
  return Napi::String::New(info.Env(), "auto");
#endif
}

// matmulLastPath() -> 'cublasLt' | 'fallback' | '': what the last CUDA matmul ran.
Napi::Value MatmulLastPath(const Napi::CallbackInfo& info) {
#ifdef MAMBA_WITH_CUDA
  return Napi::String::New(info.Env(), matmul_last_path());
#else
  return Napi::String::New(info.Env(), "");
#endif
}

}  // namespace

void InitMatmul(Napi::Env env, Napi::Object exports) {
  export_fn<Matmul>(env, exports, "matmul");
  export_fn<Linear>(env, exports, "linear");
  export_fn<CublasAvailable>(env, exports, "cublasAvailable");
  export_fn<CublasInfo>(env, exports, "cublasInfo");
  export_fn<SetMatmulBackend>(env, exports, "setMatmulBackend");
  export_fn<MatmulLastPath>(env, exports, "matmulLastPath");
}

}  // namespace mamba
