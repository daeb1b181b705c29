// Standalone lab for the CUDA selective scan (cuda/selective_scan*.cu); not linked into the addon.
//   default   checks forward and backward against a float64 CPU reference over a grid of shapes, flags and dtypes
//             (fp16/bf16 kernels are compared with the reference run on the same rounded inputs), segment
//             consistency (scan [0,k) then [k,L) == scan [0,L)) and bitwise repeatability of deterministic mode;
//             prints one line per case, then "N passed, N failed"; exit code 1 on any failure.
//   --small   a reduced grid, quick enough for compute-sanitizer.
//   --bench [S1|S2|S3]  times S1/S2/S3 or one of them (bf16, fp32; dstate 16, variable B/C, z, D, delta_bias,
//             softplus): forward with checkpoints and forward+backward, median of 30 runs after warm-up, against
//             floors and the official.
//   --sweep [S1|S2|S3]  the bench shapes (or one) with the time-segment count forced (p.scan_segments) from 1 to 64
//             and automatic (K 0), the backward's hand-off forced to the summary pass and (K <= 16) to the chained
//             one (p.scan_bwd_chain): fwd, bwd and fwd+bwd times, the data behind the segment plans.
//   --mix     the S3 split's summary and forward launches (bf16), alone and co-running on two streams (run_mix).
// Shapes follow native/params.h: u/delta/z/out (batch, dim, L), A (dim, N), B/C (batch, G, N, L) or (dim, N).
#include <cuda_runtime.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include "../../native/half.h"
#include "../selective_scan.h"
#include "../selective_scan_fwd.cuh"

using namespace mamba;

#define CUDA_CHECK(x)                                                                              \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) throw std::runtime_error(std::string(#x) + ": " + cudaGetErrorString(e_)); \
  } while (0)

namespace {

struct Case {
  int batch = 2, dim = 20, L = 64, N = 16, groups = 1;
  DType dtype = DType::Float32;
  bool has_D = true, has_z = true, has_bias = true, softplus = true;
  bool var_B = true, var_C = true, init_state = false, dlast = false, deterministic = false;
  int segments = 0;            // p.scan_segments: 0 automatic, k > 0 forces the fast forward split into ~k segments
  bool expect_split = false;   // fail unless the automatic forward is one for long L (time-split or time-lane)
  int chain = 0;               // p.scan_bwd_chain: 0 automatic, 1 summary pass, 2 chained hand-off
};

std::string describe(const Case& c) {
  char buf[256];
  snprintf(buf, sizeof buf, "%-8s b%d d%d L%-5d N%-3d g%d %s%s%s%s%s%s%s%s%s", dtype_name(c.dtype), c.batch, c.dim, c.L,
           c.N, c.groups, c.has_D ? "D " : "", c.has_z ? "z " : "", c.has_bias ? "bias " : "", c.softplus ? "sp " : "",
           c.var_B ? "" : "B-inv ", c.var_C ? "" : "C-inv ", c.init_state ? "h0 " : "", c.dlast ? "dlast " : "",
           c.deterministic ? "det " : "");
  std::string r = buf;
  if (c.segments > 0) r += "seg" + std::to_string(c.segments) + " ";
  if (c.chain > 0) r += c.chain == 2 ? "chained " : "summary ";
  if (c.expect_split) r += "split";
  return r;
}

// Host values rounded to the activation dtype, and their device bits.
float round_to(DType t, float x) {
  if (t == DType::Float16) return f16_to_f32(f32_to_f16(x));
  if (t == DType::BFloat16) return bf16_to_f32(f32_to_bf16(x));
  return x;
}

std::vector<uint8_t> to_bits(DType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::Float32) {
      memcpy(&out[i * 4], &v[i], 4);
    } else {
      uint16_t h = t == DType::Float16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

std::vector<float> from_bits(DType t, const std::vector<uint8_t>& b) {
  const size_t n = b.size() / dtype_size(t);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::Float32) {
      memcpy(&out[i], &b[i * 4], 4);
    } else {
      uint16_t h;
      memcpy(&h, &b[i * 2], 2);
      out[i] = t == DType::Float16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return out;
}

// Device buffer, freed on scope exit.
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  explicit DevBuf(size_t n) : bytes(n) {
    if (n) CUDA_CHECK(cudaMalloc(&p, n));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(bytes, o.bytes);
    return *this;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  void upload(const void* src) { CUDA_CHECK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice)); }
  void poison() { CUDA_CHECK(cudaMemset(p, 0xff, bytes)); }  // NaN in fp32, fp16 and bf16
  std::vector<uint8_t> download() const {
    std::vector<uint8_t> v(bytes);
    CUDA_CHECK(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<float> download_f32() const {
    std::vector<float> v(bytes / 4);
    CUDA_CHECK(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost));
    return v;
  }
};

DevBuf upload_act(DType t, const std::vector<float>& v) {
  auto bits = to_bits(t, v);
  DevBuf d(bits.size());
  d.upload(bits.data());
  return d;
}

DevBuf upload_f32(const std::vector<float>& v) {
  DevBuf d(v.size() * 4);
  d.upload(v.data());
  return d;
}

// All inputs of one case, already rounded to the activation dtype where the kernel reads that dtype.
struct Inputs {
  std::vector<float> u, delta, z, B, C, A, D, bias, h0, dout, dlast;
};

Inputs make_inputs(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  std::normal_distribution<float> nrm(0.f, 1.f);
  const size_t bdl = static_cast<size_t>(c.batch) * c.dim * c.L;
  const size_t bc = c.var_B ? static_cast<size_t>(c.batch) * c.groups * c.N * c.L : static_cast<size_t>(c.dim) * c.N;
  const size_t cc = c.var_C ? static_cast<size_t>(c.batch) * c.groups * c.N * c.L : static_cast<size_t>(c.dim) * c.N;
  Inputs in;
  auto fill = [&](std::vector<float>& v, size_t n, auto gen, bool act) {
    v.resize(n);
    for (auto& x : v) x = act ? round_to(c.dtype, gen()) : gen();
  };
  fill(in.u, bdl, [&] { return nrm(rng); }, true);
  fill(in.delta, bdl, [&] { return 0.5f * uni(rng); }, true);
  fill(in.z, bdl, [&] { return nrm(rng); }, true);
  fill(in.B, bc, [&] { return nrm(rng); }, true);
  fill(in.C, cc, [&] { return nrm(rng); }, true);
  fill(in.A, static_cast<size_t>(c.dim) * c.N, [&] { return -0.5f * uni(rng) - 0.05f; }, false);
  fill(in.D, c.dim, [&] { return nrm(rng); }, false);
  fill(in.bias, c.dim, [&] { return 0.5f * uni(rng) - 0.25f; }, false);
  fill(in.h0, static_cast<size_t>(c.batch) * c.dim * c.N, [&] { return nrm(rng); }, false);
  fill(in.dout, bdl, [&] { return nrm(rng); }, true);
  fill(in.dlast, static_cast<size_t>(c.batch) * c.dim * c.N, [&] { return nrm(rng); }, false);
  return in;
}

// ---------------------------------------------------------------- float64 CPU reference
struct Ref {
  std::vector<double> out, last, ckpt, du, ddelta, dz, dA, dB, dC, dD, dbias, dh0;
};

int hw_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

Ref reference(const Case& c, const Inputs& in, bool backward) {
  const int Bn = c.batch, Dm = c.dim, L = c.L, N = c.N, G = c.groups, gs = Dm / G;
  const int nck = scan_num_checkpoints(L);
  const size_t bdl = static_cast<size_t>(Bn) * Dm * L, bdn = static_cast<size_t>(Bn) * Dm * N;
  const size_t bsz = c.var_B ? static_cast<size_t>(Bn) * G * N * L : static_cast<size_t>(Dm) * N;
  const size_t csz = c.var_C ? static_cast<size_t>(Bn) * G * N * L : static_cast<size_t>(Dm) * N;
  Ref r;
  r.out.assign(bdl, 0);
  r.last.assign(bdn, 0);
  r.ckpt.assign(static_cast<size_t>(Bn) * Dm * nck * N, 0);
  if (backward) {
    r.du.assign(bdl, 0);
    r.ddelta.assign(bdl, 0);
    r.dz.assign(bdl, 0);
    r.dh0.assign(bdn, 0);
  }
  // Per-(b, d) partials, summed in a fixed order afterwards.
  std::vector<double> dA_p(backward ? bdn : 0), dD_p(backward ? Bn * Dm : 0), db_p(backward ? Bn * Dm : 0);
  const int nthreads = std::min(hw_threads(), Dm);
  std::vector<std::vector<double>> dB_t(nthreads), dC_t(nthreads);
  auto work = [&](int tid) {
    if (backward) {
      dB_t[tid].assign(bsz, 0);
      dC_t[tid].assign(csz, 0);
    }
    std::vector<double> hs(static_cast<size_t>(L + 1) * N), ys(L), dts(L), raws(L);
    for (int d = tid; d < Dm; d += nthreads) {
      const int g = d / gs;
      for (int b = 0; b < Bn; ++b) {
        const size_t row = (static_cast<size_t>(b) * Dm + d) * L, bd = static_cast<size_t>(b) * Dm + d;
        auto Bidx = [&](int t, int n) {
          return c.var_B ? ((static_cast<size_t>(b) * G + g) * N + n) * L + t : static_cast<size_t>(d) * N + n;
        };
        auto Cidx = [&](int t, int n) {
          return c.var_C ? ((static_cast<size_t>(b) * G + g) * N + n) * L + t : static_cast<size_t>(d) * N + n;
        };
        for (int n = 0; n < N; ++n) hs[n] = c.init_state ? in.h0[bd * N + n] : 0.0;
        for (int t = 0; t < L; ++t) {
          double* hp = &hs[static_cast<size_t>(t) * N];
          double* hn = hp + N;
          if (t % kScanCheckpointChunk == 0)
            for (int n = 0; n < N; ++n) r.ckpt[(bd * nck + t / kScanCheckpointChunk) * N + n] = hp[n];
          double raw = static_cast<double>(in.delta[row + t]) + (c.has_bias ? in.bias[d] : 0.0);
          double dt = c.softplus ? (raw > 20 ? raw : std::log1p(std::exp(raw))) : raw;
          raws[t] = raw;
          dts[t] = dt;
          const double u = in.u[row + t];
          double y = 0;
          for (int n = 0; n < N; ++n) {
            const double a = std::exp(dt * in.A[static_cast<size_t>(d) * N + n]);
            hn[n] = a * hp[n] + dt * in.B[Bidx(t, n)] * u;
            y += in.C[Cidx(t, n)] * hn[n];
          }
          if (c.has_D) y += in.D[d] * u;
          ys[t] = y;
          double o = y;
          if (c.has_z) {
            const double z = in.z[row + t];
            o *= z / (1 + std::exp(-z));
          }
          r.out[row + t] = o;
        }
        for (int n = 0; n < N; ++n) r.last[bd * N + n] = hs[static_cast<size_t>(L) * N + n];
        if (!backward) continue;
        std::vector<double> radj(N);
        for (int n = 0; n < N; ++n) radj[n] = c.dlast ? in.dlast[bd * N + n] : 0.0;
        double dD = 0, db = 0;
        for (int t = L - 1; t >= 0; --t) {
          const double u = in.u[row + t], dt = dts[t], dout = in.dout[row + t];
          double dy = dout;
          if (c.has_z) {
            const double z = in.z[row + t], sg = 1 / (1 + std::exp(-z));
            dy = dout * z * sg;
            r.dz[row + t] = dout * ys[t] * sg * (1 + z * (1 - sg));
          }
          double du = 0, ddt = 0;
          const double* hp = &hs[static_cast<size_t>(t) * N];
          const double* hn = hp + N;
          for (int n = 0; n < N; ++n) {
            const double A = in.A[static_cast<size_t>(d) * N + n];
            const double a = std::exp(dt * A);
            const double Bv = in.B[Bidx(t, n)];
            const double gadj = radj[n] + in.C[Cidx(t, n)] * dy;
            dB_t[tid][Bidx(t, n)] += gadj * dt * u;
            dC_t[tid][Cidx(t, n)] += dy * hn[n];
            du += gadj * dt * Bv;
            ddt += gadj * (A * a * hp[n] + Bv * u);
            dA_p[bd * N + n] += gadj * dt * a * hp[n];
            radj[n] = a * gadj;
          }
          if (c.has_D) du += in.D[d] * dy;
          dD += dy * u;
          const double dd = c.softplus ? ddt / (1 + std::exp(-raws[t])) : ddt;
          db += dd;
          r.du[row + t] = du;
          r.ddelta[row + t] = dd;
        }
        for (int n = 0; n < N; ++n) r.dh0[bd * N + n] = radj[n];
        dD_p[bd] = dD;
        db_p[bd] = db;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < nthreads; ++t) pool.emplace_back(work, t);
  for (auto& t : pool) t.join();
  if (backward) {
    r.dB.assign(bsz, 0);
    r.dC.assign(csz, 0);
    for (int t = 0; t < nthreads; ++t) {
      for (size_t i = 0; i < bsz; ++i) r.dB[i] += dB_t[t][i];
      for (size_t i = 0; i < csz; ++i) r.dC[i] += dC_t[t][i];
    }
    r.dA.assign(static_cast<size_t>(Dm) * N, 0);
    r.dD.assign(Dm, 0);
    r.dbias.assign(Dm, 0);
    for (int b = 0; b < Bn; ++b)
      for (int d = 0; d < Dm; ++d) {
        for (int n = 0; n < N; ++n) r.dA[static_cast<size_t>(d) * N + n] += dA_p[(static_cast<size_t>(b) * Dm + d) * N + n];
        r.dD[d] += dD_p[static_cast<size_t>(b) * Dm + d];
        r.dbias[d] += db_p[static_cast<size_t>(b) * Dm + d];
      }
  }
  return r;
}

// ---------------------------------------------------------------- comparison
struct Tol {
  double rtol, atol;
};

Tol act_tol(DType t) {
  if (t == DType::Float16) return {3e-3, 5e-3};
  if (t == DType::BFloat16) return {3e-2, 5e-2};
  return {6e-4, 2e-3};
}

// Worst |x - r| / (atol + rtol |r|) over the tensor; > 1 (or NaN) fails. Appends a note on failure.
bool check(const char* name, const std::vector<float>& got, const std::vector<double>& ref, Tol tol, std::string& note) {
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]) / (tol.atol + tol.rtol * std::fabs(ref[i]));
    if (!(err <= worst)) {
      worst = std::isnan(err) ? INFINITY : err;
      wi = i;
      if (std::isinf(worst)) break;
    }
  }
  if (worst <= 1.0) return true;
  char buf[200];
  snprintf(buf, sizeof buf, " %s[%zu]=%g ref %g (x%.2f);", name, wi, static_cast<double>(got[wi]), ref[wi], worst);
  note += buf;
  return false;
}

// Device buffers of one case; the pointers are filled into a params struct by fill().
struct Device {
  DevBuf u, delta, z, B, C, A, D, bias, h0, out, last, ckpt, dout, dlast, du, ddelta, dA, dB, dC, dD, dz, dbias, dh0, ws;
  DevBuf fws;  // forward workspace (time-split forward)
};

SelectiveScanParams make_params(const Case& c, Device& dv) {
  SelectiveScanParams p;
  p.batch = c.batch;
  p.dim = c.dim;
  p.seqlen = c.L;
  p.dstate = c.N;
  p.n_groups = c.groups;
  p.dtype = c.dtype;
  p.is_variable_B = c.var_B;
  p.is_variable_C = c.var_C;
  p.delta_softplus = c.softplus;
  p.has_D = c.has_D;
  p.has_z = c.has_z;
  p.has_delta_bias = c.has_bias;
  p.has_initial_state = c.init_state;
  p.deterministic = c.deterministic;
  p.scan_segments = c.segments;
  p.scan_bwd_chain = c.chain;
  p.u = dv.u.p;
  p.delta = dv.delta.p;
  p.A = static_cast<const float*>(dv.A.p);
  p.B = dv.B.p;
  p.C = dv.C.p;
  p.D = c.has_D ? static_cast<const float*>(dv.D.p) : nullptr;
  p.z = c.has_z ? dv.z.p : nullptr;
  p.delta_bias = c.has_bias ? static_cast<const float*>(dv.bias.p) : nullptr;
  p.initial_state = c.init_state ? static_cast<const float*>(dv.h0.p) : nullptr;
  p.out = dv.out.p;
  p.last_state = static_cast<float*>(dv.last.p);
  p.checkpoints = static_cast<float*>(dv.ckpt.p);
  p.dout = dv.dout.p;
  p.dlast_state = c.dlast ? static_cast<const float*>(dv.dlast.p) : nullptr;
  p.du = dv.du.p;
  p.ddelta = dv.ddelta.p;
  p.dA = static_cast<float*>(dv.dA.p);
  p.dB = dv.dB.p;
  p.dC = dv.dC.p;
  p.dD = c.has_D ? static_cast<float*>(dv.dD.p) : nullptr;
  p.dz = c.has_z ? dv.dz.p : nullptr;
  p.ddelta_bias = c.has_bias ? static_cast<float*>(dv.dbias.p) : nullptr;
  p.dinitial_state = static_cast<float*>(dv.dh0.p);
  return p;
}

Device make_device(const Case& c, const Inputs& in) {
  Device dv;
  const size_t bdl = static_cast<size_t>(c.batch) * c.dim * c.L, es = dtype_size(c.dtype);
  const size_t bdn = static_cast<size_t>(c.batch) * c.dim * c.N;
  dv.u = upload_act(c.dtype, in.u);
  dv.delta = upload_act(c.dtype, in.delta);
  dv.z = upload_act(c.dtype, in.z);
  dv.B = upload_act(c.dtype, in.B);
  dv.C = upload_act(c.dtype, in.C);
  dv.A = upload_f32(in.A);
  dv.D = upload_f32(in.D);
  dv.bias = upload_f32(in.bias);
  dv.h0 = upload_f32(in.h0);
  dv.dout = upload_act(c.dtype, in.dout);
  dv.dlast = upload_f32(in.dlast);
  dv.out = DevBuf(bdl * es);
  dv.last = DevBuf(bdn * 4);
  dv.ckpt = DevBuf(static_cast<size_t>(c.batch) * c.dim * scan_num_checkpoints(c.L) * c.N * 4);
  dv.du = DevBuf(bdl * es);
  dv.ddelta = DevBuf(bdl * es);
  dv.dz = DevBuf(bdl * es);
  dv.dA = DevBuf(static_cast<size_t>(c.dim) * c.N * 4);
  dv.dB = DevBuf(in.B.size() * es);
  dv.dC = DevBuf(in.C.size() * es);
  dv.dD = DevBuf(c.dim * 4);
  dv.dbias = DevBuf(c.dim * 4);
  dv.dh0 = DevBuf(bdn * 4);
  return dv;
}

// The forward with its workspace, poisoned first (NaN) so that a read of an unwritten segment summary shows up.
void run_fwd(const SelectiveScanParams& p, Device& dv) {
  const size_t ws = selective_scan_fwd_workspace_bytes(p);
  if (dv.fws.bytes < ws) dv.fws = DevBuf(ws);
  if (ws) dv.fws.poison();
  selective_scan_fwd_cuda(p, ws ? dv.fws.p : nullptr, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void run_bwd(const SelectiveScanParams& p, Device& dv) {
  const size_t ws = selective_scan_bwd_workspace_bytes(p);
  if (dv.ws.bytes < ws) dv.ws = DevBuf(ws);
  dv.ws.poison();
  selective_scan_bwd_cuda(p, dv.ws.p, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
}

// Forward + backward of one case against the reference. Returns true on pass.
bool run_case(const Case& c, uint64_t seed) {
  const Inputs in = make_inputs(c, seed);
  const Ref ref = reference(c, in, true);
  Device dv = make_device(c, in);
  SelectiveScanParams p = make_params(c, dv);
  for (DevBuf* b : {&dv.out, &dv.last, &dv.ckpt, &dv.du, &dv.ddelta, &dv.dz, &dv.dA, &dv.dB, &dv.dC, &dv.dD,
                    &dv.dbias, &dv.dh0})
    b->poison();
  run_fwd(p, dv);
  run_bwd(p, dv);

  const Tol t = act_tol(c.dtype), t32 = act_tol(DType::Float32);
  Tol tw = {1e-3, 1e-3};
  if (c.has_z) tw = {std::max(tw.rtol, t.rtol), std::max(tw.atol, t.atol)};
  // dB/dC are stored in the activation dtype, so their rounding is at least the input tolerance.
  const Tol tbc = {std::max(tw.rtol, t.rtol), std::max(tw.atol, t.atol)};
  std::string note;
  bool ok = true;
  const std::string plan = selective_scan_fwd_plan(p);
  if (c.expect_split && plan != "time-split" && plan != "time-lane") {
    ok = false;
    note += " forward did not split L (" + plan + ");";
  }
  if (c.segments > 1 && plan != "time-split") {
    ok = false;
    note += " forced segments did not split L (" + plan + ");";
  }
  ok &= check("out", from_bits(c.dtype, dv.out.download()), ref.out, t, note);
  ok &= check("last_state", dv.last.download_f32(), ref.last, t32, note);
  ok &= check("checkpoints", dv.ckpt.download_f32(), ref.ckpt, t32, note);
  ok &= check("du", from_bits(c.dtype, dv.du.download()), ref.du, {t.rtol * 2, t.atol}, note);
  ok &= check("ddelta", from_bits(c.dtype, dv.ddelta.download()), ref.ddelta, {t.rtol * 5, t.atol * 10}, note);
  if (c.has_z) ok &= check("dz", from_bits(c.dtype, dv.dz.download()), ref.dz, t, note);
  ok &= check("dA", dv.dA.download_f32(), ref.dA, {tw.rtol, tw.atol * 5}, note);
  ok &= check("dB", from_bits(c.dtype, dv.dB.download()), ref.dB, tbc, note);
  ok &= check("dC", from_bits(c.dtype, dv.dC.download()), ref.dC, tbc, note);
  if (c.has_D) ok &= check("dD", dv.dD.download_f32(), ref.dD, tw, note);
  if (c.has_bias) ok &= check("ddelta_bias", dv.dbias.download_f32(), ref.dbias, tw, note);
  ok &= check("dinitial_state", dv.dh0.download_f32(), ref.dh0, t32, note);

  if (c.deterministic) {
    // A second backward must reproduce every gradient bit for bit.
    std::vector<std::vector<uint8_t>> first;
    for (DevBuf* b : {&dv.du, &dv.ddelta, &dv.dz, &dv.dA, &dv.dB, &dv.dC, &dv.dD, &dv.dbias, &dv.dh0})
      first.push_back(b->download());
    for (DevBuf* b : {&dv.du, &dv.ddelta, &dv.dz, &dv.dA, &dv.dB, &dv.dC, &dv.dD, &dv.dbias, &dv.dh0}) b->poison();
    run_bwd(p, dv);
    int k = 0;
    for (DevBuf* b : {&dv.du, &dv.ddelta, &dv.dz, &dv.dA, &dv.dB, &dv.dC, &dv.dD, &dv.dbias, &dv.dh0}) {
      auto again = b->download();
      if (again != first[k]) {
        ok = false;
        note += " deterministic repeat differs (buffer " + std::to_string(k) + ");";
      }
      ++k;
    }
  }
  printf("%s  %-62s%s\n", ok ? "PASS" : "FAIL", describe(c).c_str(), note.c_str());
  fflush(stdout);
  return ok;
}

// Forward over [0, k) then [k, L) from the first part's last_state must match the forward over [0, L).
bool run_segment_case(const Case& c, int k, uint64_t seed) {
  const Inputs in = make_inputs(c, seed);
  Device full = make_device(c, in);
  SelectiveScanParams pf = make_params(c, full);
  full.out.poison();
  full.last.poison();
  run_fwd(pf, full);
  auto out_full = from_bits(c.dtype, full.out.download());
  auto last_full = full.last.download_f32();

  auto slice = [&](const std::vector<float>& v, int rows, int t0, int t1) {
    std::vector<float> s;
    for (int r = 0; r < rows; ++r)
      for (int t = t0; t < t1; ++t) s.push_back(v[static_cast<size_t>(r) * c.L + t]);
    return s;
  };
  std::vector<float> out_seg(out_full.size());
  std::vector<float> last_seg;
  std::vector<float> h = in.h0;
  const int bd = c.batch * c.dim, bgn = c.batch * c.groups * c.N;
  for (int part = 0; part < 2; ++part) {
    const int t0 = part == 0 ? 0 : k, t1 = part == 0 ? k : c.L;
    Case cs = c;
    cs.L = t1 - t0;
    cs.init_state = part == 1 || c.init_state;
    Inputs is = in;
    is.u = slice(in.u, bd, t0, t1);
    is.delta = slice(in.delta, bd, t0, t1);
    is.z = slice(in.z, bd, t0, t1);
    if (c.var_B) is.B = slice(in.B, bgn, t0, t1);
    if (c.var_C) is.C = slice(in.C, bgn, t0, t1);
    is.dout = slice(in.dout, bd, t0, t1);
    is.h0 = h;
    Device dv = make_device(cs, is);
    SelectiveScanParams p = make_params(cs, dv);
    dv.out.poison();
    dv.last.poison();
    run_fwd(p, dv);
    auto o = from_bits(c.dtype, dv.out.download());
    for (int r = 0; r < bd; ++r)
      for (int t = t0; t < t1; ++t) out_seg[static_cast<size_t>(r) * c.L + t] = o[static_cast<size_t>(r) * cs.L + t - t0];
    h = dv.last.download_f32();
  }
  last_seg = h;
  std::string note;
  const Tol t = act_tol(c.dtype);
  std::vector<double> of(out_full.begin(), out_full.end()), lf(last_full.begin(), last_full.end());
  bool ok = check("out", out_seg, of, t, note);
  ok &= check("last_state", last_seg, lf, act_tol(DType::Float32), note);
  printf("%s  segment [0,%d)+[%d,%d) %-42s%s\n", ok ? "PASS" : "FAIL", k, k, c.L, describe(c).c_str(), note.c_str());
  fflush(stdout);
  return ok;
}

int run_checks(bool small) {
  std::vector<Case> cases;
  const std::vector<int> lengths = small ? std::vector<int>{1, 7, 372} : std::vector<int>{1, 7, 64, 128, 372, 784, 1134, 2048, 4096};
  const std::vector<int> states = small ? std::vector<int>{1, 16, 64} : std::vector<int>{1, 16, 64, 256};
  const DType dtypes[3] = {DType::Float32, DType::Float16, DType::BFloat16};
  for (DType dt : dtypes)
    for (int N : states)
      for (int L : lengths) {
        if (static_cast<long>(N) * L > (small ? 16L * 372 : 64L * 4096)) continue;  // keep the reference quick
        for (int groups : {1, 2}) {
          Case c;
          c.dtype = dt;
          c.N = N;
          c.L = L;
          c.groups = groups;
          c.dim = groups == 1 ? 13 : 20;  // neither a multiple of the 8 channels per block
          cases.push_back(c);
        }
      }
  // Flag combinations at a few shapes and dtypes.
  for (DType dt : dtypes)
    for (int L : small ? std::vector<int>{300} : std::vector<int>{372, 1134})
      for (int mask = 0; mask < 16; ++mask) {
        Case c;
        c.dtype = dt;
        c.L = L;
        c.has_D = mask & 1;
        c.has_z = mask & 2;
        c.has_bias = mask & 4;
        c.softplus = mask & 8;
        c.dim = 12;
        cases.push_back(c);
      }
  // Time-invariant B and/or C, initial state + dlast_state, deterministic mode, bigger dim.
  for (DType dt : dtypes)
    for (int L : small ? std::vector<int>{300} : std::vector<int>{372, 2048}) {
      for (int inv = 1; inv < 4; ++inv) {
        Case c;
        c.dtype = dt;
        c.L = L;
        c.var_B = !(inv & 1);
        c.var_C = !(inv & 2);
        cases.push_back(c);
      }
      Case c;
      c.dtype = dt;
      c.L = L;
      c.init_state = c.dlast = true;
      cases.push_back(c);
      c.groups = 2;
      c.deterministic = true;
      c.dim = 40;
      cases.push_back(c);
      c.N = small ? 16 : 64;
      c.var_C = false;
      cases.push_back(c);
    }
  // dstate that is not a power of two or spans two slabs, and batch * dim large enough for one warp per
  // channel (the kernels split a channel's states over 2 or 4 warps when batch * dim is small).
  for (DType dt : dtypes) {
    for (int N : small ? std::vector<int>{12, 17} : std::vector<int>{4, 8, 12, 17, 40}) {
      Case c;
      c.dtype = dt;
      c.N = N;
      c.L = 300;
      c.groups = 2;
      c.init_state = c.dlast = true;
      cases.push_back(c);
    }
    for (int L : small ? std::vector<int>{40} : std::vector<int>{300, 1024})
      for (int v = 0; v < 3; ++v) {
        // batch * dim >= 4096 with dstate 16 takes the dstate-16 fast paths (the backward's only when not
        // deterministic): plain, with initial state / dlast_state and no z or D, and deterministic.
        Case c;
        c.dtype = dt;
        c.batch = 2;
        c.dim = 2050;
        c.groups = 2;
        c.L = L;
        c.deterministic = v == 2;
        c.init_state = c.dlast = v >= 1;
        c.has_z = c.has_D = v != 1;
        // At L 1024 this grid (132 blocks) is split in time automatically; v 0 keeps the unsplit fast kernel.
        if (v == 0) c.segments = 1;
        cases.push_back(c);
      }
  }
  // Time-split fast forward (dstate 16, variable B/C, small batch * dim, long L): segment summaries, the carry
  // walk, checkpoints on the global grid, last_state from the last segment. Automatic choice (expect_split: the
  // case fails if the launcher did not split) and forced counts (odd L, segments of one chunk, inactive channels
  // of a partial tile, rows that are not 16-byte aligned).
  for (DType dt : dtypes) {
    if (small) {
      Case c;
      c.dtype = dt;
      c.batch = 1;
      c.dim = 40;
      c.groups = 2;
      c.L = 300;
      c.segments = 4;  // 3 chunks per segment, 4 segments, the last one partial
      c.init_state = c.dlast = true;
      cases.push_back(c);
      c.chain = 2;  // the same backward split with the chained hand-off
      cases.push_back(c);
      c = Case();
      c.dtype = dt;
      c.batch = 1;
      c.dim = 64;
      c.L = 600;
      c.expect_split = true;
      cases.push_back(c);
      c.L = 640;  // 16-bit inputs: the time-lane forward (z, softplus, L % 64 == 0)
      c.init_state = true;
      cases.push_back(c);
      continue;
    }
    for (int L : {4096, 3001})
      for (int v = 0; v < 4; ++v) {
        Case c;
        c.dtype = dt;
        c.batch = 1;
        c.dim = v == 3 ? 198 : 64;
        c.groups = v == 3 ? 2 : 1;  // 99 channels per group: the last tile of each group is partial
        c.L = L;
        c.expect_split = true;
        c.init_state = c.dlast = v == 1 || v == 2;
        c.has_z = c.has_D = v != 1;
        c.has_bias = c.softplus = v != 2;
        cases.push_back(c);
      }
    for (int segs : {2, 7, 100}) {
      Case c;
      c.dtype = dt;
      c.batch = 2;
      c.dim = 40;
      c.groups = 2;
      c.L = segs == 100 ? 300 : 1000;  // 100: one 32-step chunk per segment (10 segments)
      c.segments = segs;
      c.init_state = c.dlast = segs != 2;
      cases.push_back(c);
      c.chain = 2;
      cases.push_back(c);
    }
    {
      Case c;  // forced unsplit fast kernel at a small batch * dim
      c.dtype = dt;
      c.batch = 1;
      c.dim = 64;
      c.L = 500;
      c.segments = 1;
      c.init_state = true;
      cases.push_back(c);
    }
  }
  int passed = 0, failed = 0;
  uint64_t seed = 1;
  for (const Case& c : cases) (run_case(c, seed++) ? passed : failed)++;
  for (DType dt : dtypes) {
    Case c;
    c.dtype = dt;
    c.L = small ? 300 : 1134;
    c.init_state = true;
    c.groups = 2;
    for (int k : small ? std::vector<int>{256} : std::vector<int>{256, 500}) (run_segment_case(c, k, seed++) ? passed : failed)++;
    if (!small) {
      // Both parts and the whole take the time-split forward (L 3001), or for 16-bit inputs the time-lane one (3072).
      Case cs;
      cs.dtype = dt;
      cs.batch = 1;
      cs.dim = 64;
      cs.L = 3001;
      cs.init_state = true;
      (run_segment_case(cs, 1500, seed++) ? passed : failed)++;
      cs.L = 3072;
      (run_segment_case(cs, 1536, seed++) ? passed : failed)++;
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- benchmark
double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A bench shape's inputs on the device (dstate 16, variable B/C, z, D, delta_bias, softplus) with both
// workspaces sized for `segments` (p.scan_segments; 0 = automatic plan).
struct BenchSetup {
  Device dv;
  SelectiveScanParams p;
};

BenchSetup bench_setup(int batch, int dim, int L, DType dt, int segments, int chain = 0) {
  Case c;
  c.batch = batch;
  c.dim = dim;
  c.L = L;
  c.N = 16;
  c.dtype = dt;
  const Inputs in = make_inputs(c, 7);
  BenchSetup bs;
  bs.dv = make_device(c, in);
  bs.p = make_params(c, bs.dv);
  bs.p.scan_segments = segments;
  bs.p.scan_bwd_chain = chain;
  bs.dv.ws = DevBuf(selective_scan_bwd_workspace_bytes(bs.p));
  bs.dv.fws = DevBuf(selective_scan_fwd_workspace_bytes(bs.p));
  return bs;
}

// Median of 30 timed runs (after 10 warm-up runs) of the forward, or forward + backward, in milliseconds.
double time_scan_ms(const SelectiveScanParams& p, const Device& dv, bool backward) {
  cudaEvent_t e0, e1;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<float> times;
  for (int it = 0; it < 40; ++it) {
    CUDA_CHECK(cudaEventRecord(e0));
    selective_scan_fwd_cuda(p, dv.fws.p, nullptr);
    if (backward) selective_scan_bwd_cuda(p, dv.ws.p, nullptr);
    CUDA_CHECK(cudaEventRecord(e1));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    if (it >= 10) times.push_back(ms);
  }
  CUDA_CHECK(cudaEventDestroy(e0));
  CUDA_CHECK(cudaEventDestroy(e1));
  return median(times);
}

void run_bench(const char* only) {
  struct Shape {
    const char* name;
    int batch, dim, L;
    double official_fwd_bf16, official_fb_bf16, official_fwd_fp32, official_fb_fp32;
  };
  const Shape shapes[3] = {{"S1", 8, 1536, 2048, 0.447, 2.19, 0.878, 2.91},
                           {"S2", 4, 4096, 2048, 0.591, 2.89, 1.162, 3.85},
                           {"S3", 1, 1536, 16384, 0.548, 2.56, 0.976, 3.14}};
  constexpr double kHbm = 4.27e12, kMufu = 4.2e12;  // bytes/s and exps/s ceilings of one H200 (perf-anchors.md)
  printf("%-4s %-8s %-8s %9s %9s %9s %10s %10s %9s %9s\n", "shape", "dtype", "what", "ms", "official", "speedup",
         "GB/s(min)", "Gexp/s", "HBMfloor", "MUFUfloor");
  for (const Shape& s : shapes)
    for (DType dt : {DType::BFloat16, DType::Float32}) {
      if (only != nullptr && strcmp(only, s.name) != 0) continue;
      BenchSetup bs = bench_setup(s.batch, s.dim, s.L, dt, 0);
      const SelectiveScanParams& p = bs.p;
      Device& dv = bs.dv;
      printf("%-4s %-8s forward workspace %zu bytes (%s)\n", s.name, dtype_name(dt), dv.fws.bytes,
             selective_scan_fwd_plan(p));
      const double es = dtype_size(dt);
      const double bdl = static_cast<double>(s.batch) * s.dim * s.L, bgnl = static_cast<double>(s.batch) * 16 * s.L;
      const double fwd_bytes = es * (4 * bdl + 2 * bgnl);                // u, delta, z, B, C in; out
      const double bwd_bytes = es * (7 * bdl + 4 * bgnl);                // u, delta, z, dout, B, C in; du, ddelta, dz, dB, dC
      const double exps = bdl * 16;
      for (int mode = 0; mode < 2; ++mode) {
        const double ms = time_scan_ms(p, dv, mode == 1);
        const double official = dt == DType::BFloat16 ? (mode ? s.official_fb_bf16 : s.official_fwd_bf16)
                                                      : (mode ? s.official_fb_fp32 : s.official_fwd_fp32);
        const double bytes = mode ? fwd_bytes + bwd_bytes : fwd_bytes;
        const double nexp = mode ? 2 * exps : exps;  // forward + one recomputation in the backward
        printf("%-4s %-8s %-8s %9.3f %9.3f %8.2fx %10.0f %10.0f %8.3fms %8.3fms\n", s.name, dtype_name(dt),
               mode ? "fwd+bwd" : "fwd", ms, official, official / ms, bytes / (ms * 1e-3) / 1e9,
               nexp / (ms * 1e-3) / 1e9, bytes / kHbm * 1e3, nexp / kMufu * 1e3);
      }
    }
}

// Time segments forced through p.scan_segments (both directions) against the automatic plan (0), per bench shape,
// dtype and backward hand-off (p.scan_bwd_chain 1 summary pass, 2 chained): the data behind the plans' segment
// rules. bwd = fwd+bwd - fwd.
void run_sweep(const char* only) {
  struct Shape {
    const char* name;
    int batch, dim, L;
  };
  const Shape shapes[3] = {{"S1", 8, 1536, 2048}, {"S2", 4, 4096, 2048}, {"S3", 1, 1536, 16384}};
  printf("%-4s %-8s %4s %-8s %9s %9s %9s\n", "shape", "dtype", "K", "handoff", "fwd ms", "bwd ms", "fwd+bwd");
  for (const Shape& s : shapes) {
    if (only != nullptr && strcmp(only, s.name) != 0) continue;
    for (DType dt : {DType::BFloat16, DType::Float32})
      for (int chain : {1, 2})
        for (int k : {0, 1, 2, 3, 4, 6, 8, 11, 16, 24, 32, 48, 64}) {
          // S3's 48 blocks per segment would chain K walks end to end (bwd_fast_plan never chains there)
          if (chain == 2 && (k == 1 || k > 16 || s.batch * s.dim < 4096)) continue;
          const BenchSetup bs = bench_setup(s.batch, s.dim, s.L, dt, k, chain);
          const double f = time_scan_ms(bs.p, bs.dv, false), fb = time_scan_ms(bs.p, bs.dv, true);
          printf("%-4s %-8s %4d %-8s %9.3f %9.3f %9.3f\n", s.name, dtype_name(dt), k,
                 chain == 2 ? "chained" : "summary", f, fb - f, fb);
        }
  }
}

// Co-running probe for the S3 split (bf16): do the summary pass (MUFU-bound) and the forward pass (issue-bound)
// get more done sharing the SMs than in separate waves? Two half-S3 problems X and Y (1, 768, 16384), each planned
// as S3 is (a head and 11 segments of 44 chunks), and S3 itself; launches timed alone and in pairs on two streams
// (median of 30 after 10 warm-up runs, ms). "a | b": a on one stream, b on the other, b launched second.
void run_mix() {
  using namespace mamba::ss;
  constexpr DType kT = DType::BFloat16;
  BenchSetup X = bench_setup(1, 768, 16384, kT, 12), Y = bench_setup(1, 768, 16384, kT, 12),
             F = bench_setup(1, 1536, 16384, kT, 12);
  auto segs = [](BenchSetup& s) {
    const FwdPlan plan = fwd_plan<kT>(s.p, true);
    FwdSegments seg = fwd_segments(s.p, plan, s.dv.fws.p);
    seg.first = 1;
    printf("plan: %d segments, seg_len %d, head %d\n", plan.segments, plan.seg_len, plan.head_len);
    return seg;
  };
  const FwdSegments sx = segs(X), sy = segs(Y), sf = segs(F);
  for (BenchSetup* s : {&X, &Y, &F}) selective_scan_fwd_cuda(s->p, s->dv.fws.p, nullptr);  // fills the summaries
  CUDA_CHECK(cudaDeviceSynchronize());
  cudaStream_t s1, s2;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  CUDA_CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  cudaEvent_t e0, e1, j;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  CUDA_CHECK(cudaEventCreateWithFlags(&j, cudaEventDisableTiming));
  auto sum = [&](BenchSetup& s, const FwdSegments& g, cudaStream_t st) {
    fwd_fast_launch_pass<kT, true>(s.p, g, g.count - 2, st);
  };
  auto fwd = [&](BenchSetup& s, const FwdSegments& g, cudaStream_t st) {
    fwd_fast_launch_pass<kT, false, kFastMinBlocks, true>(s.p, g, g.count - 1, st);
  };
  auto head = [&](BenchSetup& s, FwdSegments g, cudaStream_t st) {
    g.first = 0;
    fwd_fast_launch_pass<kT, false, kFastMinBlocks, true>(s.p, g, 1, st);
  };
  using L = std::function<void(cudaStream_t)>;
  auto time2 = [&](const char* name, L a, L b) {
    std::vector<float> t;
    for (int it = 0; it < 40; ++it) {
      CUDA_CHECK(cudaEventRecord(e0, s1));
      a(s1);
      if (b) {
        CUDA_CHECK(cudaStreamWaitEvent(s2, e0, 0));
        b(s2);
        CUDA_CHECK(cudaEventRecord(j, s2));
        CUDA_CHECK(cudaStreamWaitEvent(s1, j, 0));
      }
      CUDA_CHECK(cudaEventRecord(e1, s1));
      CUDA_CHECK(cudaEventSynchronize(e1));
      float ms;
      CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      if (it >= 10) t.push_back(ms);
    }
    printf("%-44s %8.4f ms\n", name, median(t));
  };
  time2("S3 summaries (480 blocks)", [&](cudaStream_t s) { sum(F, sf, s); }, nullptr);
  time2("S3 forwards (528 blocks)", [&](cudaStream_t s) { fwd(F, sf, s); }, nullptr);
  time2("S3 head (48 blocks)", [&](cudaStream_t s) { head(F, sf, s); }, nullptr);
  time2("S3 summaries | head", [&](cudaStream_t s) { sum(F, sf, s); }, [&](cudaStream_t s) { head(F, sf, s); });
  time2("X summaries (240)", [&](cudaStream_t s) { sum(X, sx, s); }, nullptr);
  time2("Y forwards (264)", [&](cudaStream_t s) { fwd(Y, sy, s); }, nullptr);
  time2("X summaries | Y summaries", [&](cudaStream_t s) { sum(X, sx, s); }, [&](cudaStream_t s) { sum(Y, sy, s); });
  time2("X forwards | Y forwards", [&](cudaStream_t s) { fwd(X, sx, s); }, [&](cudaStream_t s) { fwd(Y, sy, s); });
  time2("X summaries | Y forwards", [&](cudaStream_t s) { sum(X, sx, s); }, [&](cudaStream_t s) { fwd(Y, sy, s); });
  time2("Y forwards | X summaries", [&](cudaStream_t s) { fwd(Y, sy, s); }, [&](cudaStream_t s) { sum(X, sx, s); });
  time2("X summaries, forwards | Y forwards, summaries",
        [&](cudaStream_t s) { sum(X, sx, s); fwd(X, sx, s); },
        [&](cudaStream_t s) { fwd(Y, sy, s); sum(Y, sy, s); });
  time2("S3 whole forward (library)", [&](cudaStream_t s) { selective_scan_fwd_cuda(F.p, F.dv.fws.p, s); }, nullptr);
  for (cudaEvent_t e : {e0, e1, j}) CUDA_CHECK(cudaEventDestroy(e));
  for (cudaStream_t st : {s1, s2}) CUDA_CHECK(cudaStreamDestroy(st));
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false, small = false, sweep = false, mix = false;
  const char* sweep_only = nullptr;
  const char* bench_only = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--bench")) {
      bench = true;
      if (i + 1 < argc && argv[i + 1][0] == 'S') bench_only = argv[++i];
    }
    else if (!strcmp(argv[i], "--sweep")) {
      sweep = true;
      if (i + 1 < argc && argv[i + 1][0] == 'S') sweep_only = argv[++i];
    }
    else if (!strcmp(argv[i], "--small")) small = true;
    else if (!strcmp(argv[i], "--mix")) mix = true;
    else {
      fprintf(stderr, "usage: %s [--small | --bench [S1|S2|S3] | --sweep [S1|S2|S3] | --mix]\n", argv[0]);
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    printf("no CUDA device: skipped\n");
    return 77;  // ctest's SKIP_RETURN_CODE
  }
  try {
    if (mix) {
      run_mix();
      return 0;
    }
    if (bench || sweep) {
      if (bench) run_bench(bench_only);
      if (sweep) run_sweep(sweep_only);
      return 0;
    }
    return run_checks(small);
  } catch (const std::exception& e) {
    fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
