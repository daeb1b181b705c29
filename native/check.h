// The N-API boundary: argument readers that throw typed errors naming the function and argument,
// and `guarded`, which wraps every exported function so that mamba::Error, std::bad_alloc and any
// other C++ exception become the matching JS error class (lib/errors.ts) instead of crossing into V8.
// TypeScript validates first with friendlier messages; these checks are the cheap second line.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "dtype.h"
#include "error.h"
#include "tensor.h"

namespace mamba {

Napi::Error to_js_error(Napi::Env env, const Error& e);
void report_external_memory(Napi::Env env);

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    report_external_memory(env);
    Napi::Value v = F(info);
    report_external_memory(env);
    return v;
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw to_js_error(env, e);
  } catch (const std::bad_alloc&) {
    throw to_js_error(env, Error(ErrorKind::OutOfMemory, "", "", "host out of memory"));
  } catch (const std::exception& e) {
    throw to_js_error(env, Error(ErrorKind::Internal, "", "", e.what()));
  }
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
void export_fn(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, guarded<F>, name));
}

// Argument readers: `fn` and `arg` name the public function and argument in the error.
TensorHandle* arg_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
Device arg_device(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
double arg_number(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
uint64_t arg_seed(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);
// The tensor at info[i], or nullptr when the argument is null or undefined.
TensorHandle* opt_tensor(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg);

// Checks of one tensor argument against what an op needs; each throws the typed error naming fn and arg.
void expect_shape(const TensorHandle* t, const std::vector<int64_t>& want, const char* fn, const char* arg);
void expect_dtype(const TensorHandle* t, DType want, const char* fn, const char* arg);
void expect_float(const TensorHandle* t, const char* fn, const char* arg);  // float32, float16 or bfloat16
void expect_device(const TensorHandle* t, Device want, const char* fn, const char* arg);  // want: the first input's
// "fn: argument 'arg' " — the start of every argument error message.
std::string arg_prefix(const char* fn, const char* arg);

std::string shape_str(const std::vector<int64_t>& shape);
// Throws the DeviceError for a CUDA tensor reaching an op in a build without CUDA (MAMBA_WITH_CUDA unset).
[[noreturn]] void refuse_cuda(const char* fn);
const char* device_name(Device d);

}  // namespace mamba
