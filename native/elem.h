// Load and store one element of any dtype as float / double, on host and device.
// Used by the generic CPU kernels and the small CUDA kernels (fill, cast, random);
// hot kernels specialise on the dtype instead.
#pragma once
#include <cstdint>
#include <type_traits>

#include "dtype.h"
#include "half.h"

namespace mamba {

MAMBA_HD float load_float(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(p)[i];
    case DType::Float16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BFloat16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
  }
}

// Float to int32 truncates toward zero and saturates; NaN becomes 0 (defined, unlike a C cast).
MAMBA_HD int32_t saturate_i32(double v) {
  if (!(v == v)) return 0;
  if (v >= 2147483647.0) return 2147483647;
  if (v <= -2147483648.0) return -2147483647 - 1;
  return static_cast<int32_t>(v);
}

MAMBA_HD void store_double(void* p, int64_t i, DType t, double v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::Float16: static_cast<uint16_t*>(p)[i] = f32_to_f16(static_cast<float>(v)); break;
    case DType::BFloat16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(v)); break;
    default: static_cast<int32_t*>(p)[i] = saturate_i32(v); break;
  }
}

// Exact element copy between dtypes: int32 -> float goes through double so large ints round once.
MAMBA_HD void cast_element(const void* src, DType st, void* dst, DType dt, int64_t i) {
  if (st == DType::Int32) {
    store_double(dst, i, dt, static_cast<double>(static_cast<const int32_t*>(src)[i]));
  } else {
    store_double(dst, i, dt, static_cast<double>(load_float(src, i, st)));
  }
}

// The bit pattern of value v in dtype t, for fills (low 16 bits used for 16-bit types).
MAMBA_HD uint32_t value_bits(double v, DType t) {
  switch (t) {
    case DType::Float32: return f32_bits(static_cast<float>(v));
    case DType::Float16: return f32_to_f16(static_cast<float>(v));
    case DType::BFloat16: return f32_to_bf16(static_cast<float>(v));
    default: return static_cast<uint32_t>(saturate_i32(v));
  }
}

// Compile-time dtype forms of load_float / store for the hot elementwise kernels (float dtypes only).
template <DType DT>
MAMBA_HD float load_t(const void* p, int64_t i) {
  if (DT == DType::Float32) return static_cast<const float*>(p)[i];
  if (DT == DType::Float16) return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

template <DType DT>
MAMBA_HD void store_t(void* p, int64_t i, float v) {
  if (DT == DType::Float32) static_cast<float*>(p)[i] = v;
  else if (DT == DType::Float16) static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
  else static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
}

template <DType DT>
using DTypeC = std::integral_constant<DType, DT>;

// Calls f(DTypeC<dt>{}) for a float dtype: the step from a run-time dtype to a template argument
// (inside f: `constexpr DType DT = decltype(c)::value;`).
template <typename F>
void dispatch_float(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: f(DTypeC<DType::Float32>{}); break;
    case DType::Float16: f(DTypeC<DType::Float16>{}); break;
    case DType::BFloat16: f(DTypeC<DType::BFloat16>{}); break;
    default: break;
  }
}

}  // namespace mamba
