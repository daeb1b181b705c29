// Standalone benchmark of the CPU selective scan (selective_scan_cpu.cc): prints element-states per second
// (ES/s = batch * dim * seqlen * dstate / time, median of several runs) for forward and forward+backward at
// S1/8-sized shapes (S1 = (8, 1536, 2048), dstate 16), float32 and bfloat16, with D, z, delta_bias and
// softplus on (the Mamba block's configuration). Correctness lives in test/native/selective_scan_cpu_test.cc.
// Build: g++ -std=c++17 -O3 -pthread -Inative native/cpu/bench_selective_scan_cpu.cc
//        native/cpu/selective_scan_cpu.cc native/cpu/parallel.cc -o bench_selective_scan_cpu
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "../half.h"
#include "parallel.h"
#include "selective_scan_cpu.h"

namespace {

using mamba::DType;

struct Shape {
  int batch, dim, L, N;
};

// Fills n elements of dtype t with values from f.
template <typename F>
std::vector<uint8_t> filled(size_t n, DType t, F&& f) {
  std::vector<uint8_t> v(n * mamba::dtype_size(t));
  for (size_t i = 0; i < n; ++i) {
    const float x = f();
    if (t == DType::Float32) {
      reinterpret_cast<float*>(v.data())[i] = x;
    } else {
      reinterpret_cast<uint16_t*>(v.data())[i] = mamba::f32_to_bf16(x);
    }
  }
  return v;
}

double median_seconds(int reps, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void bench(const Shape& s, DType t) {
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unif;
  const size_t nx = static_cast<size_t>(s.batch) * s.dim * s.L, nbc = static_cast<size_t>(s.batch) * s.N * s.L;
  auto u = filled(nx, t, [&] { return normal(gen); });
  auto delta = filled(nx, t, [&] { return 0.5f * unif(gen) - 2.0f; });
  auto z = filled(nx, t, [&] { return normal(gen); });
  auto B = filled(nbc, t, [&] { return normal(gen); });
  auto C = filled(nbc, t, [&] { return normal(gen); });
  auto dout = filled(nx, t, [&] { return normal(gen); });
  std::vector<float> A(static_cast<size_t>(s.dim) * s.N), D(s.dim, 1.0f), bias(s.dim, 0.5f);
  for (auto& a : A) a = -1.0f - 15.0f * unif(gen);
  const size_t es = static_cast<size_t>(s.batch) * s.dim;
  std::vector<uint8_t> out(nx * mamba::dtype_size(t)), du(out.size()), ddelta(out.size()), dz(out.size());
  std::vector<uint8_t> dB(nbc * mamba::dtype_size(t)), dC(dB.size());
  std::vector<float> ck(es * mamba::scan_num_checkpoints(s.L) * s.N), dA(A.size()), dD(s.dim), dbias(s.dim);

  mamba::SelectiveScanParams p;
  p.batch = s.batch;
  p.dim = s.dim;
  p.seqlen = s.L;
  p.dstate = s.N;
  p.dtype = t;
  p.delta_softplus = p.has_D = p.has_z = p.has_delta_bias = true;
  p.u = u.data();
  p.delta = delta.data();
  p.A = A.data();
  p.B = B.data();
  p.C = C.data();
  p.D = D.data();
  p.z = z.data();
  p.delta_bias = bias.data();
  p.out = out.data();
  p.checkpoints = ck.data();
  p.dout = dout.data();
  p.du = du.data();
  p.ddelta = ddelta.data();
  p.dA = dA.data();
  p.dB = dB.data();
  p.dC = dC.data();
  p.dD = dD.data();
  p.dz = dz.data();
  p.ddelta_bias = dbias.data();

  const double n_es = static_cast<double>(es) * s.L * s.N;
  mamba::selective_scan_fwd_cpu(p);
  const double tf = median_seconds(5, [&] { mamba::selective_scan_fwd_cpu(p); });
  const double tfb = median_seconds(5, [&] {
    mamba::selective_scan_fwd_cpu(p);
    mamba::selective_scan_bwd_cpu(p);
  });
  std::printf("(%d, %d, %d) dstate %d %-8s  fwd %7.1f ms %6.3f GES/s   fwd+bwd %7.1f ms %6.3f GES/s\n", s.batch,
              s.dim, s.L, s.N, mamba::dtype_name(t), tf * 1e3, n_es / tf * 1e-9, tfb * 1e3, n_es / tfb * 1e-9);
}

}  // namespace

int main() {
  std::printf("threads %d\n", mamba::cpu_num_threads());
  for (const Shape& s : {Shape{1, 1536, 2048, 16}, Shape{8, 192, 2048, 16}})
    for (DType t : {DType::Float32, DType::BFloat16}) bench(s, t);
  return 0;
}
