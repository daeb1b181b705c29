// Standalone test of the CPU selective scan (native/cpu/selective_scan_cpu.cc) against the float64 reference
// defined here (plain-loop forward and a hand-written reverse-mode backward; the TypeScript twin is
// test/reference/selective_scan.ts). Shapes follow native/params.h: u/delta/z/out (batch, dim, L),
// A (dim, dstate), B/C (batch, n_groups, dstate, L) or (dim, dstate), states (batch, dim, dstate).
// Checks: a grid over L, dstate, groups, flags, time-invariant B/C, initial/last state and the three dtypes
// (reference computed on the same rounded inputs, mamba_ssm test tolerances), plus wider shapes for the
// kernel's channel tiling; central finite differences of
// the reference backward; segment consistency (scan [0,k) then [k,L) equals [0,L), forward and backward);
// bitwise determinism across runs and thread counts; NaN propagation; invalid params throwing.
// Prints one line per failed case and a final "N passed, N failed"; exit code 1 if anything failed.
// Run with --hash to print a hash of one backward (used to compare thread counts via MAMBA_NUM_THREADS).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/selective_scan_cpu.h"
#include "half.h"

using mamba::DType;
using mamba::SelectiveScanParams;
using Vec = std::vector<double>;

namespace {

int g_passed = 0, g_failed = 0;

void record(bool ok, const std::string& name, const std::string& detail) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

struct Case {
  int batch = 2, dim = 4, L = 64, N = 16, G = 1;
  DType dtype = DType::Float32;
  bool varB = true, varC = true, softplus = false, hasD = false, hasZ = false, hasBias = false;
  bool hasInit = false, hasDlast = false;

  std::string name() const {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s b%d d%d L%d N%d G%d B%s C%s%s%s%s%s%s%s", mamba::dtype_name(dtype), batch,
                  dim, L, N, G, varB ? "var" : "inv", varC ? "var" : "inv", softplus ? " softplus" : "",
                  hasD ? " D" : "", hasZ ? " z" : "", hasBias ? " bias" : "", hasInit ? " init" : "",
                  hasDlast ? " dlast" : "");
    return buf;
  }
  size_t nx() const { return static_cast<size_t>(batch) * dim * L; }
  size_t nbc(bool var) const { return var ? static_cast<size_t>(batch) * G * N * L : static_cast<size_t>(dim) * N; }
  size_t ns() const { return static_cast<size_t>(batch) * dim * N; }
};

// Rounds a value to what a tensor of dtype t stores.
double round_to(double v, DType t) {
  float f = static_cast<float>(v);
  if (t == DType::Float16) return mamba::f16_to_f32(mamba::f32_to_f16(f));
  if (t == DType::BFloat16) return mamba::bf16_to_f32(mamba::f32_to_bf16(f));
  return f;
}

// Inputs, already rounded to their storage types. Optional arrays are empty when their flag is off.
struct Data {
  Vec u, delta, A, B, C, D, z, bias, init, dout, dlast;
};

Data make_data(const Case& c, uint64_t seed) {
  Rng r(seed);
  Data x;
  auto fill = [&](Vec& v, size_t n, DType t, const std::function<double()>& f) {
    v.resize(n);
    for (auto& e : v) e = round_to(f(), t);
  };
  auto normal = [&] { return r.normal(); };
  fill(x.u, c.nx(), c.dtype, normal);
  fill(x.delta, c.nx(), c.dtype, [&] { return 0.5 * r.uniform(); });
  fill(x.A, static_cast<size_t>(c.dim) * c.N, DType::Float32, [&] { return -0.5 * r.uniform(); });
  fill(x.B, c.nbc(c.varB), c.dtype, normal);
  fill(x.C, c.nbc(c.varC), c.dtype, normal);
  if (c.hasD) fill(x.D, c.dim, DType::Float32, normal);
  if (c.hasZ) fill(x.z, c.nx(), c.dtype, normal);
  if (c.hasBias) fill(x.bias, c.dim, DType::Float32, [&] { return 0.5 * r.uniform(); });
  if (c.hasInit) fill(x.init, c.ns(), DType::Float32, normal);
  fill(x.dout, c.nx(), c.dtype, normal);
  if (c.hasDlast) fill(x.dlast, c.ns(), DType::Float32, normal);
  return x;
}

struct Result {
  Vec out, last, ck;                                         // forward (ck: states before each 256-step chunk)
  Vec du, ddelta, dA, dB, dC, dD, dz, dbias, dinit;          // backward
};

// ---------------------------------------------------------------- float64 reference

double softplus64(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }
double sigmoid64(double x) { return 1.0 / (1.0 + std::exp(-x)); }

size_t bc_index(const Case& c, bool var, int b, int d, int n, int t) {
  if (!var) return static_cast<size_t>(d) * c.N + n;
  int g = d / (c.dim / c.G);
  return ((static_cast<size_t>(b) * c.G + g) * c.N + n) * c.L + t;
}

// Forward, and the backward when `backward` is set (reads x.dout and x.dlast). Keeps every state of a row.
Result reference(const Case& c, const Data& x, bool backward) {
  const int L = c.L, N = c.N;
  const int nck = mamba::scan_num_checkpoints(L);
  Result r;
  r.out.assign(c.nx(), 0.0);
  r.last.assign(c.ns(), 0.0);
  r.ck.assign(c.ns() * nck, 0.0);
  if (backward) {
    r.du.assign(c.nx(), 0.0);
    r.ddelta.assign(c.nx(), 0.0);
    r.dz.assign(c.hasZ ? c.nx() : 0, 0.0);
    r.dA.assign(static_cast<size_t>(c.dim) * N, 0.0);
    r.dB.assign(c.nbc(c.varB), 0.0);
    r.dC.assign(c.nbc(c.varC), 0.0);
    r.dD.assign(c.hasD ? c.dim : 0, 0.0);
    r.dbias.assign(c.hasBias ? c.dim : 0, 0.0);
    r.dinit.assign(c.ns(), 0.0);
  }
  Vec H(static_cast<size_t>(L + 1) * N), dt(L), dsp(L), y(L), g(N);
  for (int b = 0; b < c.batch; ++b) {
    for (int d = 0; d < c.dim; ++d) {
      const size_t row = static_cast<size_t>(b) * c.dim + d;
      const double Dd = c.hasD ? x.D[d] : 0.0;
      for (int n = 0; n < N; ++n) H[n] = c.hasInit ? x.init[row * N + n] : 0.0;
      for (int t = 0; t < L; ++t) {
        double raw = x.delta[row * L + t] + (c.hasBias ? x.bias[d] : 0.0);
        dt[t] = c.softplus ? softplus64(raw) : raw;
        dsp[t] = c.softplus ? (raw > 20.0 ? 1.0 : sigmoid64(raw)) : 1.0;
        const double ut = x.u[row * L + t];
        if (t % mamba::kScanCheckpointChunk == 0)
          for (int n = 0; n < N; ++n) r.ck[(row * nck + t / mamba::kScanCheckpointChunk) * N + n] = H[t * N + n];
        double acc = 0.0;
        for (int n = 0; n < N; ++n) {
          double a = std::exp(dt[t] * x.A[d * N + n]);
          double h = a * H[t * N + n] + dt[t] * x.B[bc_index(c, c.varB, b, d, n, t)] * ut;
          H[(t + 1) * N + n] = h;
          acc += x.C[bc_index(c, c.varC, b, d, n, t)] * h;
        }
        y[t] = acc + Dd * ut;
        double o = y[t];
        if (c.hasZ) o *= x.z[row * L + t] * sigmoid64(x.z[row * L + t]);
        r.out[row * L + t] = o;
      }
      for (int n = 0; n < N; ++n) r.last[row * N + n] = H[static_cast<size_t>(L) * N + n];
      if (!backward) continue;

      for (int n = 0; n < N; ++n) g[n] = c.hasDlast ? x.dlast[row * N + n] : 0.0;
      for (int t = L - 1; t >= 0; --t) {
        const size_t i = row * L + t;
        const double ut = x.u[i];
        double dy = x.dout[i];
        if (c.hasZ) {
          const double zt = x.z[i], s = sigmoid64(zt);
          r.dz[i] = dy * y[t] * s * (1.0 + zt * (1.0 - s));
          dy *= zt * s;
        }
        double du = Dd * dy, dx = 0.0;
        if (c.hasD) r.dD[d] += dy * ut;
        for (int n = 0; n < N; ++n) {
          const double A = x.A[d * N + n];
          const double a = std::exp(dt[t] * A);
          const size_t bi = bc_index(c, c.varB, b, d, n, t), ci = bc_index(c, c.varC, b, d, n, t);
          const double G = g[n] + x.C[ci] * dy;  // adjoint of h_t
          r.dC[ci] += dy * H[(t + 1) * N + n];
          r.dB[bi] += G * dt[t] * ut;
          du += G * dt[t] * x.B[bi];
          dx += G * x.B[bi] * ut;
          const double da = G * H[t * N + n];  // adjoint of a_t
          dx += da * a * A;
          r.dA[d * N + n] += da * a * dt[t];
          g[n] = a * G;
        }
        r.du[i] = du;
        r.ddelta[i] = dx * dsp[t];
        if (c.hasBias) r.dbias[d] += dx * dsp[t];
      }
      for (int n = 0; n < N; ++n) r.dinit[row * N + n] = g[n];
    }
  }
  return r;
}

// ---------------------------------------------------------------- kernel driver

struct Buf {
  DType t;
  std::vector<uint8_t> bytes;
  Buf(DType type, const Vec& v) : t(type), bytes(v.size() * mamba::dtype_size(type)) {
    for (size_t i = 0; i < v.size(); ++i) set(i, v[i]);
  }
  Buf(DType type, size_t n) : t(type), bytes(n * mamba::dtype_size(type)) {}
  void set(size_t i, double v) {
    float f = static_cast<float>(v);
    if (t == DType::Float32) {
      std::memcpy(bytes.data() + 4 * i, &f, 4);
    } else {
      const uint16_t h = t == DType::Float16 ? mamba::f32_to_f16(f) : mamba::f32_to_bf16(f);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  Vec get() const {
    size_t n = bytes.size() / mamba::dtype_size(t);
    Vec v(n);
    for (size_t i = 0; i < n; ++i) {
      if (t == DType::Float32) {
        float f;
        std::memcpy(&f, bytes.data() + 4 * i, 4);
        v[i] = f;
      } else {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        v[i] = t == DType::Float16 ? mamba::f16_to_f32(h) : mamba::bf16_to_f32(h);
      }
    }
    return v;
  }
  void* data() { return bytes.empty() ? nullptr : bytes.data(); }
};

std::vector<float> to_f32(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
Vec to_f64(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

struct KernelRun {
  Buf u, delta, B, C, z, out, dout, du, ddelta, dB, dC, dz;
  std::vector<float> A, D, bias, init, last, ck, dlast, dA, dD, dbias, dinit;
  SelectiveScanParams p;

  KernelRun(const Case& c, const Data& x)
      : u(c.dtype, x.u), delta(c.dtype, x.delta), B(c.dtype, x.B), C(c.dtype, x.C), z(c.dtype, x.z),
        out(c.dtype, c.nx()), dout(c.dtype, x.dout), du(c.dtype, c.nx()), ddelta(c.dtype, c.nx()),
        dB(c.dtype, c.nbc(c.varB)), dC(c.dtype, c.nbc(c.varC)), dz(c.dtype, c.hasZ ? c.nx() : 0), A(to_f32(x.A)),
        D(to_f32(x.D)), bias(to_f32(x.bias)), init(to_f32(x.init)), last(c.ns()),
        ck(c.ns() * mamba::scan_num_checkpoints(c.L)), dlast(to_f32(x.dlast)), dA(x.A.size()), dD(c.dim),
        dbias(c.dim), dinit(c.ns()) {
    p.batch = c.batch;
    p.dim = c.dim;
    p.seqlen = c.L;
    p.dstate = c.N;
    p.n_groups = c.G;
    p.dtype = c.dtype;
    p.is_variable_B = c.varB;
    p.is_variable_C = c.varC;
    p.delta_softplus = c.softplus;
    p.has_D = c.hasD;
    p.has_z = c.hasZ;
    p.has_delta_bias = c.hasBias;
    p.has_initial_state = c.hasInit;
    p.u = u.data();
    p.delta = delta.data();
    p.A = A.data();
    p.B = B.data();
    p.C = C.data();
    p.D = c.hasD ? D.data() : nullptr;
    p.z = c.hasZ ? z.data() : nullptr;
    p.delta_bias = c.hasBias ? bias.data() : nullptr;
    p.initial_state = c.hasInit ? init.data() : nullptr;
    p.out = out.data();
    p.last_state = last.data();
    p.checkpoints = ck.data();
    p.dout = dout.data();
    p.dlast_state = c.hasDlast ? dlast.data() : nullptr;
    p.du = du.data();
    p.ddelta = ddelta.data();
    p.dA = dA.data();
    p.dB = dB.data();
    p.dC = dC.data();
    p.dD = c.hasD ? dD.data() : nullptr;
    p.dz = c.hasZ ? dz.data() : nullptr;
    p.ddelta_bias = c.hasBias ? dbias.data() : nullptr;
    p.dinitial_state = dinit.data();
  }

  Result result(const Case& c) const {
    Result r;
    r.out = out.get();
    r.last = to_f64(last);
    r.ck = to_f64(ck);
    r.du = du.get();
    r.ddelta = ddelta.get();
    r.dA = to_f64(dA);
    r.dB = dB.get();
    r.dC = dC.get();
    if (c.hasD) r.dD = to_f64(dD);
    if (c.hasZ) r.dz = dz.get();
    if (c.hasBias) r.dbias = to_f64(dbias);
    r.dinit = to_f64(dinit);
    return r;
  }
};

// ---------------------------------------------------------------- comparison

struct Tol {
  double rtol, atol;
};

Tol input_tol(DType t) {
  if (t == DType::Float16) return {3e-3, 5e-3};
  if (t == DType::BFloat16) return {3e-2, 5e-2};
  return {6e-4, 2e-3};
}

// Empty string when every element satisfies |got - ref| <= atol + rtol |ref| (NaN only where ref is NaN);
// otherwise the array name, the count of bad elements and the worst one.
std::string compare(const char* what, const Vec& got, const Vec& ref, Tol tol) {
  if (got.size() != ref.size()) return std::string(what) + ": size mismatch";
  size_t bad = 0, worst = 0;
  double worst_ratio = -1.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]), lim = tol.atol + tol.rtol * std::fabs(ref[i]);
    const bool nan_ok = std::isnan(got[i]) && std::isnan(ref[i]);
    if (nan_ok) continue;
    const double ratio = std::isnan(err) ? INFINITY : err / lim;
    if (ratio > 1.0) ++bad;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (bad == 0) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %zu/%zu bad, worst [%zu] got %.7g ref %.7g (err/tol %.3g)", what, bad,
                ref.size(), worst, got[worst], ref[worst], worst_ratio);
  return buf;
}

void add(std::string& acc, const std::string& s) {
  if (s.empty()) return;
  if (!acc.empty()) acc += "; ";
  acc += s;
}

// Checks the kernel's forward and backward against the reference for one case.
void run_case(const Case& c, uint64_t seed) {
  const Data x = make_data(c, seed);
  const Result ref = reference(c, x, true);
  KernelRun k(c, x);
  std::string err;
  try {
    mamba::selective_scan_fwd_cpu(k.p);
    mamba::selective_scan_bwd_cpu(k.p);
  } catch (const std::exception& e) {
    record(false, c.name(), std::string("threw: ") + e.what());
    return;
  }
  const Result got = k.result(c);
  const Tol in = input_tol(c.dtype);
  Tol w{1e-3, 1e-3};
  if (c.hasZ) w = {std::max(w.rtol, in.rtol), std::max(w.atol, in.atol)};
  // Time-invariant B/C are stored in dtype here (mamba_ssm keeps them float32), so 16-bit rounding of the
  // stored gradient alone exceeds the weight tolerance: use the input tolerance for them.
  const Tol wbc = c.dtype == DType::Float32 ? w : Tol{std::max(w.rtol, in.rtol), std::max(w.atol, in.atol)};
  add(err, compare("out", got.out, ref.out, in));
  add(err, compare("last_state", got.last, ref.last, in));
  add(err, compare("checkpoints", got.ck, ref.ck, in));
  add(err, compare("du", got.du, ref.du, {in.rtol * 2, in.atol}));
  add(err, compare("ddelta", got.ddelta, ref.ddelta, {in.rtol * 5, in.atol * 10}));
  add(err, compare("dA", got.dA, ref.dA, {w.rtol, w.atol * 5}));
  add(err, compare("dB", got.dB, ref.dB, c.varB ? in : wbc));
  add(err, compare("dC", got.dC, ref.dC, c.varC ? in : wbc));
  if (c.hasD) add(err, compare("dD", got.dD, ref.dD, w));
  if (c.hasZ) add(err, compare("dz", got.dz, ref.dz, w));
  if (c.hasBias) add(err, compare("ddelta_bias", got.dbias, ref.dbias, w));
  add(err, compare("dinitial_state", got.dinit, ref.dinit, in));
  record(err.empty(), c.name(), err);
}

void set_flags(Case& c, int flags) {
  c.softplus = flags & 1;
  c.hasD = flags & 2;
  c.hasZ = flags & 4;
  c.hasBias = flags & 8;
}

// ---------------------------------------------------------------- grids

const DType kDtypes[] = {DType::Float32, DType::Float16, DType::BFloat16};

// Every L x dstate, with flags, groups, B/C variability and states rotating across cases.
void test_grid() {
  const int Ls[] = {1, 7, 64, 128, 372, 513, 784, 1134, 2048};
  const int Ns[] = {1, 16, 64, 256};
  int idx = 0;
  for (DType t : kDtypes) {
    for (int iL = 0; iL < 9; ++iL) {
      for (int iN = 0; iN < 4; ++iN, ++idx) {
        Case c;
        c.dtype = t;
        c.L = Ls[iL];
        c.N = Ns[iN];
        if (c.N == 256 && c.L > 784) continue;
        c.G = (iL + iN) % 2 + 1;
        set_flags(c, (iL * 5 + iN * 3 + idx) % 16);
        c.varB = (iL + iN) % 4 != 1 && (iL + iN) % 4 != 3;
        c.varC = (iL + iN) % 4 != 2 && (iL + iN) % 4 != 3;
        c.hasInit = c.hasDlast = (iL + iN + idx) % 2 == 0;
        run_case(c, 1000 + idx);
      }
    }
  }
}

// Every flag combination x B/C variability x groups x states x dtype, on a shape that crosses a checkpoint.
void test_flags() {
  int idx = 0;
  for (DType t : kDtypes)
    for (int flags = 0; flags < 16; ++flags)
      for (int bc = 0; bc < 4; ++bc)
        for (int G = 1; G <= 2; ++G)
          for (int st = 0; st < 2; ++st, ++idx) {
            Case c;
            c.dtype = t;
            c.L = 300;
            c.N = 16;
            c.G = G;
            set_flags(c, flags);
            c.varB = !(bc & 1);
            c.varC = !(bc & 2);
            c.hasInit = c.hasDlast = st;
            run_case(c, 5000 + idx);
          }
}

// Wider shapes, so the kernel's channel tiles (16 channels) and backward slices of a group are uneven and
// several of them share one (batch, group): batch 16 x dim 40 (three tiles in one slice), batch 1 x dim 96 x
// 2 groups and batch 2 x dim 70 x 2 groups (several slices per group).
void test_wide() {
  const int shapes[][3] = {{16, 40, 1}, {1, 96, 2}, {2, 70, 2}};
  int idx = 0;
  for (DType t : {DType::Float32, DType::BFloat16})
    for (const auto& sh : shapes)
      for (int bc = 0; bc < 2; ++bc, ++idx) {
        Case c;
        c.dtype = t;
        c.batch = sh[0];
        c.dim = sh[1];
        c.G = sh[2];
        c.L = 300;
        c.N = 16;
        c.varB = c.varC = bc == 0;
        c.softplus = c.hasD = c.hasZ = c.hasBias = c.hasInit = c.hasDlast = true;
        run_case(c, 8000 + idx);
      }
}

// Central differences of the reference forward against the reference backward, loss = <dout, out> +
// <dlast, last_state>, over every input element.
void test_finite_differences() {
  for (int variant = 0; variant < 3; ++variant) {
    Case c;
    c.batch = 2;
    c.dim = 4;
    c.L = 7;
    c.N = 3;
    c.G = variant == 0 ? 2 : 1;
    c.varB = variant != 1;
    c.varC = variant != 2;
    c.softplus = variant != 1;
    c.hasD = c.hasZ = c.hasBias = c.hasInit = c.hasDlast = true;
    Data x = make_data(c, 77 + variant);
    for (auto& v : x.delta) v -= 0.3;  // negative raw deltas too, so the softplus derivative is exercised
    const Result g = reference(c, x, true);
    auto loss = [&](const Data& xx) {
      Result r = reference(c, xx, false);
      double l = 0.0;
      for (size_t i = 0; i < r.out.size(); ++i) l += x.dout[i] * r.out[i];
      for (size_t i = 0; i < r.last.size(); ++i) l += x.dlast[i] * r.last[i];
      return l;
    };
    std::string err;
    auto check = [&](const char* what, Vec Data::*field, const Vec& grad) {
      Data xx = x;
      Vec fd((xx.*field).size());
      for (size_t i = 0; i < fd.size(); ++i) {
        const double v = (xx.*field)[i], h = 1e-6 * std::max(1.0, std::fabs(v));
        (xx.*field)[i] = v + h;
        const double lp = loss(xx);
        (xx.*field)[i] = v - h;
        const double lm = loss(xx);
        (xx.*field)[i] = v;
        fd[i] = (lp - lm) / (2 * h);
      }
      add(err, compare(what, grad, fd, {1e-5, 1e-6}));
    };
    check("du", &Data::u, g.du);
    check("ddelta", &Data::delta, g.ddelta);
    check("dA", &Data::A, g.dA);
    check("dB", &Data::B, g.dB);
    check("dC", &Data::C, g.dC);
    check("dD", &Data::D, g.dD);
    check("dz", &Data::z, g.dz);
    check("ddelta_bias", &Data::bias, g.dbias);
    check("dinitial_state", &Data::init, g.dinit);
    record(err.empty(), "finite differences of the reference, " + c.name(), err);
  }
}

// Slices steps [t0, t1) of every (batch, dim) / (batch, group, dstate) row.
Vec slice_time(const Vec& v, size_t rows, int L, int t0, int t1) {
  Vec out;
  out.reserve(rows * (t1 - t0));
  for (size_t r = 0; r < rows; ++r) out.insert(out.end(), v.begin() + r * L + t0, v.begin() + r * L + t1);
  return out;
}

Vec concat_time(const Vec& a, const Vec& b, size_t rows, int La, int Lb) {
  Vec out;
  for (size_t r = 0; r < rows; ++r) {
    out.insert(out.end(), a.begin() + r * La, a.begin() + (r + 1) * La);
    out.insert(out.end(), b.begin() + r * Lb, b.begin() + (r + 1) * Lb);
  }
  return out;
}

Vec sum(const Vec& a, const Vec& b) {
  Vec out(a);
  for (size_t i = 0; i < out.size(); ++i) out[i] += b[i];
  return out;
}

// Scanning [0, k) and then [k, L) from its last state equals scanning [0, L); the backward chains through
// dinitial_state -> dlast_state. Variable and time-invariant B/C.
void test_segments() {
  for (int variant = 0; variant < 2; ++variant) {
    Case c;
    c.batch = 2;
    c.dim = 4;
    c.G = 2;
    c.L = 700;
    c.N = 16;
    c.varB = variant == 0;
    c.varC = true;
    c.softplus = c.hasD = c.hasZ = c.hasBias = c.hasInit = c.hasDlast = true;
    const int k = 300;
    const Data x = make_data(c, 4242 + variant);
    const size_t rx = static_cast<size_t>(c.batch) * c.dim, rbc = static_cast<size_t>(c.batch) * c.G * c.N;

    Case c1 = c, c2 = c;
    c1.L = k;
    c2.L = c.L - k;
    c2.hasInit = true;
    Data x1 = x, x2 = x;
    for (auto [field, rows, var] : {std::tuple{&Data::u, rx, true}, std::tuple{&Data::delta, rx, true},
                                    std::tuple{&Data::z, rx, true}, std::tuple{&Data::dout, rx, true},
                                    std::tuple{&Data::B, rbc, c.varB}, std::tuple{&Data::C, rbc, c.varC}}) {
      if (!var) continue;
      x1.*field = slice_time(x.*field, rows, c.L, 0, k);
      x2.*field = slice_time(x.*field, rows, c.L, k, c.L);
    }
    KernelRun full(c, x), k1(c1, x1);
    mamba::selective_scan_fwd_cpu(full.p);
    mamba::selective_scan_bwd_cpu(full.p);
    mamba::selective_scan_fwd_cpu(k1.p);
    x2.init = to_f64(k1.last);
    KernelRun k2(c2, x2);
    mamba::selective_scan_fwd_cpu(k2.p);
    mamba::selective_scan_bwd_cpu(k2.p);
    x1.dlast = to_f64(k2.dinit);
    KernelRun k1b(c1, x1);
    mamba::selective_scan_fwd_cpu(k1b.p);
    mamba::selective_scan_bwd_cpu(k1b.p);

    const Result f = full.result(c), r1 = k1b.result(c1), r2 = k2.result(c2);
    // Per-element results see the same states and adjoints bitwise; sums over time only change order.
    const Tol tol{1e-6, 1e-7}, sums{1e-4, 1e-4};
    std::string err;
    add(err, compare("out", concat_time(r1.out, r2.out, rx, k, c2.L), f.out, tol));
    add(err, compare("last_state", r2.last, f.last, tol));
    add(err, compare("du", concat_time(r1.du, r2.du, rx, k, c2.L), f.du, tol));
    add(err, compare("ddelta", concat_time(r1.ddelta, r2.ddelta, rx, k, c2.L), f.ddelta, tol));
    add(err, compare("dz", concat_time(r1.dz, r2.dz, rx, k, c2.L), f.dz, tol));
    add(err, c.varB ? compare("dB", concat_time(r1.dB, r2.dB, rbc, k, c2.L), f.dB, tol)
                    : compare("dB", sum(r1.dB, r2.dB), f.dB, sums));
    add(err, compare("dC", concat_time(r1.dC, r2.dC, rbc, k, c2.L), f.dC, tol));
    add(err, compare("dA", sum(r1.dA, r2.dA), f.dA, sums));
    add(err, compare("dD", sum(r1.dD, r2.dD), f.dD, sums));
    add(err, compare("ddelta_bias", sum(r1.dbias, r2.dbias), f.dbias, sums));
    add(err, compare("dinitial_state", r1.dinit, f.dinit, tol));
    record(err.empty(), std::string("segments [0,300)+[300,700) ") + c.name(), err);
  }
}

uint64_t fnv(uint64_t h, const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

Case determinism_case() {
  Case c;
  c.batch = 2;
  c.dim = 64;
  c.G = 2;
  c.L = 600;
  c.N = 16;
  c.dtype = DType::BFloat16;
  c.softplus = c.hasD = c.hasZ = c.hasBias = c.hasInit = c.hasDlast = true;
  return c;
}

uint64_t backward_hash(bool with_checkpoints) {
  const Case c = determinism_case();
  KernelRun k(c, make_data(c, 99));
  mamba::selective_scan_fwd_cpu(k.p);
  if (!with_checkpoints) k.p.checkpoints = nullptr;
  mamba::selective_scan_bwd_cpu(k.p);
  uint64_t h = 0xcbf29ce484222325ull;
  for (const Buf* b : {&k.du, &k.ddelta, &k.dB, &k.dC, &k.dz}) h = fnv(h, b->bytes.data(), b->bytes.size());
  for (const auto* v : {&k.dA, &k.dD, &k.dbias, &k.dinit}) h = fnv(h, v->data(), v->size() * sizeof(float));
  return h;
}

// Two backward runs are bitwise equal; so are runs without checkpoints (recomputed) and runs with 1 or 3
// threads (this program re-run with MAMBA_NUM_THREADS, which is read once per process).
void test_determinism() {
  const uint64_t h0 = backward_hash(true), h1 = backward_hash(true), h2 = backward_hash(false);
  record(h0 == h1, "determinism: two backward runs bitwise equal", "hashes differ");
  record(h0 == h2, "determinism: backward without checkpoints equals with", "hashes differ");
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    std::printf("note: /proc/self/exe unavailable, thread-count determinism not checked\n");
    return;
  }
  exe[n] = 0;
  for (int threads : {1, 3}) {
    std::string cmd = "MAMBA_NUM_THREADS=" + std::to_string(threads) + " '" + exe + "' --hash";
    FILE* f = popen(cmd.c_str(), "r");
    unsigned long long h = 0;
    bool ok = f && std::fscanf(f, "%llx", &h) == 1;
    if (f) ok = pclose(f) == 0 && ok;
    record(ok && h == h0, "determinism: " + std::to_string(threads) + " thread(s) bitwise equal to default",
           ok ? "hashes differ" : "could not run " + cmd);
  }
}

// A NaN in u at step 5 of one row: that row's outputs are NaN from step 5 on, earlier steps and other rows
// stay finite, and the backward runs without throwing.
void test_nan() {
  Case c;
  c.L = 300;
  c.hasD = c.hasZ = c.softplus = true;
  Data x = make_data(c, 7);
  x.u[5] = NAN;
  KernelRun k(c, x);
  std::string err;
  try {
    mamba::selective_scan_fwd_cpu(k.p);
    mamba::selective_scan_bwd_cpu(k.p);
  } catch (const std::exception& e) {
    err = std::string("threw: ") + e.what();
  }
  const Vec out = k.out.get();
  for (size_t i = 0; i < out.size() && err.empty(); ++i) {
    const bool want_nan = i >= 5 && i < static_cast<size_t>(c.L);
    if (std::isnan(out[i]) != want_nan) err = "out[" + std::to_string(i) + "] NaN-ness wrong";
  }
  if (err.empty() && !std::isnan(k.last[0])) err = "last_state of the NaN row is not NaN";
  record(err.empty(), "NaN in u propagates", err);
}

// Each inconsistent params struct must throw std::invalid_argument from forward or backward.
void test_invalid() {
  Case c;
  c.hasD = c.hasZ = c.hasBias = true;
  const Data x = make_data(c, 3);
  const std::vector<std::pair<const char*, std::function<void(SelectiveScanParams&)>>> fwd_cases = {
      {"dim % n_groups != 0", [](SelectiveScanParams& p) { p.n_groups = 3; }},
      {"n_groups 0", [](SelectiveScanParams& p) { p.n_groups = 0; }},
      {"dstate 0", [](SelectiveScanParams& p) { p.dstate = 0; }},
      {"dstate 257", [](SelectiveScanParams& p) { p.dstate = 257; }},
      {"seqlen 0", [](SelectiveScanParams& p) { p.seqlen = 0; }},
      {"batch -1", [](SelectiveScanParams& p) { p.batch = -1; }},
      {"dtype int32", [](SelectiveScanParams& p) { p.dtype = DType::Int32; }},
      {"u null", [](SelectiveScanParams& p) { p.u = nullptr; }},
      {"B null", [](SelectiveScanParams& p) { p.B = nullptr; }},
      {"out null", [](SelectiveScanParams& p) { p.out = nullptr; }},
      {"has_D without D", [](SelectiveScanParams& p) { p.D = nullptr; }},
      {"has_z without z", [](SelectiveScanParams& p) { p.z = nullptr; }},
      {"has_initial_state without it", [](SelectiveScanParams& p) { p.has_initial_state = true; }},
  };
  const std::vector<std::pair<const char*, std::function<void(SelectiveScanParams&)>>> bwd_cases = {
      {"dout null", [](SelectiveScanParams& p) { p.dout = nullptr; }},
      {"dB null", [](SelectiveScanParams& p) { p.dB = nullptr; }},
      {"has_z without dz", [](SelectiveScanParams& p) { p.dz = nullptr; }},
      {"has_delta_bias without ddelta_bias", [](SelectiveScanParams& p) { p.ddelta_bias = nullptr; }},
  };
  auto expect_throw = [&](const char* name, const std::function<void(SelectiveScanParams&)>& mutate, bool bwd) {
    KernelRun k(c, x);
    mutate(k.p);
    bool threw = false;
    try {
      if (bwd) mamba::selective_scan_bwd_cpu(k.p);
      else mamba::selective_scan_fwd_cpu(k.p);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    record(threw, std::string("invalid params throw: ") + name, "did not throw std::invalid_argument");
  };
  for (const auto& [name, m] : fwd_cases) expect_throw(name, m, false);
  for (const auto& [name, m] : bwd_cases) expect_throw(name, m, true);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--hash") == 0) {
    std::printf("%llx\n", static_cast<unsigned long long>(backward_hash(true)));
    return 0;
  }
  test_finite_differences();
  test_grid();
  test_flags();
  test_wide();
  test_segments();
  test_determinism();
  test_nan();
  test_invalid();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
