// Element types shared by every layer: the N-API layer, the CPU kernels and the CUDA launchers.
// The numeric values cross the host/kernel boundary inside params structs, so they never change.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mamba {

enum class DType : int32_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Int32 = 3 };
enum class Device : int32_t { CPU = 0, CUDA = 1 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float16:
    case DType::BFloat16: return 2;
    default: return 4;
  }
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
  }
  return "unknown";
}

inline bool is_floating(DType t) { return t != DType::Int32; }

}  // namespace mamba
