// The fused ops' N-API layer: RMSNorm (+ residual), causal depthwise conv1d, embedding, cross-entropy from
// logits and softplus + bias, forward and backward. Each function re-checks its tensors (shapes, dtypes,
// devices), allocates the outputs, fills one params struct of native/fused_params.h and runs the CPU kernel
// (native/cpu/<op>_cpu.cc) or the CUDA launcher (cuda/fused.h). Empty tensors never reach a kernel.
// JS side: lib/ops/{rmsnorm,conv1d,embedding,cross_entropy,softplus_bias}.ts; math: docs/kernels/fused.md.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../../cuda/fused.h"
#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/fused_cpu.h"
#include "../fused_params.h"

namespace mamba {
namespace {

// Parameters (weights, biases) may be float32 or the activations' dtype.
void expect_param_dtype(const TensorHandle* t, DType act, const char* fn, const char* arg) {
  if (t->dtype() != DType::Float32 && t->dtype() != act)
    fail(ErrorKind::DType, fn, arg, arg_prefix(fn, arg) + "expected dtype float32 or " + dtype_name(act) + " but received " + dtype_name(t->dtype()));
}

void same_as(const TensorHandle* t, const TensorHandle* ref, const char* fn, const char* arg) {
  expect_shape(t, ref->shape(), fn, arg);
  expect_device(t, ref->device(), fn, arg);
}

struct Output {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape;
  DType dtype = DType::Float32;
  void* ptr() const { return storage ? storage->ptr : nullptr; }
};

Output make_output(Device dev, std::vector<int64_t> shape, DType dt, const char* fn) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dt);
  return Output{Storage::allocate(dev, bytes, fn), std::move(shape), dt};
}

Napi::Value wrap(Napi::Env env, const Output& o) {
  if (!o.storage) return env.Null();
  return TensorHandle::Create(env, o.storage, o.shape, o.dtype);
}

void zero(Device dev, const Output& o) {
  if (!o.storage) return;
  const int64_t n = shape_numel(o.shape);
  if (n == 0) return;
  if (dev == Device::CPU) std::memset(o.storage->ptr, 0, static_cast<size_t>(n) * dtype_size(o.dtype));
  else cuda::fill_cuda(o.storage->ptr, n, o.dtype, 0.0);
}

template <typename P>
void run_cuda(const P& p, void (*gpu)(const P&, void*), const char* fn) {
#ifdef MAMBA_WITH_CUDA
  (void)fn;
  gpu(p, cuda::stream());
#else
  (void)p;
  (void)gpu;
  refuse_cuda(fn);
#endif
}

template <typename P>
void run(Device dev, const P& p, void (*cpu)(const P&), void (*gpu)(const P&, void*), const char* fn) {
  if (dev == Device::CPU) return cpu(p);
  run_cuda(p, gpu, fn);
}

#ifndef MAMBA_WITH_CUDA
// Placeholders so `run` can name a launcher in CPU-only builds; never called (run refuses CUDA first).
template <typename P>
void no_gpu(const P&, void*) {}
#define GPU(f) no_gpu
#else
#define GPU(f) f
#endif

void rank_at_least(const TensorHandle* t, size_t r, const char* fn, const char* arg, const char* what) {
  if (t->shape().size() < r)
    fail(ErrorKind::Shape, fn, arg, arg_prefix(fn, arg) + "expected shape " + what + " but received " + shape_str(t->shape()));
}

// ---------------------------------------------------------------- RMSNorm

// rmsNormFwd(x (..., C), weight (C), residual (..., C) | null, eps, rdtype, wantResidualOut)
//   -> [out (..., C) x.dtype, residualOut (..., C) rdtype | null, rstd (...) float32]
// residualOut is written whenever there is a residual (the backward needs x + residual) or it is asked for.
Napi::Value RmsNormFwd(const Napi::CallbackInfo& info) {
  const char* fn = "rmsNorm";
  Napi::Env env = info.Env();
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  TensorHandle* w = arg_tensor(info, 1, fn, "weight");
  TensorHandle* res = opt_tensor(info, 2, fn, "residual");
  const double eps = arg_number(info, 3, fn, "eps");
  const DType rdt = arg_dtype(info, 4, fn, "residualDtype");
  const bool want_res = arg_bool(info, 5, fn, "prenorm");
  rank_at_least(x, 1, fn, "x", "(..., hidden)");
  expect_float(x, fn, "x");
  const Device dev = x->device();
  const int64_t C = x->shape().back();
  expect_shape(w, {C}, fn, "weight");
  expect_device(w, dev, fn, "weight");
  expect_param_dtype(w, x->dtype(), fn, "weight");
  if (rdt != DType::Float32 && rdt != x->dtype()) expect_dtype(x, rdt, fn, "residualDtype");
  if (res) {
    same_as(res, x, fn, "residual");
    expect_dtype(res, rdt, fn, "residual");
  }
  std::vector<int64_t> row_shape(x->shape().begin(), x->shape().end() - 1);
  Output out = make_output(dev, x->shape(), x->dtype(), fn);
  Output rout;
  if (res || want_res) rout = make_output(dev, x->shape(), rdt, fn);
  Output rstd = make_output(dev, row_shape, DType::Float32, fn);
  RmsNormParams p;
  p.cols = C;
  p.rows = C ? x->numel() / C : shape_numel(row_shape);
  p.eps = static_cast<float>(eps);
  p.dtype = x->dtype();
  p.rdtype = rdt;
  p.wdtype = w->dtype();
  p.x = x->data();
  p.residual = res ? res->data() : nullptr;
  p.weight = w->data();
  p.out = out.ptr();
  p.residual_out = rout.ptr();
  p.rstd = static_cast<float*>(rstd.ptr());
  if (p.rows > 0 && C > 0) run(dev, p, rmsnorm_fwd_cpu, GPU(rmsnorm_fwd_cuda), fn);
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, wrap(env, out));
  r.Set(1u, wrap(env, rout));
  r.Set(2u, wrap(env, rstd));
  return r;
}

// rmsNormBwd(r (..., C) rdtype, weight (C), rstd (...), dout (..., C), dResidualOut (..., C) rdtype | null,
//            xDtype, wantDResidual) -> [dx x-dtype, dweight weight-dtype, dresidual rdtype | null]
Napi::Value RmsNormBwd(const Napi::CallbackInfo& info) {
  const char* fn = "rmsNormBackward";
  Napi::Env env = info.Env();
  TensorHandle* r = arg_tensor(info, 0, fn, "r");
  TensorHandle* w = arg_tensor(info, 1, fn, "weight");
  TensorHandle* rstd = arg_tensor(info, 2, fn, "rstd");
  TensorHandle* dout = arg_tensor(info, 3, fn, "dout");
  TensorHandle* dres_out = opt_tensor(info, 4, fn, "dResidualOut");
  const DType xdt = arg_dtype(info, 5, fn, "xDtype");
  const bool want_dres = arg_bool(info, 6, fn, "wantDResidual");
  rank_at_least(r, 1, fn, "r", "(..., hidden)");
  expect_float(r, fn, "r");
  const Device dev = r->device();
  const int64_t C = r->shape().back();
  std::vector<int64_t> row_shape(r->shape().begin(), r->shape().end() - 1);
  expect_shape(w, {C}, fn, "weight");
  expect_device(w, dev, fn, "weight");
  expect_param_dtype(w, xdt, fn, "weight");
  expect_shape(rstd, row_shape, fn, "rstd");
  expect_dtype(rstd, DType::Float32, fn, "rstd");
  expect_device(rstd, dev, fn, "rstd");
  same_as(dout, r, fn, "dout");
  expect_dtype(dout, xdt, fn, "dout");
  if (dres_out) {
    same_as(dres_out, r, fn, "dResidualOut");
    expect_dtype(dres_out, r->dtype(), fn, "dResidualOut");
  }
  Output dx = make_output(dev, r->shape(), xdt, fn);
  Output dw = make_output(dev, {C}, w->dtype(), fn);
  Output dres;
  if (want_dres) dres = make_output(dev, r->shape(), r->dtype(), fn);
  RmsNormParams p;
  p.cols = C;
  p.rows = C ? r->numel() / C : shape_numel(row_shape);
  p.dtype = xdt;
  p.rdtype = r->dtype();
  p.wdtype = w->dtype();
  p.r = r->data();
  p.weight = w->data();
  p.rstd = static_cast<float*>(rstd->data());
  p.dout = dout->data();
  p.dresidual_out = dres_out ? dres_out->data() : nullptr;
  p.dx = dx.ptr();
  p.dweight = dw.ptr();
  p.dresidual = dres.ptr();
  if (p.rows > 0 && C > 0) run(dev, p, rmsnorm_bwd_cpu, GPU(rmsnorm_bwd_cuda), fn);
  else zero(dev, dw);
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, wrap(env, dx));
  a.Set(1u, wrap(env, dw));
  a.Set(2u, wrap(env, dres));
  return a;
}

// ---------------------------------------------------------------- causal conv1d

struct ConvInputs {
  Conv1dParams p;
  Device dev = Device::CPU;
  TensorHandle* x = nullptr;
};

// x (batch, dim, L); weight (dim, width); bias (dim) | null; initialState (batch, dim, width-1) | null.
ConvInputs read_conv(const Napi::CallbackInfo& info, const char* fn) {
  ConvInputs in;
  TensorHandle* x = arg_tensor(info, 0, fn, "x");
  TensorHandle* w = arg_tensor(info, 1, fn, "weight");
  TensorHandle* b = opt_tensor(info, 2, fn, "bias");
  TensorHandle* h0 = opt_tensor(info, 3, fn, "initialState");
  if (x->shape().size() != 3)
    fail(ErrorKind::Shape, fn, "x", arg_prefix(fn, "x") + "expected shape (batch, dim, L) but received " + shape_str(x->shape()));
  expect_float(x, fn, "x");
  in.x = x;
  in.dev = x->device();
  const int64_t B = x->shape()[0], D = x->shape()[1], L = x->shape()[2];
  if (w->shape().size() != 2 || w->shape()[0] != D || w->shape()[1] < 2 || w->shape()[1] > 4)
    fail(ErrorKind::Shape, fn, "weight", arg_prefix(fn, "weight") + "expected shape (dim=" + std::to_string(D) + ", width 2..4) but received " + shape_str(w->shape()));
  const int W = static_cast<int>(w->shape()[1]);
  expect_device(w, in.dev, fn, "weight");
  expect_param_dtype(w, x->dtype(), fn, "weight");
  Conv1dParams& p = in.p;
  p.batch = B;
  p.dim = D;
  p.seqlen = L;
  p.width = W;
  p.dtype = x->dtype();
  p.wdtype = w->dtype();
  p.x = x->data();
  p.weight = w->data();
  if (b) {
    expect_shape(b, {D}, fn, "bias");
    expect_device(b, in.dev, fn, "bias");
    expect_dtype(b, w->dtype(), fn, "bias");
    p.bias = b->data();
  }
  if (h0) {
    expect_shape(h0, {B, D, W - 1}, fn, "initialState");
    expect_device(h0, in.dev, fn, "initialState");
    expect_dtype(h0, x->dtype(), fn, "initialState");
    p.initial_state = h0->data();
  }
  return in;
}

// conv1dFwd(x, weight, bias | null, initialState | null, silu, returnFinalState)
//   -> [out (batch, dim, L), finalState (batch, dim, width-1) | null]
Napi::Value Conv1dFwd(const Napi::CallbackInfo& info) {
  const char* fn = "causalConv1d";
  Napi::Env env = info.Env();
  ConvInputs in = read_conv(info, fn);
  Conv1dParams& p = in.p;
  p.silu = arg_bool(info, 4, fn, "activation");
  const bool want_final = arg_bool(info, 5, fn, "returnFinalState");
  Output out = make_output(in.dev, in.x->shape(), p.dtype, fn);
  Output fin;
  if (want_final) fin = make_output(in.dev, {p.batch, p.dim, p.width - 1}, p.dtype, fn);
  p.out = out.ptr();
  p.final_state = fin.ptr();
  if (p.batch * p.dim > 0) {
    if (p.seqlen > 0) {
      run(in.dev, p, conv1d_fwd_cpu, GPU(conv1d_fwd_cuda), fn);
    } else if (want_final) {
      // No steps: the state passes through unchanged.
      if (!p.initial_state) zero(in.dev, fin);
      else if (in.dev == Device::CPU) std::memcpy(fin.ptr(), p.initial_state, fin.storage->bytes);
      else cuda::copy_d2d(fin.ptr(), p.initial_state, fin.storage->bytes);
    }
  }
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, wrap(env, out));
  r.Set(1u, wrap(env, fin));
  return r;
}

// conv1dBwd(x, weight, bias | null, initialState | null, dout, dFinalState | null, silu, wantDInitialState)
//   -> [dx, dweight, dbias | null, dInitialState | null]
Napi::Value Conv1dBwd(const Napi::CallbackInfo& info) {
  const char* fn = "causalConv1dBackward";
  Napi::Env env = info.Env();
  ConvInputs in = read_conv(info, fn);
  Conv1dParams& p = in.p;
  TensorHandle* dout = arg_tensor(info, 4, fn, "dout");
  TensorHandle* dfin = opt_tensor(info, 5, fn, "dFinalState");
  p.silu = arg_bool(info, 6, fn, "activation");
  const bool want_dh0 = arg_bool(info, 7, fn, "wantDInitialState");
  same_as(dout, in.x, fn, "dout");
  expect_dtype(dout, p.dtype, fn, "dout");
  if (dfin) {
    expect_shape(dfin, {p.batch, p.dim, p.width - 1}, fn, "dFinalState");
    expect_device(dfin, in.dev, fn, "dFinalState");
    expect_dtype(dfin, p.dtype, fn, "dFinalState");
    p.dfinal_state = dfin->data();
  }
  Output dx = make_output(in.dev, in.x->shape(), p.dtype, fn);
  Output dw = make_output(in.dev, {p.dim, p.width}, p.wdtype, fn);
  Output db, dh0;
  if (p.bias) db = make_output(in.dev, {p.dim}, p.wdtype, fn);
  if (want_dh0) dh0 = make_output(in.dev, {p.batch, p.dim, p.width - 1}, p.dtype, fn);
  p.dout = dout->data();
  p.dx = dx.ptr();
  p.dweight = dw.ptr();
  p.dbias = db.ptr();
  p.dinitial_state = dh0.ptr();
  if (p.batch * p.dim > 0 && p.seqlen > 0) {
    run(in.dev, p, conv1d_bwd_cpu, GPU(conv1d_bwd_cuda), fn);
  } else {
    zero(in.dev, dw);
    zero(in.dev, db);
    if (want_dh0 && p.batch * p.dim > 0) {
      if (!p.dfinal_state) zero(in.dev, dh0);
      else if (in.dev == Device::CPU) std::memcpy(dh0.ptr(), p.dfinal_state, dh0.storage->bytes);
      else cuda::copy_d2d(dh0.ptr(), p.dfinal_state, dh0.storage->bytes);
    }
  }
  Napi::Array r = Napi::Array::New(env, 4);
  r.Set(0u, wrap(env, dx));
  r.Set(1u, wrap(env, dw));
  r.Set(2u, wrap(env, db));
  r.Set(3u, wrap(env, dh0));
  return r;
}

// ---------------------------------------------------------------- embedding

void bad_id(const char* fn, const char* arg, const TensorHandle* ids, int64_t i, int64_t vocab) {
  const int32_t v = static_cast<const int32_t*>(ids->data())[i];
  fail(ErrorKind::Argument, fn, arg, arg_prefix(fn, arg) + "holds " + std::to_string(v) + " at flat index " + std::to_string(i) +
                                         ", outside [0, " + std::to_string(vocab) + ")");
}

// embeddingFwd(ids (...) int32, weight (vocab, dim)) -> out (..., dim)
Napi::Value EmbeddingFwd(const Napi::CallbackInfo& info) {
  const char* fn = "embedding";
  TensorHandle* ids = arg_tensor(info, 0, fn, "ids");
  TensorHandle* w = arg_tensor(info, 1, fn, "weight");
  expect_dtype(ids, DType::Int32, fn, "ids");
  if (w->shape().size() != 2)
    fail(ErrorKind::Shape, fn, "weight", arg_prefix(fn, "weight") + "expected shape (vocab, dim) but received " + shape_str(w->shape()));
  expect_float(w, fn, "weight");
  expect_device(w, ids->device(), fn, "weight");
  const Device dev = ids->device();
  std::vector<int64_t> shape = ids->shape();
  shape.push_back(w->shape()[1]);
  Output out = make_output(dev, shape, w->dtype(), fn);
  EmbeddingParams p;
  p.n = ids->numel();
  p.vocab = w->shape()[0];
  p.dim = w->shape()[1];
  p.dtype = w->dtype();
  p.ids = static_cast<const int32_t*>(ids->data());
  p.weight = w->data();
  p.out = out.ptr();
  if (p.n > 0 && p.dim > 0) {
    if (dev == Device::CPU) {
      if (int64_t bad = embedding_fwd_cpu(p); bad >= 0) bad_id(fn, "ids", ids, bad, p.vocab);
    } else {
      run_cuda(p, GPU(embedding_fwd_cuda), fn);
    }
  }
  return wrap(info.Env(), out);
}

// embeddingBwd(ids (...) int32, dout (..., dim), vocab, deterministic) -> dweight (vocab, dim) in dout's dtype
Napi::Value EmbeddingBwd(const Napi::CallbackInfo& info) {
  const char* fn = "embeddingBackward";
  TensorHandle* ids = arg_tensor(info, 0, fn, "ids");
  TensorHandle* dout = arg_tensor(info, 1, fn, "dout");
  const double vocab = arg_number(info, 2, fn, "vocab");
  const bool det = arg_bool(info, 3, fn, "deterministic");
  expect_dtype(ids, DType::Int32, fn, "ids");
  expect_float(dout, fn, "dout");
  expect_device(dout, ids->device(), fn, "dout");
  if (dout->shape().size() != ids->shape().size() + 1 ||
      !std::equal(ids->shape().begin(), ids->shape().end(), dout->shape().begin()))
    fail(ErrorKind::Shape, fn, "dout", arg_prefix(fn, "dout") + "expected shape " + shape_str(ids->shape()) + " + (dim) but received " + shape_str(dout->shape()));
  if (!(vocab >= 0) || vocab != static_cast<double>(static_cast<int64_t>(vocab)))
    fail(ErrorKind::Argument, fn, "vocab", arg_prefix(fn, "vocab") + "expected a non-negative integer");
  const Device dev = ids->device();
  EmbeddingParams p;
  p.n = ids->numel();
  p.vocab = static_cast<int64_t>(vocab);
  p.dim = dout->shape().back();
  p.dtype = dout->dtype();
  p.deterministic = det;
  p.ids = static_cast<const int32_t*>(ids->data());
  p.dout = dout->data();
  Output dw = make_output(dev, {p.vocab, p.dim}, p.dtype, fn);
  p.dweight = dw.ptr();
  if (p.n > 0 && p.dim > 0 && p.vocab > 0) {
    if (dev == Device::CPU) {
      if (int64_t bad = embedding_bwd_cpu(p); bad >= 0) bad_id(fn, "ids", ids, bad, p.vocab);
    } else {
      run_cuda(p, GPU(embedding_bwd_cuda), fn);
    }
  } else {
    zero(dev, dw);
  }
  return wrap(info.Env(), dw);
}

// ---------------------------------------------------------------- cross-entropy

struct CeInputs {
  CrossEntropyParams p;
  Device dev = Device::CPU;
  TensorHandle* logits = nullptr;
  TensorHandle* targets = nullptr;
};

// logits (n, vocab), targets (n) int32, then ignoreIndex, reduction (0 none, 1 mean, 2 sum), labelSmoothing
// at info[first_opt..first_opt+2].
CeInputs read_ce(const Napi::CallbackInfo& info, const char* fn, size_t first_opt) {
  CeInputs in;
  TensorHandle* logits = arg_tensor(info, 0, fn, "logits");
  TensorHandle* targets = arg_tensor(info, 1, fn, "targets");
  if (logits->shape().size() != 2)
    fail(ErrorKind::Shape, fn, "logits", arg_prefix(fn, "logits") + "expected shape (N, classes) but received " + shape_str(logits->shape()));
  expect_float(logits, fn, "logits");
  expect_dtype(targets, DType::Int32, fn, "targets");
  expect_shape(targets, {logits->shape()[0]}, fn, "targets");
  expect_device(targets, logits->device(), fn, "targets");
  const double ignore = arg_number(info, first_opt, fn, "ignoreIndex");
  const double red = arg_number(info, first_opt + 1, fn, "reduction");
  const double ls = arg_number(info, first_opt + 2, fn, "labelSmoothing");
  if (ignore != static_cast<double>(static_cast<int32_t>(ignore)))
    fail(ErrorKind::Argument, fn, "ignoreIndex", arg_prefix(fn, "ignoreIndex") + "expected an int32 integer");
  if (red != 0 && red != 1 && red != 2) fail(ErrorKind::Argument, fn, "reduction", arg_prefix(fn, "reduction") + "expected 0, 1 or 2");
  if (!(ls >= 0.0 && ls <= 1.0)) fail(ErrorKind::Argument, fn, "labelSmoothing", arg_prefix(fn, "labelSmoothing") + "expected a number in [0, 1]");
  in.logits = logits;
  in.targets = targets;
  in.dev = logits->device();
  CrossEntropyParams& p = in.p;
  p.n = logits->shape()[0];
  p.vocab = logits->shape()[1];
  p.ignore_index = static_cast<int32_t>(ignore);
  p.reduction = static_cast<Reduction>(static_cast<int>(red));
  p.label_smoothing = static_cast<float>(ls);
  p.dtype = logits->dtype();
  p.logits = logits->data();
  p.targets = static_cast<const int32_t*>(targets->data());
  return in;
}

std::vector<int64_t> loss_shape(const CrossEntropyParams& p) {
  return p.reduction == Reduction::None ? std::vector<int64_t>{p.n} : std::vector<int64_t>{};
}

// crossEntropyFwd(logits, targets, ignoreIndex, reduction, labelSmoothing)
//   -> [loss (n) or () in the logits dtype, lse (n) float32, count () float32]
Napi::Value CrossEntropyFwd(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropy";
  Napi::Env env = info.Env();
  CeInputs in = read_ce(info, fn, 2);
  CrossEntropyParams& p = in.p;
  if (p.vocab == 0 && p.n > 0) fail(ErrorKind::Shape, fn, "logits", arg_prefix(fn, "logits") + "has no classes");
  Output loss = make_output(in.dev, loss_shape(p), p.dtype, fn);
  Output lse = make_output(in.dev, {p.n}, DType::Float32, fn);
  Output count = make_output(in.dev, {}, DType::Float32, fn);
  p.loss = loss.ptr();
  p.lse = static_cast<float*>(lse.ptr());
  p.count = static_cast<float*>(count.ptr());
  if (p.n > 0) {
    if (in.dev == Device::CPU) {
      if (int64_t bad = cross_entropy_fwd_cpu(p); bad >= 0) bad_id(fn, "targets", in.targets, bad, p.vocab);
    } else {
      run_cuda(p, GPU(cross_entropy_fwd_cuda), fn);
    }
  } else {
    // No rows: the sum is 0 and the mean 0 / 0 (NaN), as in PyTorch.
    zero(in.dev, count);
    if (p.reduction != Reduction::None) {
      const double v = p.reduction == Reduction::Mean ? std::nan("") : 0.0;
      if (in.dev == Device::CPU) st(loss.ptr(), 0, p.dtype, static_cast<float>(v));
      else cuda::fill_cuda(loss.ptr(), 1, p.dtype, v);
    }
  }
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, wrap(env, loss));
  r.Set(1u, wrap(env, lse));
  r.Set(2u, wrap(env, count));
  return r;
}

// crossEntropyBwd(logits, targets, lse, count, dloss, ignoreIndex, reduction, labelSmoothing) -> dlogits (n, vocab)
Napi::Value CrossEntropyBwd(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyBackward";
  CeInputs in = read_ce(info, fn, 5);
  CrossEntropyParams& p = in.p;
  TensorHandle* lse = arg_tensor(info, 2, fn, "lse");
  TensorHandle* count = arg_tensor(info, 3, fn, "count");
  TensorHandle* dloss = arg_tensor(info, 4, fn, "dloss");
  expect_shape(lse, {p.n}, fn, "lse");
  expect_dtype(lse, DType::Float32, fn, "lse");
  expect_device(lse, in.dev, fn, "lse");
  expect_shape(count, {}, fn, "count");
  expect_dtype(count, DType::Float32, fn, "count");
  expect_device(count, in.dev, fn, "count");
  expect_shape(dloss, loss_shape(p), fn, "dloss");
  expect_dtype(dloss, p.dtype, fn, "dloss");
  expect_device(dloss, in.dev, fn, "dloss");
  Output dl = make_output(in.dev, in.logits->shape(), p.dtype, fn);
  p.lse = static_cast<float*>(lse->data());
  p.count = static_cast<float*>(count->data());
  p.dloss = dloss->data();
  p.dlogits = dl.ptr();
  if (p.n > 0 && p.vocab > 0) run(in.dev, p, cross_entropy_bwd_cpu, GPU(cross_entropy_bwd_cuda), fn);
  return wrap(info.Env(), dl);
}

// ---------------------------------------------------------------- softplus + bias

SoftplusBiasParams read_softplus(const Napi::CallbackInfo& info, const char* fn, TensorHandle** delta_out) {
  TensorHandle* delta = arg_tensor(info, 0, fn, "delta");
  TensorHandle* bias = arg_tensor(info, 1, fn, "bias");
  if (delta->shape().size() != 3)
    fail(ErrorKind::Shape, fn, "delta", arg_prefix(fn, "delta") + "expected shape (batch, dim, L) but received " + shape_str(delta->shape()));
  expect_float(delta, fn, "delta");
  expect_shape(bias, {delta->shape()[1]}, fn, "bias");
  expect_device(bias, delta->device(), fn, "bias");
  expect_param_dtype(bias, delta->dtype(), fn, "bias");
  SoftplusBiasParams p;
  p.batch = delta->shape()[0];
  p.dim = delta->shape()[1];
  p.seqlen = delta->shape()[2];
  p.dtype = delta->dtype();
  p.bdtype = bias->dtype();
  p.delta = delta->data();
  p.bias = bias->data();
  *delta_out = delta;
  return p;
}

// softplusBiasFwd(delta (batch, dim, L), bias (dim)) -> out (batch, dim, L)
Napi::Value SoftplusBiasFwd(const Napi::CallbackInfo& info) {
  const char* fn = "softplusBias";
  TensorHandle* delta;
  SoftplusBiasParams p = read_softplus(info, fn, &delta);
  Output out = make_output(delta->device(), delta->shape(), p.dtype, fn);
  p.out = out.ptr();
  if (delta->numel() > 0) run(delta->device(), p, softplus_bias_fwd_cpu, GPU(softplus_bias_fwd_cuda), fn);
  return wrap(info.Env(), out);
}

// softplusBiasBwd(delta, bias, dout) -> [ddelta (batch, dim, L), dbias (dim)]
Napi::Value SoftplusBiasBwd(const Napi::CallbackInfo& info) {
  const char* fn = "softplusBiasBackward";
  Napi::Env env = info.Env();
  TensorHandle* delta;
  SoftplusBiasParams p = read_softplus(info, fn, &delta);
  TensorHandle* dout = arg_tensor(info, 2, fn, "dout");
  same_as(dout, delta, fn, "dout");
  expect_dtype(dout, p.dtype, fn, "dout");
  const Device dev = delta->device();
  Output dd = make_output(dev, delta->shape(), p.dtype, fn);
  Output db = make_output(dev, {p.dim}, p.bdtype, fn);
  p.dout = dout->data();
  p.ddelta = dd.ptr();
  p.dbias = db.ptr();
  if (delta->numel() > 0) run(dev, p, softplus_bias_bwd_cpu, GPU(softplus_bias_bwd_cuda), fn);
  else zero(dev, db);
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, wrap(env, dd));
  r.Set(1u, wrap(env, db));
  return r;
}

}  // namespace

void InitFused(Napi::Env env, Napi::Object exports) {
  export_fn<RmsNormFwd>(env, exports, "rmsNormFwd");
  export_fn<RmsNormBwd>(env, exports, "rmsNormBwd");
  export_fn<Conv1dFwd>(env, exports, "conv1dFwd");
  export_fn<Conv1dBwd>(env, exports, "conv1dBwd");
  export_fn<EmbeddingFwd>(env, exports, "embeddingFwd");
  export_fn<EmbeddingBwd>(env, exports, "embeddingBwd");
  export_fn<CrossEntropyFwd>(env, exports, "crossEntropyFwd");
  export_fn<CrossEntropyBwd>(env, exports, "crossEntropyBwd");
  export_fn<SoftplusBiasFwd>(env, exports, "softplusBiasFwd");
  export_fn<SoftplusBiasBwd>(env, exports, "softplusBiasBwd");
}

}  // namespace mamba
