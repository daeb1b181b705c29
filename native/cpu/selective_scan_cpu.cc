// CPU selective scan kernels, forward and backward (declared in selective_scan_cpu.h; math and shapes in
// params.h; float64 references in test/native/selective_scan_cpu_test.cc and test/reference/selective_scan.ts;
// notes and measured speed in docs/kernels/selective_scan_cpu.md).
//
// Shapes: u/delta/z/out and their gradients (batch, dim, L); A (dim, dstate); B/C (batch, n_groups, dstate, L)
// or (dim, dstate); states and checkpoints float32 (batch, dim, [n_ckpt,] dstate). A row is one (b, d), walked
// in chunks of kScanCheckpointChunk steps: the chunk's inputs are converted to float32 once into per-worker
// scratch laid out [t][n] (n padded to a multiple of kLanes), all exp(dt * A) of the chunk are computed in one
// flat vectorisable pass, then the serial recurrence runs with the state axis as the vector axis. Rows are
// processed in tiles of kTile channels of one group so a chunk of B/C is converted once per tile. The backward
// walks chunks last to first, recomputing each chunk's states from its checkpoint, so scratch is
// O(chunk * dstate) per worker; its work units and reduction order depend only on the shape, which makes the
// result bitwise independent of the thread count.
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

// Steps converted and scanned per pass over a row: a multiple of the checkpoint interval, long enough that the
// per-chunk setup (conversions, the flat exp pass) stays small next to the recurrence.
constexpr int kChunk = 256;
constexpr int kCkptPerChunk = kChunk / kScanCheckpointChunk;
static_assert(kChunk % kScanCheckpointChunk == 0, "checkpoints fall inside chunks at fixed offsets");
// Lane-partial accumulators of this width make the per-step sums over n vectorisable without -ffast-math
// (each lane is its own sequential sum; the 8 lanes are then added in a fixed order).
constexpr int kLanes = 8;
constexpr int kMaxDstate = 256;
// The backward splits the channels of each (batch, group) into enough slices to give about this many
// independent work units. It depends only on the shape, never on the thread count, so dB/dC are reduced in
// the same order on any machine.
constexpr int kBwdUnitsTarget = 16;
// Channels of one group walked together chunk by chunk, so each chunk of B/C is converted once per tile.
constexpr int kTile = 16;

// The hot loops are compiled twice, for baseline x86-64 and for x86-64-v3 (AVX2 + FMA), and the loader picks
// one per process (GNU ifunc), so a portable build still gets 8-wide vectors and FMA where the CPU has them.
// Results then differ in rounding between CPUs, never between runs or thread counts on one machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(__AVX2__)
#define MAMBA_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define MAMBA_HOT
#endif

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

// The decays of one chunk: a[t][n] = exp(dt[t] * A[n]) for len steps of NP states.
MAMBA_HOT MAMBA_NO_TRAPPING_MATH void decay_chunk(const float* __restrict dt, const float* __restrict A, int NP,
                                                  int len, float* __restrict a) {
  for (int t = 0; t < len; ++t) {
    const float x = dt[t];
    float* __restrict at = a + static_cast<int64_t>(t) * NP;
    for (int n = 0; n < NP; ++n) at[n] = exp_approx(x * A[n]);
  }
}

// Natural log for x > 0 (Cephes logf polynomial, about 1 ulp); branch-free so loops over it vectorise.
MAMBA_NO_TRAPPING_MATH inline float log_approx(float x) {
  const uint32_t bits = __builtin_bit_cast(uint32_t, x);
  float e = static_cast<float>(static_cast<int32_t>((bits >> 23) & 0xffu) - 126);
  float m = __builtin_bit_cast(float, (bits & 0x807fffffu) | 0x3f000000u);  // mantissa in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return m + y + 0.693359375f * e;
}

// dt = softplus(raw) (raw itself above 20, like mamba_ssm) and dsp = d softplus / d raw, over n steps.
// log1p(v) = log(1 + v) * v / ((1 + v) - 1) keeps full relative accuracy for small v.
MAMBA_HOT MAMBA_NO_TRAPPING_MATH void softplus_span(const float* __restrict raw, float* __restrict dt, float* __restrict dsp,
                                          int n) {
  for (int i = 0; i < n; ++i) {
    const float r = raw[i], v = exp_approx(r), w = 1.0f + v;
    const float l = w == 1.0f ? v : log_approx(w) * (v / (w - 1.0f));
    dt[i] = r > 20.0f ? r : l;
    dsp[i] = r > 20.0f ? 1.0f : v / w;
  }
}

// s = sigmoid(z) over n steps.
MAMBA_HOT MAMBA_NO_TRAPPING_MATH void sigmoid_span(const float* __restrict z, float* __restrict s, int n) {
  for (int i = 0; i < n; ++i) s[i] = 1.0f / (1.0f + exp_approx(-z[i]));
}

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
  int batch, dim, L, N, NP, G, cpg, nck, nchunks;  // nck: checkpoints per row; nchunks: kChunk-step chunks
  explicit Shape(const SelectiveScanParams& p)
      : batch(p.batch), dim(p.dim), L(p.seqlen), N(p.dstate), NP((p.dstate + kLanes - 1) / kLanes * kLanes),
        G(p.n_groups), cpg(p.dim / p.n_groups), nck(scan_num_checkpoints(p.seqlen)),
        nchunks((p.seqlen + kChunk - 1) / kChunk) {}
  int64_t row(int b, int d) const { return static_cast<int64_t>(b) * dim + d; }
};

// Per-worker scratch. Arrays indexed [t][n] have row stride NP; per-channel arrays of a tile are [i][n].
struct Scratch {
  // per tile: the chunk's variable B/C, and per channel the carried state and the backward accumulators
  std::vector<float> Bc, Cc, h, carry, dA, dBinv, dCinv, dD, dbias, ck;
  // per channel and chunk; H[0] is the state before the chunk, H[t + 1] the state after step t
  std::vector<float> Ap, Binv, Cinv, hb, u, dt, dtu, dsp, y, z, sg, dout, tmp, a, H;
  Scratch(int NP, int nck_scratch) {
    const size_t tn = static_cast<size_t>(kChunk) * NP, cn = static_cast<size_t>(kTile) * NP;
    for (auto* v : {&Bc, &Cc, &a}) v->resize(tn);
    H.resize(tn + NP);
    for (auto* v : {&h, &carry, &dA, &dBinv, &dCinv}) v->resize(cn);
    for (auto* v : {&dD, &dbias}) v->resize(kTile);
    ck.resize(static_cast<size_t>(kTile) * nck_scratch);
    for (auto* v : {&Ap, &Binv, &Cinv, &hb}) v->resize(NP);
    for (auto* v : {&u, &dt, &dtu, &dsp, &y, &z, &sg, &dout, &tmp}) v->resize(kChunk);
  }
};

// Loads variable B or C of (batch b, group g) for steps [t0, t0 + len) into dst[t][n], pad lanes zero.
void load_bc_chunk(const SelectiveScanParams& p, const Shape& sh, const void* src, int b, int g, int t0, int len,
                   float* dst) {
  const int64_t base = (static_cast<int64_t>(b) * sh.G + g) * sh.N * sh.L + t0;
  for (int n = 0; n < sh.N; ++n) load_strided(src, p.dtype, base + static_cast<int64_t>(n) * sh.L, len, dst + n, sh.NP);
  if (sh.N < sh.NP)
    for (int t = 0; t < len; ++t)
      for (int n = sh.N; n < sh.NP; ++n) dst[static_cast<int64_t>(t) * sh.NP + n] = 0.0f;
}

// Loads a (dim, dstate) row d (A in float32, or time-invariant B/C in dtype) into dst[NP], pad lanes zero.
// Zero pad lanes of A give a = 1 there; with B = C = 0 the pad states stay 0 and add nothing.
void load_dn_row(const void* src, DType t, const Shape& sh, int d, float* dst) {
  load_span(src, t, static_cast<int64_t>(d) * sh.N, sh.N, dst);
  for (int n = sh.N; n < sh.NP; ++n) dst[n] = 0.0f;
}

// Per-channel inputs of one chunk: u, dt (bias, softplus), dt * u, the softplus derivative, and the decays
// a[t][n] = exp(dt_t * A_n), one exp per (t, n) shared by the recurrence and the adjoint.
void prepare_channel(const SelectiveScanParams& p, const Shape& sh, int b, int d, int t0, int len, Scratch& s) {
  const int NP = sh.NP;
  const int64_t off = sh.row(b, d) * sh.L + t0;
  load_dn_row(p.A, DType::Float32, sh, d, s.Ap.data());
  if (!p.is_variable_B) load_dn_row(p.B, p.dtype, sh, d, s.Binv.data());
  if (!p.is_variable_C) load_dn_row(p.C, p.dtype, sh, d, s.Cinv.data());
  load_span(p.u, p.dtype, off, len, s.u.data());
  load_span(p.delta, p.dtype, off, len, s.tmp.data());
  if (p.has_delta_bias)
    for (int t = 0; t < len; ++t) s.tmp[t] += p.delta_bias[d];
  if (p.delta_softplus) {
    softplus_span(s.tmp.data(), s.dt.data(), s.dsp.data(), len);
  } else {
    for (int t = 0; t < len; ++t) s.dt[t] = s.tmp[t], s.dsp[t] = 1.0f;
  }
  for (int t = 0; t < len; ++t) s.dtu[t] = s.dt[t] * s.u[t];
  decay_chunk(s.dt.data(), s.Ap.data(), NP, len, s.a.data());
}

// B and C as seen by the recurrence: [t][n] rows of the tile's chunk (stride NP), or the channel's
// time-invariant row repeated (stride 0).
struct BCView {
  const float *B, *C;
  int64_t bs, cs;
};

BCView bc_view(const SelectiveScanParams& p, const Shape& sh, const Scratch& s) {
  return {p.is_variable_B ? s.Bc.data() : s.Binv.data(), p.is_variable_C ? s.Cc.data() : s.Cinv.data(),
          p.is_variable_B ? sh.NP : 0, p.is_variable_C ? sh.NP : 0};
}

// The recurrence over one prepared chunk from state h (updated in place). Writes y_t = sum_n C h (without
// the D term) and, when store_states (scan_chunk_keep), the state after step t into H[t + 1].
template <bool store_states>
inline __attribute__((always_inline)) void scan_chunk_impl(int NP, int len, const float* __restrict dtu, const float* __restrict a, const float* __restrict B,
                int64_t bs, const float* __restrict C, int64_t cs, float* __restrict h, float* __restrict H,
                float* __restrict y) {
  for (int t = 0; t < len; ++t) {
    const float du = dtu[t];
    const float* __restrict at = a + static_cast<int64_t>(t) * NP;
    const float* __restrict Bt = B + t * bs;
    const float* __restrict Ct = C + t * cs;
    float* __restrict Ht = H + static_cast<int64_t>(t + 1) * NP;
    float acc[kLanes] = {};
    for (int n0 = 0; n0 < NP; n0 += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const int n = n0 + j;
        const float hn = at[n] * h[n] + du * Bt[n];
        h[n] = hn;
        if (store_states) Ht[n] = hn;
        acc[j] += Ct[n] * hn;
      }
    }
    y[t] = reduce_lanes(acc);
  }
}

MAMBA_HOT void scan_chunk(int NP, int len, const float* __restrict dtu, const float* __restrict a,
                          const float* __restrict B, int64_t bs, const float* __restrict C, int64_t cs,
                          float* __restrict h, float* __restrict y) {
  scan_chunk_impl<false>(NP, len, dtu, a, B, bs, C, cs, h, nullptr, y);
}

MAMBA_HOT void scan_chunk_keep(int NP, int len, const float* __restrict dtu, const float* __restrict a,
                               const float* __restrict B, int64_t bs, const float* __restrict C, int64_t cs,
                               float* __restrict h, float* __restrict H, float* __restrict y) {
  scan_chunk_impl<true>(NP, len, dtu, a, B, bs, C, cs, h, H, y);
}

// Reverse sweep over one recomputed chunk (H[t] = state before step t, H[t + 1] after). carry holds the
// adjoint arriving from step len (times its decay) and leaves holding the adjoint of the state before the
// chunk. Per step t it writes sGB[t] = sum_n g B and sAA[t] = sum_n d(dt A) A, and accumulates dA (times
// dt), dB and dC (row t of dB/dC at base + t * stride; stride 0 sums over t for time-invariant B/C).
// A separate function with restrict parameters: inlined into its caller GCC no longer vectorises it.
MAMBA_HOT void adjoint_chunk(int NP, int len, const float* __restrict dy_, const float* __restrict dt,
                   const float* __restrict dtu_, const float* __restrict a, const float* __restrict B, int64_t bs,
                   const float* __restrict C, int64_t cs, const float* __restrict H, const float* __restrict Ap,
                   float* __restrict carry, float* __restrict dA_acc, float* __restrict dB_base, int64_t dB_stride,
                   float* __restrict dC_base, int64_t dC_stride, float* __restrict sGB, float* __restrict sAA) {
  for (int t = len - 1; t >= 0; --t) {
    const float dy = dy_[t], x = dt[t], dtu = dtu_[t];
    const int64_t tn = static_cast<int64_t>(t) * NP;
    const float* __restrict at = a + tn;
    const float* __restrict Bt = B + t * bs;
    const float* __restrict Ct = C + t * cs;
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

// Forward over the nch consecutive channels d0.. of one group of batch row b (a tile), chunk by chunk so each
// chunk of variable B/C is converted once for the whole tile. ck, when non-null, receives the tile's
// checkpoints ([i][nck][N], the layout of p.checkpoints). out and last_state are written when write_out.
void forward_tile(const SelectiveScanParams& p, const Shape& sh, int b, int d0, int nch, Scratch& s, float* ck,
                  bool write_out) {
  const int NP = sh.NP, g = d0 / sh.cpg;
  for (int i = 0; i < nch; ++i)
    for (int n = 0; n < NP; ++n)
      s.h[i * NP + n] = (p.has_initial_state && n < sh.N) ? p.initial_state[sh.row(b, d0 + i) * sh.N + n] : 0.0f;
  for (int c = 0; c < sh.nchunks; ++c) {
    const int t0 = c * kChunk, len = std::min(kChunk, sh.L - t0);
    if (p.is_variable_B) load_bc_chunk(p, sh, p.B, b, g, t0, len, s.Bc.data());
    if (p.is_variable_C) load_bc_chunk(p, sh, p.C, b, g, t0, len, s.Cc.data());
    for (int i = 0; i < nch; ++i) {
      const int d = d0 + i;
      float* h = s.h.data() + i * NP;
      prepare_channel(p, sh, b, d, t0, len, s);
      const BCView v = bc_view(p, sh, s);
      if (ck) {
        // Scanned in checkpoint intervals so the state before each one is recorded.
        for (int t1 = 0; t1 < len; t1 += kScanCheckpointChunk) {
          const int l1 = std::min(kScanCheckpointChunk, len - t1);
          std::memcpy(ck + (static_cast<int64_t>(i) * sh.nck + (t0 + t1) / kScanCheckpointChunk) * sh.N, h,
                      sizeof(float) * sh.N);
          scan_chunk(NP, l1, s.dtu.data() + t1, s.a.data() + static_cast<int64_t>(t1) * NP, v.B + t1 * v.bs, v.bs,
                     v.C + t1 * v.cs, v.cs, h, s.y.data() + t1);
        }
      } else {
        scan_chunk(NP, len, s.dtu.data(), s.a.data(), v.B, v.bs, v.C, v.cs, h, s.y.data());
      }
      if (!write_out) continue;
      const float Dd = p.has_D ? p.D[d] : 0.0f;
      const int64_t off = sh.row(b, d) * sh.L + t0;
      for (int t = 0; t < len; ++t) s.y[t] += Dd * s.u[t];
      if (p.has_z) {
        load_span(p.z, p.dtype, off, len, s.z.data());
        sigmoid_span(s.z.data(), s.sg.data(), len);
        for (int t = 0; t < len; ++t) s.y[t] *= s.z[t] * s.sg[t];
      }
      store_span(p.out, p.dtype, off, len, s.y.data());
    }
  }
  if (write_out && p.last_state)
    for (int i = 0; i < nch; ++i)
      std::memcpy(p.last_state + sh.row(b, d0 + i) * sh.N, s.h.data() + i * NP, sizeof(float) * sh.N);
}

// Per-row outputs of the backward that are summed afterwards in a fixed order: over the batch for the
// (dim, ...) weights, over channel slices for variable dB/dC.
struct BwdPartials {
  std::vector<float> dA, dD, dbias, dBinv, dCinv;  // per row: NP, 1, 1, NP, NP
  std::unique_ptr<float[]> dBvar, dCvar;           // per unit: L * NP, [t][n]
};

// Backward over a tile (see forward_tile), accumulating variable dB/dC into dBu/dCu ([t][n], the unit's slab)
// in channel order. Chunks run last to first; each channel's states are recomputed from its checkpoint.
void backward_tile(const SelectiveScanParams& p, const Shape& sh, int b, int d0, int nch, Scratch& s,
                   BwdPartials& part, float* dBu, float* dCu) {
  const int NP = sh.NP, g = d0 / sh.cpg;
  const float* ck;
  if (p.checkpoints) {
    ck = p.checkpoints + sh.row(b, d0) * sh.nck * sh.N;
  } else {
    forward_tile(p, sh, b, d0, nch, s, s.ck.data(), false);
    ck = s.ck.data();
  }
  for (int i = 0; i < nch; ++i) {
    const int64_t row = sh.row(b, d0 + i);
    for (int n = 0; n < NP; ++n) {
      const int64_t k = static_cast<int64_t>(i) * NP + n;
      s.carry[k] = (p.dlast_state && n < sh.N) ? p.dlast_state[row * sh.N + n] : 0.0f;
      s.dA[k] = s.dBinv[k] = s.dCinv[k] = 0.0f;
    }
    s.dD[i] = s.dbias[i] = 0.0f;
  }
  for (int c = sh.nchunks - 1; c >= 0; --c) {
    const int t0 = c * kChunk, len = std::min(kChunk, sh.L - t0);
    if (p.is_variable_B) load_bc_chunk(p, sh, p.B, b, g, t0, len, s.Bc.data());
    if (p.is_variable_C) load_bc_chunk(p, sh, p.C, b, g, t0, len, s.Cc.data());
    for (int i = 0; i < nch; ++i) {
      const int d = d0 + i;
      const int64_t off = sh.row(b, d) * sh.L + t0, k = static_cast<int64_t>(i) * NP;
      const float Dd = p.has_D ? p.D[d] : 0.0f;
      prepare_channel(p, sh, b, d, t0, len, s);
      const BCView v = bc_view(p, sh, s);
      const int64_t ck_row = (static_cast<int64_t>(i) * sh.nck + static_cast<int64_t>(c) * kCkptPerChunk) * sh.N;
      for (int n = 0; n < NP; ++n) s.hb[n] = n < sh.N ? ck[ck_row + n] : 0.0f;
      std::memcpy(s.H.data(), s.hb.data(), sizeof(float) * NP);
      scan_chunk_keep(NP, len, s.dtu.data(), s.a.data(), v.B, v.bs, v.C, v.cs, s.hb.data(), s.H.data(),
                      s.y.data());

      load_span(p.dout, p.dtype, off, len, s.dout.data());
      if (p.has_z) {
        load_span(p.z, p.dtype, off, len, s.z.data());
        sigmoid_span(s.z.data(), s.sg.data(), len);
        for (int t = 0; t < len; ++t) {
          const float zt = s.z[t], sg = s.sg[t], y = s.y[t] + Dd * s.u[t];
          s.z[t] = s.dout[t] * y * sg * (1.0f + zt * (1.0f - sg));  // dz
          s.dout[t] *= zt * sg;                                     // dy
        }
        store_span(p.dz, p.dtype, off, len, s.z.data());
      }

      float* dB_base = dBu ? dBu + static_cast<int64_t>(t0) * NP : s.dBinv.data() + k;
      float* dC_base = dCu ? dCu + static_cast<int64_t>(t0) * NP : s.dCinv.data() + k;
      adjoint_chunk(NP, len, s.dout.data(), s.dt.data(), s.dtu.data(), s.a.data(), v.B, v.bs, v.C, v.cs,
                    s.H.data(), s.Ap.data(), s.carry.data() + k, s.dA.data() + k, dB_base, dBu ? NP : 0, dC_base,
                    dCu ? NP : 0, s.tmp.data(), s.y.data());
      float dD = s.dD[i], dbias = s.dbias[i];
      for (int t = 0; t < len; ++t) {
        const float dy = s.dout[t], sGB = s.tmp[t];
        const float ddt = (s.u[t] * sGB + s.y[t]) * s.dsp[t];  // adjoint of the raw delta + bias
        s.tmp[t] = s.dt[t] * sGB + Dd * dy;                   // du
        s.y[t] = ddt;
        dbias += ddt;
        dD += dy * s.u[t];
      }
      s.dD[i] = dD;
      s.dbias[i] = dbias;
      store_span(p.du, p.dtype, off, len, s.tmp.data());
      store_span(p.ddelta, p.dtype, off, len, s.y.data());
    }
  }
  for (int i = 0; i < nch; ++i) {
    const int64_t row = sh.row(b, d0 + i), k = static_cast<int64_t>(i) * NP;
    if (p.dinitial_state) std::memcpy(p.dinitial_state + row * sh.N, s.carry.data() + k, sizeof(float) * sh.N);
    std::memcpy(part.dA.data() + row * NP, s.dA.data() + k, sizeof(float) * NP);
    part.dD[row] = s.dD[i];
    part.dbias[row] = s.dbias[i];
    if (!p.is_variable_B) std::memcpy(part.dBinv.data() + row * NP, s.dBinv.data() + k, sizeof(float) * NP);
    if (!p.is_variable_C) std::memcpy(part.dCinv.data() + row * NP, s.dCinv.data() + k, sizeof(float) * NP);
  }
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
  const int tiles_per_group = (sh.cpg + kTile - 1) / kTile;
  const int64_t tiles = static_cast<int64_t>(sh.batch) * sh.G * tiles_per_group;
  parallel_for(tiles, 1, [&](int64_t i0, int64_t i1) {
    Scratch s(sh.NP, 0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t bg = i / tiles_per_group;
      const int b = static_cast<int>(bg / sh.G), g = static_cast<int>(bg % sh.G);
      const int c0 = static_cast<int>(i % tiles_per_group) * kTile, nch = std::min(kTile, sh.cpg - c0);
      const int d0 = g * sh.cpg + c0;
      float* ck = p.checkpoints ? p.checkpoints + sh.row(b, d0) * sh.nck * sh.N : nullptr;
      forward_tile(p, sh, b, d0, nch, s, ck, true);
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

  // A unit is (b, g, slice): the slice's channels run in order, tile by tile, and accumulate into the unit's
  // own dB/dC slab.
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    Scratch s(sh.NP, p.checkpoints ? 0 : sh.nck * sh.N);
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
      for (int c = c0; c < c1; c += kTile)
        backward_tile(p, sh, b, g * sh.cpg + c, std::min(kTile, c1 - c), s, part, dBu, dCu);
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
