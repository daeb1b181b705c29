// CPU matmul: C[b] (M, N) = op(A[b]) (M, K) @ op(B[b]) (K, N) (+ bias), see matmul_cpu.h for layouts.
// The output is cut into tiles of kMc x kNc; parallel_for hands whole tiles to threads, so each output
// element is produced by one thread, summing k in a fixed order (k blocks of kKc in sequence, k within a
// block in sequence): the result does not depend on the thread count. Per tile and k block, the slices of
// A and B are converted to float32 (applying the transposes) into packed panels, then a 4 x 16 register
// micro-kernel runs over them; float32 accumulation throughout, one rounding to the output dtype at the end.
// Reference: the float64 JS reference in test/ops/matmul.test.ts.
#include "matmul_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "../half.h"
#include "parallel.h"

namespace mamba {
namespace {

constexpr int64_t kMc = 64;   // rows of an output tile
constexpr int64_t kNc = 256;  // columns of an output tile
constexpr int64_t kKc = 256;  // depth of one packed k block: a 64x256 A panel + 256x256 B panel stay in L2
constexpr int kMr = 4;        // micro-kernel rows
constexpr int kNr = 16;       // micro-kernel columns: 4 x 16 float accumulators fit the 16 vector registers of AVX2

// As in selective_scan_cpu.cc: the hot loop is compiled for baseline x86-64 and for x86-64-v3 (AVX2 + FMA),
// picked once per process, so results may differ in rounding between CPUs but never between runs.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(__AVX2__)
#define MAMBA_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MAMBA_HOT
#endif

template <DType T>
inline float load(const void* p, int64_t i) {
  if constexpr (T == DType::Float32) return static_cast<const float*>(p)[i];
  else if constexpr (T == DType::Float16) return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
  else return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

template <DType T>
inline void store(void* p, int64_t i, float v) {
  if constexpr (T == DType::Float32) static_cast<float*>(p)[i] = v;
  else if constexpr (T == DType::Float16) static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
  else static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
}

// Packs rows [i0, i0 + mc) x depth [k0, k0 + kc) of op(A[b]) into panels of kMr rows: panel r holds
// ap[r][k][0..kMr) (rows past mc are zero), so the micro-kernel reads kMr consecutive floats per k.
template <DType T>
void pack_a(const MatmulParams& p, const void* a, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* ap) {
  const int64_t panels = (mc + kMr - 1) / kMr;
  for (int64_t r = 0; r < panels; ++r) {
    float* dst = ap + r * kc * kMr;
    for (int ii = 0; ii < kMr; ++ii) {
      const int64_t i = r * kMr + ii;
      if (i >= mc) {
        for (int64_t k = 0; k < kc; ++k) dst[k * kMr + ii] = 0.f;
        continue;
      }
      const int64_t m = i0 + i;
      // A stored (M, K): row m is contiguous; stored (K, M) (trans_a): a column of the stored matrix.
      if (p.trans_a) {
        for (int64_t k = 0; k < kc; ++k) dst[k * kMr + ii] = load<T>(a, (k0 + k) * p.M + m);
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * kMr + ii] = load<T>(a, m * p.K + k0 + k);
      }
    }
  }
}

// Packs depth [k0, k0 + kc) x columns [j0, j0 + nc) of op(B[b]) into panels of kNr columns:
// bp[panel][k][0..kNr), zero past nc.
template <DType T>
void pack_b(const MatmulParams& p, const void* b, int64_t j0, int64_t nc, int64_t k0, int64_t kc, float* bp) {
  const int64_t panels = (nc + kNr - 1) / kNr;
  for (int64_t q = 0; q < panels; ++q) {
    float* dst = bp + q * kc * kNr;
    const int64_t width = std::min<int64_t>(kNr, nc - q * kNr);
    for (int64_t k = 0; k < kc; ++k) {
      float* row = dst + k * kNr;
      const int64_t n0 = j0 + q * kNr;
      if (p.trans_b) {
        for (int64_t jj = 0; jj < width; ++jj) row[jj] = load<T>(b, (n0 + jj) * p.K + k0 + k);
      } else {
        const int64_t base = (k0 + k) * p.N + n0;
        for (int64_t jj = 0; jj < width; ++jj) row[jj] = load<T>(b, base + jj);
      }
      for (int64_t jj = width; jj < kNr; ++jj) row[jj] = 0.f;
    }
  }
}

// Eight floats as one GCC vector: AVX2 registers in the x86-64-v3 clone, pairs of SSE registers otherwise.
// Alignment 4 and may_alias let loads and stores go through any float pointer.
typedef float v8f __attribute__((vector_size(32), aligned(4), may_alias));

// acc (panels_m * kMr, panels_n * kNr), row stride ldc, += Ap @ Bp over kc. The 4 x 16 block sums in
// registers (8 vectors) over the whole k block, then is added to acc once: a fixed order for every element.
MAMBA_HOT void multiply_block(int64_t panels_m, int64_t panels_n, int64_t kc, const float* ap, const float* bp, float* acc,
                              int64_t ldc) {
  static_assert(kNr == 16, "the micro-kernel holds two 8-float vectors per row");
  for (int64_t r = 0; r < panels_m; ++r) {
    const float* a = ap + r * kc * kMr;
    for (int64_t q = 0; q < panels_n; ++q) {
      const float* b = bp + q * kc * kNr;
      v8f c[kMr][2] = {};
      for (int64_t k = 0; k < kc; ++k) {
        const v8f b0 = *reinterpret_cast<const v8f*>(b + k * kNr);
        const v8f b1 = *reinterpret_cast<const v8f*>(b + k * kNr + 8);
        const float* ak = a + k * kMr;
        for (int ii = 0; ii < kMr; ++ii) {
          c[ii][0] += ak[ii] * b0;
          c[ii][1] += ak[ii] * b1;
        }
      }
      float* out = acc + r * kMr * ldc + q * kNr;
      for (int ii = 0; ii < kMr; ++ii) {
        *reinterpret_cast<v8f*>(out + ii * ldc) += c[ii][0];
        *reinterpret_cast<v8f*>(out + ii * ldc + 8) += c[ii][1];
      }
    }
  }
}

template <DType T>
void run(const MatmulParams& p) {
  const int64_t mt = (p.M + kMc - 1) / kMc, nt = (p.N + kNc - 1) / kNc;
  const int64_t tiles = p.batch * mt * nt;
  // Threads are spawned per call (parallel.h): give each at least ~1 MFLOP so tiny products stay on one thread.
  const int64_t flops_per_tile = 2 * std::min(kMc, p.M) * std::min(kNc, p.N) * std::max<int64_t>(p.K, 1);
  const int64_t grain = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, flops_per_tile));
  parallel_for(tiles, grain, [&](int64_t begin, int64_t end) {
    // Buffers sized for the largest tile of this problem (small products stay cheap): rows padded to kMr,
    // columns to kNr.
    const int64_t mmax = (std::min(kMc, p.M) + kMr - 1) / kMr * kMr, kmax = std::min(kKc, p.K);
    const int64_t ld = (std::min(kNc, p.N) + kNr - 1) / kNr * kNr;
    std::vector<float> ap(static_cast<size_t>(mmax * kmax)), bp(static_cast<size_t>(kmax * ld)), acc(static_cast<size_t>(mmax * ld));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bi = t / (mt * nt), i0 = (t / nt) % mt * kMc, j0 = t % nt * kNc;
      const int64_t mc = std::min(kMc, p.M - i0), nc = std::min(kNc, p.N - j0);
      const int64_t pm = (mc + kMr - 1) / kMr, pn = (nc + kNr - 1) / kNr;
      const void* a = static_cast<const char*>(p.a) + bi * p.stride_a * static_cast<int64_t>(dtype_size(p.dtype));
      const void* b = static_cast<const char*>(p.b) + bi * p.stride_b * static_cast<int64_t>(dtype_size(p.dtype));
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
        const int64_t kc = std::min(kKc, p.K - k0);
        pack_a<T>(p, a, i0, mc, k0, kc, ap.data());
        pack_b<T>(p, b, j0, nc, k0, kc, bp.data());
        multiply_block(pm, pn, kc, ap.data(), bp.data(), acc.data(), ld);
      }
      const int64_t c0 = bi * p.M * p.N;
      for (int64_t i = 0; i < mc; ++i) {
        const float* row = acc.data() + i * ld;
        const int64_t base = c0 + (i0 + i) * p.N + j0;
        for (int64_t j = 0; j < nc; ++j) {
          const float bias = p.bias ? load<T>(p.bias, j0 + j) : 0.f;
          store<T>(p.c, base + j, row[j] + bias);
        }
      }
    }
  });
}

}  // namespace

void matmul_cpu(const MatmulParams& p) {
  if (p.batch <= 0 || p.M <= 0 || p.N <= 0) return;
  switch (p.dtype) {
    case DType::Float32: run<DType::Float32>(p); break;
    case DType::Float16: run<DType::Float16>(p); break;
    case DType::BFloat16: run<DType::BFloat16>(p); break;
    default: break;  // the N-API layer admits float dtypes only
  }
}

}  // namespace mamba
