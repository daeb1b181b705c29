// CPU fill / arange / seeded random / cast over n contiguous elements. The per-element math is in
// elem.h and random.h, shared with cuda/creation.cu and cuda/cast.cu.
#pragma once
#include <cstdint>
#include "../dtype.h"

namespace mamba {

void fill_cpu(void* dst, int64_t n, DType dt, double value);
void arange_cpu(void* dst, int64_t n, DType dt, double start, double step);
void rand_cpu(void* dst, int64_t n, DType dt, uint64_t seed, double lo, double hi);
void randn_cpu(void* dst, int64_t n, DType dt, uint64_t seed, double mean, double stddev);
void cast_cpu(const void* src, DType st, void* dst, DType dt, int64_t n);

}  // namespace mamba
