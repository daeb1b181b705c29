// Native unit tests for the CPU building blocks: fp16/bf16 conversions (exhaustive against a float64
// reference rounding), Philox known-answer vectors, random distributions, casts and parallel_for.
// Run by ctest in CI; the CUDA twin is native_cuda_test.cc.
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu/creation_cpu.h"
#include "cpu/parallel.h"
#include "elem.h"
#include "half.h"
#include "harness.h"
#include "random.h"

using namespace mamba;

namespace {

// Reference: round a double to the nearest float16 (ties to even) by searching the representable
// neighbours decoded by f16_to_f32 (trusted: decoding is exact and checked separately).
double f16_value(uint16_t h) { return static_cast<double>(f16_to_f32(h)); }

uint16_t ref_f32_to_f16(float f) {
  if (std::isnan(f)) return 0x7e00;
  double v = f;
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  double a = std::fabs(v);
  if (a >= 65520.0) return sign | 0x7c00;
  // binary search over magnitudes 0..0x7bff (monotonic)
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (f16_value(mid) <= a) lo = mid; else hi = static_cast<uint16_t>(mid - 1);
  }
  uint16_t below = lo;
  if (f16_value(below) == a || below == 0x7bff) return sign | below;
  uint16_t above = static_cast<uint16_t>(below + 1);
  double dlo = a - f16_value(below), dhi = f16_value(above) - a;
  uint16_t pick = dlo < dhi ? below : dhi < dlo ? above : ((below & 1) ? above : below);
  return sign | pick;
}

}  // namespace

TEST_CASE("f16 decode is exact for all 65536 patterns") {
  for (uint32_t h = 0; h < 65536; ++h) {
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double want;
    if (exp == 0x1f) continue;  // inf/nan checked below
    want = exp == 0 ? man * std::ldexp(1.0, -24) : (1.0 + man / 1024.0) * std::ldexp(1.0, static_cast<int>(exp) - 15);
    if (h & 0x8000) want = -want;
    if (static_cast<double>(f16_to_f32(static_cast<uint16_t>(h))) != want) {
      CHECK_MSG(false, "f16 decode " + std::to_string(h));
      return;
    }
  }
  CHECK(std::isinf(f16_to_f32(0x7c00)) && f16_to_f32(0x7c00) > 0);
  CHECK(std::isnan(f16_to_f32(0x7e00)));
}

TEST_CASE("f32 -> f16 rounds to nearest even (sampled float32 space + every f16 midpoint)") {
  // Every midpoint between adjacent f16 values and its float32 neighbours: the tie cases.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    double mid = (f16_value(static_cast<uint16_t>(h)) + f16_value(static_cast<uint16_t>(h + 1))) / 2;
    float m = static_cast<float>(mid);
    for (float f : {m, std::nextafter(m, 0.0f), std::nextafter(m, 1e9f), -m}) {
      if (f32_to_f16(f) != ref_f32_to_f16(f)) {
        CHECK_MSG(false, "f16 rounding at " + std::to_string(f));
        return;
      }
    }
  }
  // A stride through all float32 bit patterns.
  for (uint64_t u = 0; u < 0x100000000ULL; u += 9973) {
    float f;
    uint32_t b = static_cast<uint32_t>(u);
    std::memcpy(&f, &b, 4);
    uint16_t got = f32_to_f16(f), want = ref_f32_to_f16(f);
    if (std::isnan(f) ? !std::isnan(f16_to_f32(got)) : got != want) {
      CHECK_MSG(false, "f32->f16 pattern " + std::to_string(b));
      return;
    }
  }
}

TEST_CASE("bf16 round trip and rounding") {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      CHECK(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    if (f32_to_bf16(f) != h) {
      CHECK_MSG(false, "bf16 round trip " + std::to_string(h));
      return;
    }
  }
  CHECK(f32_to_bf16(1.00390625f) == 0x3f80);  // tie between 1 and 1+2^-7 -> even (1)
  CHECK(f32_to_bf16(1.01171875f) == 0x3f82);  // tie between 1+2^-7 and 1+2^-6 -> even
  CHECK(f32_to_bf16(3.4e38f) == 0x7f80);      // overflow to inf
}

TEST_CASE("Philox4x32-10 known-answer vectors (Random123)") {
  Philox4 a = philox4x32_10(0, 0, 0, 0, 0, 0);
  CHECK(a.x[0] == 0x6627e8d5u && a.x[1] == 0xe169c58du && a.x[2] == 0xbc57ac4cu && a.x[3] == 0x9b00dbd8u);
  Philox4 b = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  CHECK(b.x[0] == 0x408f276du && b.x[1] == 0x41c83b0eu && b.x[2] == 0xa20bc7c6u && b.x[3] == 0x6d5451fdu);
  Philox4 c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  CHECK(c.x[0] == 0xd16cfe09u && c.x[1] == 0x94fdcceb && c.x[2] == 0x5001e420u && c.x[3] == 0x24126ea1u);
}

TEST_CASE("randn and rand moments") {
  const int64_t n = 1 << 20;
  std::vector<float> x(n), u(n);
  randn_cpu(x.data(), n, DType::Float32, 1234, 0.0, 1.0);
  rand_cpu(u.data(), n, DType::Float32, 99, -1.0, 3.0);
  double s = 0, s2 = 0, mn = 1e9, mx = -1e9, us = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += x[i];
    s2 += double(x[i]) * x[i];
    mn = std::min<double>(mn, u[i]);
    mx = std::max<double>(mx, u[i]);
    us += u[i];
  }
  double mean = s / n, var = s2 / n - mean * mean;
  CHECK(std::fabs(mean) < 0.005);
  CHECK(std::fabs(var - 1.0) < 0.01);
  CHECK(mn >= -1.0 && mx < 3.0);
  CHECK(std::fabs(us / n - 1.0) < 0.01);
  std::vector<float> y(n);
  randn_cpu(y.data(), n, DType::Float32, 1234, 0.0, 1.0);
  CHECK(std::memcmp(x.data(), y.data(), n * 4) == 0);  // same seed, same numbers
  randn_cpu(y.data(), n, DType::Float32, 1235, 0.0, 1.0);
  CHECK(std::memcmp(x.data(), y.data(), n * 4) != 0);
}

TEST_CASE("cast round trips and int32 saturation") {
  std::vector<float> src = {0.f, -1.5f, 65504.f, 1e-8f, 3.14159f, -7.f, NAN, INFINITY, 3e9f, -3e9f};
  int64_t n = static_cast<int64_t>(src.size());
  std::vector<uint16_t> h(n);
  std::vector<float> back(n);
  cast_cpu(src.data(), DType::Float32, h.data(), DType::Float16, n);
  cast_cpu(h.data(), DType::Float16, back.data(), DType::Float32, n);
  CHECK(back[2] == 65504.f && back[1] == -1.5f && std::isnan(back[6]) && std::isinf(back[7]));
  std::vector<int32_t> ints(n);
  cast_cpu(src.data(), DType::Float32, ints.data(), DType::Int32, n);
  CHECK(ints[1] == -1 && ints[4] == 3 && ints[6] == 0 && ints[8] == 2147483647 && ints[9] == -2147483647 - 1);
}

TEST_CASE("parallel_for covers the range once and rethrows") {
  std::vector<std::atomic<int>> hits(100003);
  parallel_for(100003, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  CHECK(once);
  bool threw = false;
  try {
    parallel_for(1000, 1, [&](int64_t b, int64_t) {
      if (b > 0) throw std::runtime_error("worker failure");
    });
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw || cpu_num_threads() == 1);
}

int main() { return harness::run_all(); }
