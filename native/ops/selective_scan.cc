// The selective scan op: forward (out, last state, float32 state checkpoints for the backward) and
// the fused backward that recomputes states from those checkpoints. Validates every tensor against
// the shapes of native/params.h, fills one SelectiveScanParams and dispatches to the CPU kernel
// (cpu/selective_scan_cpu.cc) or the CUDA launchers (cuda/selective_scan.cu).
// JS side: lib/ops/selective_scan.ts. Reference: test/reference/selective_scan.ts.
#include <cstring>
#include <string>
#include <vector>

#include "../../cuda/launch.h"
#include "../../cuda/selective_scan.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/selective_scan_cpu.h"
#include "../params.h"

namespace mamba {
namespace {

const char* kFwd = "selectiveScan";

// Inputs shared by forward and backward, read from info[0..8]:
// u, delta (batch, dim, L); A (dim, dstate) f32; B, C (batch, groups, dstate, L) or (dim, dstate);
// D (dim) f32 | null; z (batch, dim, L) | null; deltaBias (dim) f32 | null; initialState (batch, dim, dstate) f32 | null.
struct Inputs {
  SelectiveScanParams p;
  Device device = Device::CPU;
};

Inputs read_inputs(const Napi::CallbackInfo& info, const char* fn) {
  Inputs in;
  SelectiveScanParams& p = in.p;
  TensorHandle* u = arg_tensor(info, 0, fn, "u");
  TensorHandle* delta = arg_tensor(info, 1, fn, "delta");
  TensorHandle* A = arg_tensor(info, 2, fn, "A");
  TensorHandle* B = arg_tensor(info, 3, fn, "B");
  TensorHandle* C = arg_tensor(info, 4, fn, "C");
  TensorHandle* D = opt_tensor(info, 5, fn, "D");
  TensorHandle* z = opt_tensor(info, 6, fn, "z");
  TensorHandle* bias = opt_tensor(info, 7, fn, "deltaBias");
  TensorHandle* h0 = opt_tensor(info, 8, fn, "initialState");

  if (u->shape().size() != 3) fail(ErrorKind::Shape, fn, "u", std::string(fn) + ": argument 'u' expected shape (batch, dim, L) but received " + shape_str(u->shape()));
  if (u->dtype() == DType::Int32) fail(ErrorKind::DType, fn, "u", std::string(fn) + ": argument 'u' must be float32, float16 or bfloat16");
  in.device = u->device();
  const int64_t batch = u->shape()[0], dim = u->shape()[1], L = u->shape()[2];
  if (A->shape().size() != 2 || A->shape()[0] != dim)
    fail(ErrorKind::Shape, fn, "A", std::string(fn) + ": argument 'A' expected shape (dim=" + std::to_string(dim) + ", dstate) but received " + shape_str(A->shape()));
  const int64_t dstate = A->shape()[1];
  if (dstate < 1 || dstate > 256) fail(ErrorKind::Shape, fn, "A", std::string(fn) + ": dstate (A.shape[1]) must be in 1..256 but is " + std::to_string(dstate));
  if (batch > INT32_MAX || dim > INT32_MAX || L > INT32_MAX) fail(ErrorKind::Shape, fn, "u", std::string(fn) + ": sizes must fit in int32");

  expect_shape(delta, u->shape(), fn, "delta");
  expect_dtype(delta, u->dtype(), fn, "delta");
  expect_dtype(A, DType::Float32, fn, "A");
  for (auto [t, name] : {std::pair<TensorHandle*, const char*>{delta, "delta"}, {A, "A"}, {B, "B"}, {C, "C"}})
    expect_device(t, in.device, fn, name);

  p.batch = static_cast<int>(batch);
  p.dim = static_cast<int>(dim);
  p.seqlen = static_cast<int>(L);
  p.dstate = static_cast<int>(dstate);
  p.dtype = u->dtype();
  // B and C: variable (batch, dstate, L) / (batch, groups, dstate, L), or time-invariant (dim, dstate).
  int groups[2] = {1, 1};
  TensorHandle* bc[2] = {B, C};
  const char* names[2] = {"B", "C"};
  bool variable[2];
  for (int k = 0; k < 2; ++k) {
    const auto& s = bc[k]->shape();
    expect_dtype(bc[k], u->dtype(), fn, names[k]);
    if (s.size() == 2) {
      expect_shape(bc[k], {dim, dstate}, fn, names[k]);
      variable[k] = false;
    } else if (s.size() == 3) {
      expect_shape(bc[k], {batch, dstate, L}, fn, names[k]);
      variable[k] = true;
    } else if (s.size() == 4) {
      if (s[1] < 1 || dim % s[1] != 0)
        fail(ErrorKind::Shape, fn, names[k], std::string(fn) + ": argument '" + names[k] + "' has " + std::to_string(s[1]) + " groups, which must divide dim=" + std::to_string(dim));
      expect_shape(bc[k], {batch, s[1], dstate, L}, fn, names[k]);
      groups[k] = static_cast<int>(s[1]);
      variable[k] = true;
    } else {
      fail(ErrorKind::Shape, fn, names[k], std::string(fn) + ": argument '" + names[k] + "' expected shape (batch, [groups,] dstate, L) or (dim, dstate) but received " + shape_str(s));
    }
  }
  if (variable[0] && variable[1] && groups[0] != groups[1])
    fail(ErrorKind::Shape, fn, "C", std::string(fn) + ": B and C must have the same number of groups");
  p.is_variable_B = variable[0];
  p.is_variable_C = variable[1];
  p.n_groups = variable[0] ? groups[0] : groups[1];
  p.u = u->data();
  p.delta = delta->data();
  p.A = static_cast<const float*>(A->data());
  p.B = B->data();
  p.C = C->data();
  if (D) {
    expect_shape(D, {dim}, fn, "D");
    expect_dtype(D, DType::Float32, fn, "D");
    expect_device(D, in.device, fn, "D");
    p.has_D = true;
    p.D = static_cast<const float*>(D->data());
  }
  if (z) {
    expect_shape(z, u->shape(), fn, "z");
    expect_dtype(z, u->dtype(), fn, "z");
    expect_device(z, in.device, fn, "z");
    p.has_z = true;
    p.z = z->data();
  }
  if (bias) {
    expect_shape(bias, {dim}, fn, "deltaBias");
    expect_dtype(bias, DType::Float32, fn, "deltaBias");
    expect_device(bias, in.device, fn, "deltaBias");
    p.has_delta_bias = true;
    p.delta_bias = static_cast<const float*>(bias->data());
  }
  if (h0) {
    expect_shape(h0, {batch, dim, dstate}, fn, "initialState");
    expect_dtype(h0, DType::Float32, fn, "initialState");
    expect_device(h0, in.device, fn, "initialState");
    p.has_initial_state = true;
    p.initial_state = static_cast<const float*>(h0->data());
  }
  return in;
}

struct Output {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape;
  DType dtype;
};

Output make_output(Device dev, std::vector<int64_t> shape, DType dt, const char* fn) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dt);
  return Output{Storage::allocate(dev, bytes, fn), std::move(shape), dt};
}

Napi::Value wrap(Napi::Env env, const Output* o) {
  if (!o || !o->storage) return env.Null();
  return TensorHandle::Create(env, o->storage, o->shape, o->dtype);
}

// selectiveScanFwd(u, delta, A, B, C, D?, z?, deltaBias?, initialState?, deltaSoftplus, returnLastState, saveCheckpoints)
//   -> [out (batch, dim, L), lastState (batch, dim, dstate) f32 | null, checkpoints (batch, dim, nChunks, dstate) f32 | null]
Napi::Value SelectiveScanFwd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Inputs in = read_inputs(info, kFwd);
  SelectiveScanParams& p = in.p;
  p.delta_softplus = arg_bool(info, 9, kFwd, "deltaSoftplus");
  bool want_last = arg_bool(info, 10, kFwd, "returnLastState");
  bool want_ckpt = arg_bool(info, 11, kFwd, "saveCheckpoints");
  const int64_t B = p.batch, D = p.dim, L = p.seqlen, N = p.dstate;
  Output out = make_output(in.device, {B, D, L}, p.dtype, kFwd);
  Output last, ckpt;
  if (want_last) last = make_output(in.device, {B, D, N}, DType::Float32, kFwd);
  if (want_ckpt) ckpt = make_output(in.device, {B, D, scan_num_checkpoints(p.seqlen), N}, DType::Float32, kFwd);
  p.out = out.storage->ptr;
  p.last_state = want_last ? static_cast<float*>(last.storage->ptr) : nullptr;
  p.checkpoints = want_ckpt ? static_cast<float*>(ckpt.storage->ptr) : nullptr;
  if (B * D * L > 0) {
    if (in.device == Device::CPU) {
      selective_scan_fwd_cpu(p);
    } else {
      // Scratch for the time-split forward (small-batch, long-L shapes); 0 bytes otherwise.
      size_t ws_bytes = selective_scan_fwd_workspace_bytes(p);
      std::shared_ptr<Storage> ws = ws_bytes ? Storage::allocate(in.device, ws_bytes, kFwd) : nullptr;
      selective_scan_fwd_cuda(p, ws ? ws->ptr : nullptr, cuda::stream());
      // ws goes back to the cache here; stream order keeps later users behind this forward.
    }
  } else if (want_last) {
    // An empty sequence leaves the state where it started.
    size_t bytes = static_cast<size_t>(B * D * N) * 4;
    if (in.device == Device::CPU) {
      if (p.has_initial_state) std::memcpy(p.last_state, p.initial_state, bytes); else std::memset(p.last_state, 0, bytes);
    } else {
      if (p.has_initial_state) cuda::copy_d2d(p.last_state, p.initial_state, bytes); else cuda::fill_cuda(p.last_state, B * D * N, DType::Float32, 0.0);
    }
  }
  Napi::Array result = Napi::Array::New(env, 3);
  result.Set(0u, wrap(env, &out));
  result.Set(1u, wrap(env, want_last ? &last : nullptr));
  result.Set(2u, wrap(env, want_ckpt ? &ckpt : nullptr));
  return result;
}

// selectiveScanBwd(u, delta, A, B, C, D?, z?, deltaBias?, initialState?, checkpoints, dout, dLastState?,
//                  deltaSoftplus, deterministic, wantDInitialState)
//   -> [du, ddelta, dA, dB, dC, dD | null, dz | null, ddeltaBias | null, dInitialState | null]
Napi::Value SelectiveScanBwd(const Napi::CallbackInfo& info) {
  const char* fn = "selectiveScanBackward";
  Napi::Env env = info.Env();
  Inputs in = read_inputs(info, fn);
  SelectiveScanParams& p = in.p;
  TensorHandle* ckpt = arg_tensor(info, 9, fn, "checkpoints");
  TensorHandle* dout = arg_tensor(info, 10, fn, "dout");
  TensorHandle* dlast = opt_tensor(info, 11, fn, "dLastState");
  p.delta_softplus = arg_bool(info, 12, fn, "deltaSoftplus");
  p.deterministic = arg_bool(info, 13, fn, "deterministic");
  bool want_dh0 = arg_bool(info, 14, fn, "wantDInitialState");
  const int64_t B = p.batch, D = p.dim, L = p.seqlen, N = p.dstate;
  expect_shape(ckpt, {B, D, scan_num_checkpoints(p.seqlen), N}, fn, "checkpoints");
  expect_dtype(ckpt, DType::Float32, fn, "checkpoints");
  expect_device(ckpt, in.device, fn, "checkpoints");
  expect_shape(dout, {B, D, L}, fn, "dout");
  expect_dtype(dout, p.dtype, fn, "dout");
  expect_device(dout, in.device, fn, "dout");
  p.checkpoints = static_cast<float*>(ckpt->data());
  p.dout = dout->data();
  if (dlast) {
    expect_shape(dlast, {B, D, N}, fn, "dLastState");
    expect_dtype(dlast, DType::Float32, fn, "dLastState");
    expect_device(dlast, in.device, fn, "dLastState");
    p.dlast_state = static_cast<const float*>(dlast->data());
  }
  const Device dev = in.device;
  // dB / dC have the layout of B / C; 3-d inputs (batch, dstate, L) get the 4-d (batch, 1, dstate, L) form.
  auto like = [&](bool variable) -> std::vector<int64_t> {
    if (!variable) return {D, N};
    return {B, p.n_groups, N, L};
  };
  Output du = make_output(dev, {B, D, L}, p.dtype, fn);
  Output ddelta = make_output(dev, {B, D, L}, p.dtype, fn);
  Output dA = make_output(dev, {D, N}, DType::Float32, fn);
  Output dB = make_output(dev, like(p.is_variable_B), p.dtype, fn);
  Output dC = make_output(dev, like(p.is_variable_C), p.dtype, fn);
  Output dD, dz, dbias, dh0;
  if (p.has_D) dD = make_output(dev, {D}, DType::Float32, fn);
  if (p.has_z) dz = make_output(dev, {B, D, L}, p.dtype, fn);
  if (p.has_delta_bias) dbias = make_output(dev, {D}, DType::Float32, fn);
  if (want_dh0) dh0 = make_output(dev, {B, D, N}, DType::Float32, fn);
  p.du = du.storage->ptr;
  p.ddelta = ddelta.storage->ptr;
  p.dA = static_cast<float*>(dA.storage->ptr);
  p.dB = dB.storage->ptr;
  p.dC = dC.storage->ptr;
  p.dD = p.has_D ? static_cast<float*>(dD.storage->ptr) : nullptr;
  p.dz = p.has_z ? dz.storage->ptr : nullptr;
  p.ddelta_bias = p.has_delta_bias ? static_cast<float*>(dbias.storage->ptr) : nullptr;
  p.dinitial_state = want_dh0 ? static_cast<float*>(dh0.storage->ptr) : nullptr;
  if (B * D * L > 0) {
    if (dev == Device::CPU) {
      selective_scan_bwd_cpu(p);
    } else {
      size_t ws_bytes = selective_scan_bwd_workspace_bytes(p);
      std::shared_ptr<Storage> ws = ws_bytes ? Storage::allocate(dev, ws_bytes, fn) : nullptr;
      selective_scan_bwd_cuda(p, ws ? ws->ptr : nullptr, cuda::stream());
      // ws goes back to the cache here; stream order keeps later users behind this backward.
    }
  } else {
    // No steps: every gradient is zero except dInitialState, which is dLastState passed through.
    for (Output* o : {&du, &ddelta, &dA, &dB, &dC, &dD, &dz, &dbias, &dh0}) {
      if (!o->storage) continue;
      int64_t n = shape_numel(o->shape);
      if (dev == Device::CPU) std::memset(o->storage->ptr, 0, static_cast<size_t>(n) * dtype_size(o->dtype));
      else cuda::fill_cuda(o->storage->ptr, n, o->dtype, 0.0);
    }
    if (want_dh0 && p.dlast_state) {
      size_t bytes = static_cast<size_t>(B * D * N) * 4;
      if (dev == Device::CPU) std::memcpy(p.dinitial_state, p.dlast_state, bytes);
      else cuda::copy_d2d(p.dinitial_state, p.dlast_state, bytes);
    }
  }
  Napi::Array r = Napi::Array::New(env, 9);
  const Output* outs[9] = {&du, &ddelta, &dA, &dB, &dC, p.has_D ? &dD : nullptr, p.has_z ? &dz : nullptr,
                           p.has_delta_bias ? &dbias : nullptr, want_dh0 ? &dh0 : nullptr};
  for (uint32_t i = 0; i < 9; ++i) r.Set(i, wrap(env, outs[i]));
  return r;
}

}  // namespace

void InitSelectiveScan(Napi::Env env, Napi::Object exports) {
  export_fn<SelectiveScanFwd>(env, exports, "selectiveScanFwd");
  export_fn<SelectiveScanBwd>(env, exports, "selectiveScanBwd");
  // Steps between the forward's state checkpoints: the TS layer sizes the saved checkpoint tensor with it.
  exports.Set("scanCheckpointChunk", Napi::Number::New(env, kScanCheckpointChunk));
}

}  // namespace mamba
