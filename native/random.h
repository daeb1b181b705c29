// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011) usable on host and device.
// Element i of a seeded tensor depends only on (seed, i), so CPU and CUDA fill the same values
// whatever the launch shape. Double-precision arithmetic with explicit fma keeps the two devices
// bitwise equal for rand; randn goes through log/cos, which may differ by an ulp in float64 and so,
// rarely, by one float32 ulp.
#pragma once
#include <cmath>
#include <cstdint>
#include "half.h"

namespace mamba {

struct Philox4 {
  uint32_t x[4];
};

MAMBA_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

MAMBA_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c0, hi0, lo0);
    mulhilo32(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

MAMBA_HD Philox4 philox_at(uint64_t seed, uint64_t counter) {
  return philox4x32_10(static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [lo, hi) for element i: 24 random bits, exact in float32.
MAMBA_HD double rand_uniform_at(uint64_t seed, uint64_t i, double lo, double hi) {
  Philox4 r = philox_at(seed, i);
  double u = static_cast<double>(r.x[0] >> 8) * (1.0 / 16777216.0);
  return fma(hi - lo, u, lo);
}

// Standard normal for element i (Box-Muller on the pair of 53-bit uniforms of counter i/2).
MAMBA_HD double randn_at(uint64_t seed, uint64_t i, double mean, double stddev) {
  Philox4 r = philox_at(seed, i >> 1);
  const double k53 = 1.0 / 9007199254740992.0;
  double u1 = 1.0 - (static_cast<double>(r.x[0] >> 5) * 67108864.0 + static_cast<double>(r.x[1] >> 6)) * k53;
  double u2 = (static_cast<double>(r.x[2] >> 5) * 67108864.0 + static_cast<double>(r.x[3] >> 6)) * k53;
  double radius = sqrt(-2.0 * log(u1));
  double theta = 6.283185307179586 * u2;
  double z = (i & 1) ? radius * sin(theta) : radius * cos(theta);
  return fma(stddev, z, mean);
}

}  // namespace mamba
