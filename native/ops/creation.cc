// Tensor creation: from JS data, fills, arange and seeded random tensors, on 'cpu' or 'cuda'.
// JS side: lib/creation.ts (validation, defaults, seeds). Kernels: cpu/creation_cpu.cc, cuda/creation.cu.
#include <cstring>
#include <vector>

#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/creation_cpu.h"

namespace mamba {
namespace {

std::shared_ptr<Storage> new_storage(Device dev, const std::vector<int64_t>& shape, DType dt, const char* fn) {
  return Storage::allocate(dev, static_cast<size_t>(shape_numel(shape)) * dtype_size(dt), fn);
}

// fromData(values: Float32Array | Int32Array, shape, dtype, device) -> handle
// Float dtypes take a Float32Array, int32 an Int32Array; values.length == prod(shape).
Napi::Value FromData(const Napi::CallbackInfo& info) {
  const char* fn = "tensor";
  auto shape = arg_shape(info, 1, fn, "shape");
  DType dt = arg_dtype(info, 2, fn, "dtype");
  Device dev = arg_device(info, 3, fn, "device");
  if (info.Length() < 1 || !info[0].IsTypedArray()) fail(ErrorKind::Argument, fn, "data", "tensor: argument 'data' expected a typed array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  napi_typedarray_type want = dt == DType::Int32 ? napi_int32_array : napi_float32_array;
  if (ta.TypedArrayType() != want)
    fail(ErrorKind::DType, fn, "data", std::string("tensor: argument 'data' expected a ") +
                                           (dt == DType::Int32 ? "Int32Array" : "Float32Array") + " for dtype " + dtype_name(dt));
  int64_t n = shape_numel(shape);
  if (static_cast<int64_t>(ta.ElementLength()) != n)
    fail(ErrorKind::Shape, fn, "shape", "tensor: " + std::to_string(ta.ElementLength()) + " values do not fill shape " + shape_str(shape));
  const void* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  DType src_dt = dt == DType::Int32 ? DType::Int32 : DType::Float32;
  auto st = new_storage(dev, shape, dt, fn);
  if (dev == Device::CPU) {
    cast_cpu(src, src_dt, st->ptr, dt, n);
  } else {
    std::vector<uint8_t> host(static_cast<size_t>(n) * dtype_size(dt));
    cast_cpu(src, src_dt, host.data(), dt, n);
    cuda::copy_h2d(st->ptr, host.data(), host.size());
  }
  return TensorHandle::Create(info.Env(), st, shape, dt);
}

// full(shape, dtype, device, value) -> handle
Napi::Value Full(const Napi::CallbackInfo& info) {
  const char* fn = "full";
  auto shape = arg_shape(info, 0, fn, "shape");
  DType dt = arg_dtype(info, 1, fn, "dtype");
  Device dev = arg_device(info, 2, fn, "device");
  double value = arg_number(info, 3, fn, "value");
  auto st = new_storage(dev, shape, dt, fn);
  if (dev == Device::CPU) fill_cpu(st->ptr, shape_numel(shape), dt, value);
  else cuda::fill_cuda(st->ptr, shape_numel(shape), dt, value);
  return TensorHandle::Create(info.Env(), st, shape, dt);
}

// arange(n, start, step, dtype, device) -> handle of shape [n]; element i = start + i * step
Napi::Value Arange(const Napi::CallbackInfo& info) {
  const char* fn = "arange";
  double n = arg_number(info, 0, fn, "stop");
  double start = arg_number(info, 1, fn, "start");
  double step = arg_number(info, 2, fn, "step");
  DType dt = arg_dtype(info, 3, fn, "dtype");
  Device dev = arg_device(info, 4, fn, "device");
  if (!(n >= 0) || n > 9007199254740991.0) fail(ErrorKind::Argument, fn, "stop", "arange: the range has an invalid length");
  std::vector<int64_t> shape{static_cast<int64_t>(n)};
  auto st = new_storage(dev, shape, dt, fn);
  if (dev == Device::CPU) arange_cpu(st->ptr, shape[0], dt, start, step);
  else cuda::arange_cuda(st->ptr, shape[0], dt, start, step);
  return TensorHandle::Create(info.Env(), st, shape, dt);
}

// rand(shape, dtype, device, seed: bigint, lo, hi) / randn(shape, dtype, device, seed, mean, std)
template <bool Normal>
Napi::Value Random(const Napi::CallbackInfo& info) {
  const char* fn = Normal ? "randn" : "rand";
  auto shape = arg_shape(info, 0, fn, "shape");
  DType dt = arg_dtype(info, 1, fn, "dtype");
  Device dev = arg_device(info, 2, fn, "device");
  uint64_t seed = arg_seed(info, 3, fn, "seed");
  double a = arg_number(info, 4, fn, Normal ? "mean" : "low");
  double b = arg_number(info, 5, fn, Normal ? "std" : "high");
  if (dt == DType::Int32) fail(ErrorKind::DType, fn, "dtype", std::string(fn) + ": argument 'dtype' must be a float dtype");
  auto st = new_storage(dev, shape, dt, fn);
  int64_t n = shape_numel(shape);
  if (dev == Device::CPU) {
    if (Normal) randn_cpu(st->ptr, n, dt, seed, a, b); else rand_cpu(st->ptr, n, dt, seed, a, b);
  } else {
    if (Normal) cuda::randn_cuda(st->ptr, n, dt, seed, a, b); else cuda::rand_cuda(st->ptr, n, dt, seed, a, b);
  }
  return TensorHandle::Create(info.Env(), st, shape, dt);
}

}  // namespace

void InitCreation(Napi::Env env, Napi::Object exports) {
  export_fn<FromData>(env, exports, "fromData");
  export_fn<Full>(env, exports, "full");
  export_fn<Arange>(env, exports, "arange");
  export_fn<Random<false>>(env, exports, "rand");
  export_fn<Random<true>>(env, exports, "randn");
}

}  // namespace mamba
