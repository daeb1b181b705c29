// The per-element math of the axis reductions and softmax, shared by the CPU driver
// (cpu/reduce_extra_cpu.cc) and the CUDA kernels (cuda/reduce_extra.cu), so both devices run the same
// formulas in float32. Each op is a small struct over one (outer, R, inner) input:
//   State init(); State push(State, offset of x, r); State combine(State, State);
// then either write(State, output index) (a reduction) or map(State, offset) for every element of the
// row (softmax). combine is commutative, so a butterfly of shuffles leaves every lane the same State.
// States are 4 or 8 bytes of 32-bit words (the CUDA side shuffles them word by word).
#pragma once
#include <cmath>
#include <cstdint>

#include "../elem.h"
#include "reduce_extra_cpu.h"

namespace mamba {
namespace reduce_math {

MAMBA_HD float exp_f(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}

MAMBA_HD float log_f(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return std::log(x);
#endif
}

MAMBA_HD bool is_nan(float x) { return x != x; }

}  // namespace reduce_math

// The best value so far and its position along R; i < 0 before the first element.
struct ArgBest {
  float v;
  int32_t i;
};

// Whether b replaces a as the maximum: NaN beats numbers, equal values go to the lower position.
// A strict total order, so arg_combine is commutative.
MAMBA_HD bool arg_beats(ArgBest b, ArgBest a) {
  if (b.i < 0) return false;
  if (a.i < 0) return true;
  const bool an = reduce_math::is_nan(a.v), bn = reduce_math::is_nan(b.v);
  if (an || bn) return bn && (!an || b.i < a.i);
  return b.v > a.v || (b.v == a.v && b.i < a.i);
}

MAMBA_HD ArgBest arg_combine(ArgBest a, ArgBest b) { return arg_beats(b, a) ? b : a; }

// log sum exp as (running max m, sum of exp(x - m)); {-inf, 0} is empty. Terms whose max equals m
// are taken as they are, so infinities never meet as inf - inf.
struct LseState {
  float m, s;
};

MAMBA_HD LseState lse_combine(LseState a, LseState b) {
  if (reduce_math::is_nan(a.m) || reduce_math::is_nan(b.m)) return {a.m + b.m, 1.0f};
  const float m = a.m > b.m ? a.m : b.m;
  const float sa = a.m == m ? a.s : a.s * reduce_math::exp_f(a.m - m);
  const float sb = b.m == m ? b.s : b.s * reduce_math::exp_f(b.m - m);
  return {m, sa + sb};
}

MAMBA_HD float lse_value(LseState a) { return a.m + reduce_math::log_f(a.s); }

struct SumState {
  float s;
};

// Max and Min (Min as the max of -x, which is exact) with their first positions.
template <DType DT>
struct MaxMinOp {
  using State = ArgBest;
  static constexpr bool kMap = false;
  const void* x;
  void* out;
  int32_t* index;
  float sign;
  MAMBA_HD State init() const { return {0.0f, -1}; }
  MAMBA_HD State push(State s, int64_t off, int64_t r) const {
    return arg_combine(s, {sign * load_t<DT>(x, off), static_cast<int32_t>(r)});
  }
  MAMBA_HD State combine(State a, State b) const { return arg_combine(a, b); }
  MAMBA_HD void write(State s, int64_t o) const {
    store_t<DT>(out, o, sign * s.v);
    if (index) index[o] = s.i;
  }
};

template <DType DT>
struct LogSumExpOp {
  using State = LseState;
  static constexpr bool kMap = false;
  const void* x;
  void* out;
  MAMBA_HD State init() const { return {-INFINITY, 0.0f}; }
  MAMBA_HD State push(State s, int64_t off, int64_t) const { return lse_combine(s, {load_t<DT>(x, off), 1.0f}); }
  MAMBA_HD State combine(State a, State b) const { return lse_combine(a, b); }
  MAMBA_HD void write(State s, int64_t o) const { store_t<DT>(out, o, lse_value(s)); }
};

// Softmax / log-softmax forward: the row's (max, sum) first, then every element from it.
template <DType DT>
struct SoftmaxOp {
  using State = LseState;
  static constexpr bool kMap = true;
  const void* x;
  void* out;
  bool log;
  MAMBA_HD State init() const { return {-INFINITY, 0.0f}; }
  MAMBA_HD State push(State s, int64_t off, int64_t) const { return lse_combine(s, {load_t<DT>(x, off), 1.0f}); }
  MAMBA_HD State combine(State a, State b) const { return lse_combine(a, b); }
  MAMBA_HD void map(State s, int64_t off) const {
    const float v = load_t<DT>(x, off) - s.m;
    store_t<DT>(out, off, log ? v - reduce_math::log_f(s.s) : reduce_math::exp_f(v) / s.s);
  }
};

// Softmax / log-softmax backward from the forward's output y and its gradient g.
template <DType DT>
struct SoftmaxBwdOp {
  using State = SumState;
  static constexpr bool kMap = true;
  const void* y;
  const void* g;
  void* out;
  bool log;
  MAMBA_HD State init() const { return {0.0f}; }
  MAMBA_HD State push(State s, int64_t off, int64_t) const {
    const float gv = load_t<DT>(g, off);
    return {s.s + (log ? gv : gv * load_t<DT>(y, off))};
  }
  MAMBA_HD State combine(State a, State b) const { return {a.s + b.s}; }
  MAMBA_HD void map(State s, int64_t off) const {
    const float yv = load_t<DT>(y, off), gv = load_t<DT>(g, off);
    store_t<DT>(out, off, log ? gv - reduce_math::exp_f(yv) * s.s : yv * (gv - s.s));
  }
};

}  // namespace mamba
