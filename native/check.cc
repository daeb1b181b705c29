// Argument readers and the C++ -> JS error translation (see check.h).
#include "check.h"

#include <cmath>

#include "addon.h"

namespace mamba {

Napi::Error to_js_error(Napi::Env env, const Error& e) {
  Addon& a = addon(env);
  size_t k = static_cast<size_t>(e.kind);
  std::string msg = e.what();
  if (k < a.error_ctors.size() && !a.error_ctors[k].IsEmpty()) {
    Napi::Object opts = Napi::Object::New(env);
    if (!e.fn.empty()) opts.Set("fn", e.fn);
    if (!e.arg.empty()) opts.Set("arg", e.arg);
    Napi::Object err = a.error_ctors[k].New({Napi::String::New(env, msg), opts});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("kind", Napi::Number::New(env, static_cast<double>(k)));
  return err;
}

void report_external_memory(Napi::Env env) {
  int64_t d = take_external_delta();
  if (d != 0) Napi::MemoryManagement::AdjustExternalMemory(env, d);
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void refuse_cuda(const char* fn) {
  fail(ErrorKind::Device, fn, "device", std::string(fn) + ": this build of mamba-node has no CUDA support");
}

const char* device_name(Device d) { return d == Device::CUDA ? "cuda" : "cpu"; }

std::string arg_prefix(const char* fn, const char* arg) { return std::string(fn) + ": argument '" + arg + "' "; }

static std::string prefix(const char* fn, const char* arg) { return arg_prefix(fn, arg); }

TensorHandle* arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !TensorHandle::Is(env, info[i]))
    fail(ErrorKind::Argument, fn, arg, prefix(fn, arg) + "expected a tensor handle");
  TensorHandle* t = TensorHandle::Unwrap(info[i].As<Napi::Object>());
  if (t->disposed()) fail(ErrorKind::Disposed, fn, arg, prefix(fn, arg) + "is a disposed tensor");
  return t;
}

DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i < info.Length() && info[i].IsString()) {
    std::string s = info[i].As<Napi::String>().Utf8Value();
    if (s == "float32") return DType::Float32;
    if (s == "float16") return DType::Float16;
    if (s == "bfloat16") return DType::BFloat16;
    if (s == "int32") return DType::Int32;
  }
  fail(ErrorKind::DType, fn, arg, prefix(fn, arg) + "expected 'float32', 'float16', 'bfloat16' or 'int32'");
}

Device arg_device(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i < info.Length() && info[i].IsString()) {
    std::string s = info[i].As<Napi::String>().Utf8Value();
    if (s == "cpu") return Device::CPU;
    if (s == "cuda" || s == "cuda:0") return Device::CUDA;
  }
  fail(ErrorKind::Device, fn, arg, prefix(fn, arg) + "expected 'cpu' or 'cuda'");
}

std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsArray()) fail(ErrorKind::Shape, fn, arg, prefix(fn, arg) + "expected an array of sizes");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> shape;
  double total = 1;
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
      fail(ErrorKind::Shape, fn, arg, prefix(fn, arg) + "expected non-negative integer sizes");
    shape.push_back(static_cast<int64_t>(d));
    total *= d;
  }
  if (total > 9007199254740991.0) fail(ErrorKind::Shape, fn, arg, prefix(fn, arg) + "has too many elements");
  return shape;
}

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(ErrorKind::Argument, fn, arg, prefix(fn, arg) + "expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

uint64_t arg_seed(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i < info.Length() && info[i].IsBigInt()) {
    bool lossless = false;
    uint64_t s = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) return s;
  }
  fail(ErrorKind::Argument, fn, arg, prefix(fn, arg) + "expected a seed in [0, 2^64) as a bigint");
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || !info[i].IsBoolean()) fail(ErrorKind::Argument, fn, arg, prefix(fn, arg) + "expected a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

TensorHandle* opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return arg_tensor(info, i, fn, arg);
}

void expect_shape(const TensorHandle* t, const std::vector<int64_t>& want, const char* fn, const char* arg) {
  if (t->shape() != want)
    fail(ErrorKind::Shape, fn, arg, prefix(fn, arg) + "expected shape " + shape_str(want) + " but received " + shape_str(t->shape()));
}

void expect_dtype(const TensorHandle* t, DType want, const char* fn, const char* arg) {
  if (t->dtype() != want)
    fail(ErrorKind::DType, fn, arg, prefix(fn, arg) + "expected dtype " + dtype_name(want) + " but received " + dtype_name(t->dtype()));
}

void expect_float(const TensorHandle* t, const char* fn, const char* arg) {
  if (!is_floating(t->dtype()))
    fail(ErrorKind::DType, fn, arg, prefix(fn, arg) + "expected dtype float32, float16 or bfloat16 but received " + dtype_name(t->dtype()));
}

void expect_device(const TensorHandle* t, Device want, const char* fn, const char* arg) {
  if (t->device() != want)
    fail(ErrorKind::Device, fn, arg, prefix(fn, arg) + "is on " + device_name(t->device()) + " but the first input is on " + device_name(want));
}

}  // namespace mamba
