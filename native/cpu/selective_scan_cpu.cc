// CPU selective scan kernels, forward and backward (declared in selective_scan_cpu.h; math and shapes in
// params.h; float64 references in test/native/selective_scan_cpu_test.cc and test/reference/selective_scan.ts;
// notes and measured speed in docs/kernels/selective_scan_cpu.md).
//
// Work is split over (batch, dim) rows. A row is walked in chunks of kScanCheckpointChunk steps: the chunk's
// inputs are converted to float32 once into per-worker scratch laid out [t][n] (n padded to a multiple of
// kLanes), all exp(dt * A) of the chunk are computed in one flat vectorisable pass, then the serial recurrence
// runs with the state dimension as the vector axis. The backward walks chunks last to first, recomputing the
// chunk's states from its checkpoint, so scratch is O(chunk * dstate) per worker.
#include "selective_scan_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../half.h"
#include "parallel.h"

namespace mamba {
namespace {

constexpr int kChunk = kScanCheckpointChunk;
// Lane-partial accumulators of this width make the per-step sums over n vectorisable without -ffast-math
// (each lane is its own sequential sum; the 8 lanes are then added in a fixed order).
constexpr int kLanes = 8;
constexpr int kMaxDstate = 256;
// The backward splits the channels of each (batch, group) into enough slices to give about this many
// independent work units. It depends only on the shape, never on the thread count, so dB/dC are reduced in
// the same order on any machine.
constexpr int kBwdUnitsTarget = 16;

inline float reduce_lanes(const float* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

// exp for the decays: Cody-Waite reduction to |r| <= ln2/2 and the Cephes degree-6 polynomial (about 2 ulp),
// written branch-free so the flat pass over a chunk vectorises (std::exp does not without -ffast-math).
// The scale 2^k is applied as two halves so arguments down to about -103 underflow gradually to 0 and
// arguments above about 88.7 overflow to +inf like expf. NaN stays NaN (the clamps keep it, arithmetic spreads it).
// GCC refuses to if-convert the float clamps under its default -ftrapping-math; FP exception flags mean
// nothing here, so the pass is compiled without it.
#if defined(__GNUC__) && !defined(__clang__)
#define MAMBA_NO_TRAPPING_MATH __attribute__((optimize("no-trapping-math")))
#else
#define MAMBA_NO_TRAPPING_MATH
#endif

MAMBA_NO_TRAPPING_MATH inline float exp_approx(float x) {
  x = x > 89.0f ? 89.0f : x;
  x = x < -104.0f ? -104.0f : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  float kb = x * 1.44269504088896341f + magic;
  float k = kb - magic;
  int32_t ki = static_cast<int32_t>(__builtin_bit_cast(uint32_t, kb) - __builtin_bit_cast(uint32_t, magic));
  float r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  float q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  q = q * (r * r) + r + 1.0f;
  int32_t k1 = ki >> 1;
  int32_t k2 = ki - k1;
  float s1 = __builtin_bit_cast(float, static_cast<uint32_t>(k1 + 127) << 23);
  float s2 = __builtin_bit_cast(float, static_cast<uint32_t>(k2 + 127) << 23);
  return q * s1 * s2;
}

MAMBA_NO_TRAPPING_MATH void exp_inplace(float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = exp_approx(x[i]);
}

inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void load_span(const void* base, DType t, int64_t off, int n, float* dst) {
  switch (t) {
    case DType::Float32: std::memcpy(dst, static_cast<const float*>(base) + off, sizeof(float) * n); break;
    case DType::Float16: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      break;
    }
    default: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      break;
    }
  }
}

// Loads n values base[off + i*stride] into dst[i*dst_stride]: used to transpose B/C (n, t) into [t][n].
void load_strided(const void* base, DType t, int64_t off, int n, float* dst, int dst_stride) {
  switch (t) {
    case DType::Float32: {
      const float* s = static_cast<const float*>(base) + off;
      for (int i = 0; i < n; ++i) dst[static_cast<int64_t>(i) * dst_stride] = s[i];
      break;
    }
    case DType::Float16: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) dst[static_cast<int64_t>(i) * dst_stride] = f16_to_f32(s[i]);
      break;
    }
    default: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) dst[static_cast<int64_t>(i) * dst_stride] = bf16_to_f32(s[i]);
      break;
    }
  }
}

void store_span(void* base, DType t, int64_t off, int n, const float* src) {
  switch (t) {
    case DType::Float32: std::memcpy(static_cast<float*>(base) + off, src, sizeof(float) * n); break;
    case DType::Float16: {
      uint16_t* d = static_cast<uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      break;
    }
    default: {
      uint16_t* d = static_cast<uint16_t*>(base) + off;
      for (int i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      break;
    }
  }
}

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("selective_scan_cpu: ") + what);
}

void check_params(const SelectiveScanParams& p, bool backward) {
  require(p.batch >= 1 && p.dim >= 1 && p.seqlen >= 1, "batch, dim and seqlen must be >= 1");
  require(p.dstate >= 1 && p.dstate <= kMaxDstate, "dstate must be in [1, 256]");
  require(p.n_groups >= 1 && p.dim % p.n_groups == 0, "n_groups must be >= 1 and divide dim");
  require(p.dtype == DType::Float32 || p.dtype == DType::Float16 || p.dtype == DType::BFloat16,
          "dtype must be float32, float16 or bfloat16");
  require(p.u && p.delta && p.A && p.B && p.C, "u, delta, A, B and C are required");
  require(!p.has_D || p.D, "has_D is set but D is null");
  require(!p.has_z || p.z, "has_z is set but z is null");
  require(!p.has_delta_bias || p.delta_bias, "has_delta_bias is set but delta_bias is null");
  require(!p.has_initial_state || p.initial_state, "has_initial_state is set but initial_state is null");
  if (!backward) {
    require(p.out != nullptr, "out is required");
    return;
  }
  require(p.dout && p.du && p.ddelta && p.dA && p.dB && p.dC, "dout, du, ddelta, dA, dB and dC are required");
  require(!p.has_D || p.dD, "has_D is set but dD is null");
  require(!p.has_z || p.dz, "has_z is set but dz is null");
  require(!p.has_delta_bias || p.ddelta_bias, "has_delta_bias is set but ddelta_bias is null");
}

struct Shape {
  int batch, dim, L, N, NP, G, cpg, nck;
  explicit Shape(const SelectiveScanParams& p)
      : batch(p.batch), dim(p.dim), L(p.seqlen), N(p.dstate), NP((p.dstate + kLanes - 1) / kLanes * kLanes),
        G(p.n_groups), cpg(p.dim / p.n_groups), nck(scan_num_checkpoints(p.seqlen)) {}
  int64_t row(int b, int d) const { return static_cast<int64_t>(b) * dim + d; }
};

// Per-worker scratch for one chunk of one row. Arrays indexed [t][n] have row stride NP; H has one extra
// leading row for the state before the chunk.
struct Scratch {
  int NP;
  std::vector<float> Ap, h, u, dt, dtu, dsp, y, z, dout, tmp;
  std::vector<float> carry, dA, dBinv, dCinv;  // backward per-row accumulators, NP each
  std::vector<float> a, Bc, Cc, H;
  std::vector<float> ck;
  explicit Scratch(int np, int nck)
      : NP(np), Ap(np), h(np), u(kChunk), dt(kChunk), dtu(kChunk), dsp(kChunk), y(kChunk), z(kChunk),
        dout(kChunk), tmp(kChunk), carry(np), dA(np), dBinv(np), dCinv(np), a(static_cast<size_t>(kChunk) * np), Bc(static_cast<size_t>(kChunk) * np),
        Cc(static_cast<size_t>(kChunk) * np), H(static_cast<size_t>(kChunk + 1) * np),
        ck(static_cast<size_t>(nck) * np) {}
};

// Fills s.Ap with A[d, :] padded with zeros (the pad lanes then carry a = 1, B = C = 0 and stay at h = 0).
void load_A(const SelectiveScanParams& p, const Shape& sh, int d, Scratch& s) {
  for (int n = 0; n < sh.NP; ++n) s.Ap[n] = n < sh.N ? p.A[static_cast<int64_t>(d) * sh.N + n] : 0.0f;
}

// Loads B or C for steps [t0, t0 + len) of row (b, d) into dst[t][n].
void load_bc(const SelectiveScanParams& p, const Shape& sh, const void* src, bool variable, int b, int d, int t0,
             int len, float* dst) {
  const int NP = sh.NP;
  if (variable) {
    const int g = d / sh.cpg;
    const int64_t base = (static_cast<int64_t>(b) * sh.G + g) * sh.N * sh.L;
    for (int n = 0; n < sh.N; ++n) load_strided(src, p.dtype, base + static_cast<int64_t>(n) * sh.L + t0, len, dst + n, NP);
  } else {
    float row[kMaxDstate];
    load_span(src, p.dtype, static_cast<int64_t>(d) * sh.N, sh.N, row);
    for (int t = 0; t < len; ++t)
      for (int n = 0; n < sh.N; ++n) dst[static_cast<int64_t>(t) * NP + n] = row[n];
  }
  if (sh.N < NP)
    for (int t = 0; t < len; ++t)
      for (int n = sh.N; n < NP; ++n) dst[static_cast<int64_t>(t) * NP + n] = 0.0f;
}

// Converts the chunk's inputs: u, dt (bias + softplus), dt*u, the softplus derivative, B, C, and the decays
// a[t][n] = exp(dt_t * A_n) (one exp per (t, n), shared by the recurrence and the adjoint).
void prepare_chunk(const SelectiveScanParams& p, const Shape& sh, int b, int d, int t0, int len, Scratch& s) {
  const int NP = sh.NP;
  const int64_t off = sh.row(b, d) * sh.L + t0;
  load_span(p.u, p.dtype, off, len, s.u.data());
  load_span(p.delta, p.dtype, off, len, s.dt.data());
  const float bias = p.has_delta_bias ? p.delta_bias[d] : 0.0f;
  for (int t = 0; t < len; ++t) {
    float r = s.dt[t] + bias;
    if (p.delta_softplus) {
      s.dsp[t] = r > 20.0f ? 1.0f : sigmoid(r);
      r = softplus(r);
    } else {
      s.dsp[t] = 1.0f;
    }
    s.dt[t] = r;
    s.dtu[t] = r * s.u[t];
  }
  float* __restrict a = s.a.data();
  const float* __restrict Ap = s.Ap.data();
  for (int t = 0; t < len; ++t) {
    const float x = s.dt[t];
    for (int n = 0; n < NP; ++n) a[static_cast<int64_t>(t) * NP + n] = x * Ap[n];
  }
  exp_inplace(a, static_cast<int64_t>(len) * NP);
  load_bc(p, sh, p.B, p.is_variable_B, b, d, t0, len, s.Bc.data());
  load_bc(p, sh, p.C, p.is_variable_C, b, d, t0, len, s.Cc.data());
}

// The recurrence over one prepared chunk, starting from state h (updated in place). Writes y_t = sum_n C h
// (without the D term) and, when store_states, the state after each step into H[t + 1].
template <bool store_states>
void scan_chunk(int NP, int len, Scratch& s) {
  float* __restrict h = s.h.data();
  float* __restrict H = s.H.data();
  const float* __restrict a = s.a.data();
  const float* __restrict Bc = s.Bc.data();
  const float* __restrict Cc = s.Cc.data();
  for (int t = 0; t < len; ++t) {
    const float dtu = s.dtu[t];
    const float* __restrict at = a + static_cast<int64_t>(t) * NP;
    const float* __restrict Bt = Bc + static_cast<int64_t>(t) * NP;
    const float* __restrict Ct = Cc + static_cast<int64_t>(t) * NP;
    float* __restrict Ht = H + static_cast<int64_t>(t + 1) * NP;
    float acc[kLanes] = {};
    for (int n0 = 0; n0 < NP; n0 += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const int n = n0 + j;
        const float hn = at[n] * h[n] + dtu * Bt[n];
        h[n] = hn;
        if (store_states) Ht[n] = hn;
        acc[j] += Ct[n] * hn;
      }
    }
    s.y[t] = reduce_lanes(acc);
  }
}

// Forward over one row. out may be null (the backward uses this to rebuild checkpoints); ck, when non-null,
// receives nck states of N floats.
void forward_row(const SelectiveScanParams& p, const Shape& sh, int b, int d, Scratch& s, float* ck, bool write_out) {
  const int64_t row = sh.row(b, d);
  load_A(p, sh, d, s);
  for (int n = 0; n < sh.NP; ++n)
    s.h[n] = (p.has_initial_state && n < sh.N) ? p.initial_state[row * sh.N + n] : 0.0f;
  const float Dd = p.has_D ? p.D[d] : 0.0f;
  for (int c = 0; c < sh.nck; ++c) {
    const int t0 = c * kChunk;
    const int len = std::min(kChunk, sh.L - t0);
    if (ck) std::memcpy(ck + static_cast<int64_t>(c) * sh.N, s.h.data(), sizeof(float) * sh.N);
    prepare_chunk(p, sh, b, d, t0, len, s);
    scan_chunk<false>(sh.NP, len, s);
    if (!write_out) continue;
    const int64_t off = row * sh.L + t0;
    if (p.has_z) load_span(p.z, p.dtype, off, len, s.z.data());
    for (int t = 0; t < len; ++t) {
      float y = s.y[t] + Dd * s.u[t];
      if (p.has_z) y *= s.z[t] * sigmoid(s.z[t]);
      s.tmp[t] = y;
    }
    store_span(p.out, p.dtype, off, len, s.tmp.data());
  }
  if (write_out && p.last_state) std::memcpy(p.last_state + row * sh.N, s.h.data(), sizeof(float) * sh.N);
}

// Reverse sweep over one recomputed chunk (H[t] = state before step t, H[t + 1] after). carry holds the
// adjoint arriving from step len (times its decay) and leaves holding the adjoint of the state before the
// chunk. Per step t it writes sGB[t] = sum_n g B and sAA[t] = sum_n d(dt A) A, and accumulates dA (times
// dt), dB and dC (row t of dB/dC at base + t * stride; stride 0 sums over t for time-invariant B/C).
// A separate function with restrict parameters: inlined into backward_row GCC no longer vectorises it.
void adjoint_chunk(int NP, int len, const float* __restrict dy_, const float* __restrict dt,
                   const float* __restrict dtu_, const float* __restrict a, const float* __restrict Bc,
                   const float* __restrict Cc, const float* __restrict H, const float* __restrict Ap,
                   float* __restrict carry, float* __restrict dA_acc, float* __restrict dB_base, int64_t dB_stride,
                   float* __restrict dC_base, int64_t dC_stride, float* __restrict sGB, float* __restrict sAA) {
  for (int t = len - 1; t >= 0; --t) {
    const float dy = dy_[t], x = dt[t], dtu = dtu_[t];
    const int64_t tn = static_cast<int64_t>(t) * NP;
    const float* __restrict at = a + tn;
    const float* __restrict Bt = Bc + tn;
    const float* __restrict Ct = Cc + tn;
    const float* __restrict Hp = H + tn;
    const float* __restrict Ht = H + tn + NP;
    float* __restrict dBt = dB_base + t * dB_stride;
    float* __restrict dCt = dC_base + t * dC_stride;
    float accGB[kLanes] = {}, accAA[kLanes] = {};
    for (int n0 = 0; n0 < NP; n0 += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const int n = n0 + j;
        const float g = carry[n] + Ct[n] * dy;  // adjoint of h_t
        dCt[n] += dy * Ht[n];
        dBt[n] += g * dtu;
        accGB[j] += g * Bt[n];
        const float dax = g * Hp[n] * at[n];  // adjoint of dt_t * A_n
        accAA[j] += dax * Ap[n];
        dA_acc[n] += dax * x;
        carry[n] = at[n] * g;
      }
    }
    sGB[t] = reduce_lanes(accGB);
    sAA[t] = reduce_lanes(accAA);
  }
}

// Per-row outputs of the backward that are later summed over the batch (or, for variable B/C, the per-unit
// slices summed over channel slices) in a fixed order.
struct BwdPartials {
  std::vector<float> dA, dD, dbias, dBinv, dCinv;  // per row: NP, 1, 1, NP, NP
  std::unique_ptr<float[]> dBvar, dCvar;           // per unit: L * NP, [t][n]
};

// Backward over one row, accumulating dB/dC for variable B/C into dBu/dCu ([t][n], the unit's slice).
void backward_row(const SelectiveScanParams& p, const Shape& sh, int b, int d, Scratch& s, BwdPartials& part,
                  float* dBu, float* dCu) {
  const int NP = sh.NP;
  const int64_t row = sh.row(b, d);
  const float* ck;
  if (p.checkpoints) {
    ck = p.checkpoints + row * sh.nck * sh.N;
  } else {
    forward_row(p, sh, b, d, s, s.ck.data(), false);
    ck = s.ck.data();
  }
  load_A(p, sh, d, s);
  const float Dd = p.has_D ? p.D[d] : 0.0f;

  float* __restrict carry = s.carry.data();
  float* __restrict dA_acc = s.dA.data();
  for (int n = 0; n < NP; ++n) {
    carry[n] = (p.dlast_state && n < sh.N) ? p.dlast_state[row * sh.N + n] : 0.0f;
    dA_acc[n] = s.dBinv[n] = s.dCinv[n] = 0.0f;
  }
  // Variable B/C accumulate into the unit's [t][n] slab; time-invariant ones into one NP vector (stride 0).
  float* const dB_base = dBu ? dBu : s.dBinv.data();
  float* const dC_base = dCu ? dCu : s.dCinv.data();
  const int64_t dB_stride = dBu ? NP : 0, dC_stride = dCu ? NP : 0;
  float dD_acc = 0.0f, dbias_acc = 0.0f;

  for (int c = sh.nck - 1; c >= 0; --c) {
    const int t0 = c * kChunk;
    const int len = std::min(kChunk, sh.L - t0);
    const int64_t off = row * sh.L + t0;
    prepare_chunk(p, sh, b, d, t0, len, s);
    for (int n = 0; n < NP; ++n) s.h[n] = n < sh.N ? ck[static_cast<int64_t>(c) * sh.N + n] : 0.0f;
    std::memcpy(s.H.data(), s.h.data(), sizeof(float) * NP);
    scan_chunk<true>(NP, len, s);

    load_span(p.dout, p.dtype, off, len, s.dout.data());
    if (p.has_z) {
      load_span(p.z, p.dtype, off, len, s.z.data());
      for (int t = 0; t < len; ++t) {
        const float zt = s.z[t], sg = sigmoid(zt);
        const float y = s.y[t] + Dd * s.u[t];
        s.z[t] = s.dout[t] * y * sg * (1.0f + zt * (1.0f - sg));  // dz
        s.dout[t] *= zt * sg;                                     // dy
      }
      store_span(p.dz, p.dtype, off, len, s.z.data());
    }

    adjoint_chunk(NP, len, s.dout.data(), s.dt.data(), s.dtu.data(), s.a.data(), s.Bc.data(), s.Cc.data(),
                  s.H.data(), s.Ap.data(), carry, dA_acc, dB_base + t0 * dB_stride, dB_stride,
                  dC_base + t0 * dC_stride, dC_stride, s.tmp.data(), s.y.data());
    for (int t = 0; t < len; ++t) {
      const float dy = s.dout[t], sGB = s.tmp[t];
      const float ddt = (s.u[t] * sGB + s.y[t]) * s.dsp[t];  // adjoint of the raw delta + bias
      s.tmp[t] = s.dt[t] * sGB + Dd * dy;                   // du
      s.y[t] = ddt;
      dbias_acc += ddt;
      dD_acc += dy * s.u[t];
    }
    store_span(p.du, p.dtype, off, len, s.tmp.data());
    store_span(p.ddelta, p.dtype, off, len, s.y.data());
  }
  if (p.dinitial_state) std::memcpy(p.dinitial_state + row * sh.N, carry, sizeof(float) * sh.N);
  std::memcpy(part.dA.data() + row * NP, dA_acc, sizeof(float) * NP);
  part.dD[row] = dD_acc;
  part.dbias[row] = dbias_acc;
  if (!p.is_variable_B) std::memcpy(part.dBinv.data() + row * NP, s.dBinv.data(), sizeof(float) * NP);
  if (!p.is_variable_C) std::memcpy(part.dCinv.data() + row * NP, s.dCinv.data(), sizeof(float) * NP);
}

// Writes a (dim, dstate) weight gradient: out[d, n] = sum over b in order of part[(b, d)][n], in dtype.
void reduce_weight(const Shape& sh, const std::vector<float>& part, DType dtype, void* out) {
  std::vector<float> acc(sh.N);
  for (int d = 0; d < sh.dim; ++d) {
    for (int n = 0; n < sh.N; ++n) acc[n] = 0.0f;
    for (int b = 0; b < sh.batch; ++b)
      for (int n = 0; n < sh.N; ++n) acc[n] += part[sh.row(b, d) * sh.NP + n];
    store_span(out, dtype, static_cast<int64_t>(d) * sh.N, sh.N, acc.data());
  }
}

}  // namespace

void selective_scan_fwd_cpu(const SelectiveScanParams& p) {
  check_params(p, false);
  const Shape sh(p);
  const int64_t rows = static_cast<int64_t>(sh.batch) * sh.dim;
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    Scratch s(sh.NP, 0);
    for (int64_t r = r0; r < r1; ++r) {
      const int b = static_cast<int>(r / sh.dim), d = static_cast<int>(r % sh.dim);
      float* ck = p.checkpoints ? p.checkpoints + r * sh.nck * sh.N : nullptr;
      forward_row(p, sh, b, d, s, ck, true);
    }
  });
}

void selective_scan_bwd_cpu(const SelectiveScanParams& p) {
  check_params(p, true);
  const Shape sh(p);
  const int64_t rows = static_cast<int64_t>(sh.batch) * sh.dim;
  const int64_t bg = static_cast<int64_t>(sh.batch) * sh.G;
  const int slices = static_cast<int>(
      std::min<int64_t>(sh.cpg, std::max<int64_t>(1, (kBwdUnitsTarget + bg - 1) / bg)));
  const int64_t units = bg * slices;
  const int64_t slab = static_cast<int64_t>(sh.L) * sh.NP;

  BwdPartials part;
  part.dA.assign(rows * sh.NP, 0.0f);
  part.dD.assign(rows, 0.0f);
  part.dbias.assign(rows, 0.0f);
  if (!p.is_variable_B) part.dBinv.assign(rows * sh.NP, 0.0f);
  if (!p.is_variable_C) part.dCinv.assign(rows * sh.NP, 0.0f);
  if (p.is_variable_B) part.dBvar.reset(new float[units * slab]);
  if (p.is_variable_C) part.dCvar.reset(new float[units * slab]);

  // A unit is (b, g, slice): the slice's channels run in order and accumulate into the unit's own dB/dC slab.
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    Scratch s(sh.NP, sh.nck);
    for (int64_t unit = u0; unit < u1; ++unit) {
      const int64_t bgi = unit / slices;
      const int k = static_cast<int>(unit % slices);
      const int b = static_cast<int>(bgi / sh.G), g = static_cast<int>(bgi % sh.G);
      const int c0 = static_cast<int>(static_cast<int64_t>(sh.cpg) * k / slices);
      const int c1 = static_cast<int>(static_cast<int64_t>(sh.cpg) * (k + 1) / slices);
      float* dBu = p.is_variable_B ? part.dBvar.get() + unit * slab : nullptr;
      float* dCu = p.is_variable_C ? part.dCvar.get() + unit * slab : nullptr;
      if (dBu) std::memset(dBu, 0, sizeof(float) * slab);
      if (dCu) std::memset(dCu, 0, sizeof(float) * slab);
      for (int c = c0; c < c1; ++c) backward_row(p, sh, b, g * sh.cpg + c, s, part, dBu, dCu);
    }
  });

  // dB/dC for variable B/C: sum the slices of each (b, g) in slice order, transpose [t][n] -> (n, t), round.
  auto reduce_var = [&](const float* slabs, void* out) {
    parallel_for(bg * sh.N, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> line(sh.L);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t bgi = i / sh.N;
        const int n = static_cast<int>(i % sh.N);
        for (int t = 0; t < sh.L; ++t) {
          float acc = 0.0f;
          for (int k = 0; k < slices; ++k) acc += slabs[(bgi * slices + k) * slab + static_cast<int64_t>(t) * sh.NP + n];
          line[t] = acc;
        }
        store_span(out, p.dtype, i * sh.L, sh.L, line.data());
      }
    });
  };
  if (p.is_variable_B) reduce_var(part.dBvar.get(), p.dB);
  else reduce_weight(sh, part.dBinv, p.dtype, p.dB);
  if (p.is_variable_C) reduce_var(part.dCvar.get(), p.dC);
  else reduce_weight(sh, part.dCinv, p.dtype, p.dC);

  reduce_weight(sh, part.dA, DType::Float32, p.dA);
  for (int d = 0; d < sh.dim; ++d) {
    float dD = 0.0f, dbias = 0.0f;
    for (int b = 0; b < sh.batch; ++b) {
      dD += part.dD[sh.row(b, d)];
      dbias += part.dbias[sh.row(b, d)];
    }
    if (p.has_D) p.dD[d] = dD;
    if (p.has_delta_bias) p.ddelta_bias[d] = dbias;
  }
}

}  // namespace mamba
