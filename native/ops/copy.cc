// Moving and viewing tensors: to(device), cast(dtype), reshape, and reading values back to JS
// (dataSync blocks; data returns a Promise whose copy waits on a worker thread, not the event loop).
// JS side: lib/tensor.ts. Kernels: cpu/creation_cpu.cc (cast_cpu), cuda/cast.cu, cuda/runtime.cu (copies).
#include <cstring>
#include <vector>

#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"
#include "../cpu/creation_cpu.h"

namespace mamba {
namespace {

// to(handle, device) -> handle; the same device shares the storage (tensors are immutable).
Napi::Value To(const Napi::CallbackInfo& info) {
  TensorHandle* t = arg_tensor(info, 0, "to", "tensor");
  Device dev = arg_device(info, 1, "to", "device");
  if (dev == t->device()) return TensorHandle::Create(info.Env(), t->storage(), t->shape(), t->dtype());
  auto st = Storage::allocate(dev, t->nbytes(), "to");
  if (dev == Device::CUDA) cuda::copy_h2d(st->ptr, t->data(), t->nbytes());
  else cuda::copy_d2h(st->ptr, t->data(), t->nbytes());
  return TensorHandle::Create(info.Env(), st, t->shape(), t->dtype());
}

// cast(handle, dtype) -> handle on the same device; the same dtype shares the storage.
Napi::Value Cast(const Napi::CallbackInfo& info) {
  TensorHandle* t = arg_tensor(info, 0, "cast", "tensor");
  DType dt = arg_dtype(info, 1, "cast", "dtype");
  if (dt == t->dtype()) return TensorHandle::Create(info.Env(), t->storage(), t->shape(), dt);
  auto st = Storage::allocate(t->device(), static_cast<size_t>(t->numel()) * dtype_size(dt), "cast");
  if (t->device() == Device::CPU) cast_cpu(t->data(), t->dtype(), st->ptr, dt, t->numel());
  else cuda::cast_cuda(t->data(), t->dtype(), st->ptr, dt, t->numel());
  return TensorHandle::Create(info.Env(), st, t->shape(), dt);
}

// reshape(handle, shape) -> handle sharing the storage; prod(shape) must equal the element count.
Napi::Value Reshape(const Napi::CallbackInfo& info) {
  TensorHandle* t = arg_tensor(info, 0, "reshape", "tensor");
  auto shape = arg_shape(info, 1, "reshape", "shape");
  if (shape_numel(shape) != t->numel())
    fail(ErrorKind::Shape, "reshape", "shape",
         "reshape: cannot view " + shape_str(t->shape()) + " (" + std::to_string(t->numel()) + " elements) as " + shape_str(shape));
  return TensorHandle::Create(info.Env(), t->storage(), shape, t->dtype());
}

// Host bytes in the tensor's dtype -> the JS element type (float32 for float dtypes, int32 for int32).
void to_js_elements(const void* src, DType dt, int64_t n, void* dst) {
  cast_cpu(src, dt, dst, dt == DType::Int32 ? DType::Int32 : DType::Float32, n);
}

Napi::Value make_typed_array(Napi::Env env, DType dt, int64_t n, Napi::ArrayBuffer buf) {
  if (dt == DType::Int32) return Napi::Int32Array::New(env, static_cast<size_t>(n), buf, 0);
  return Napi::Float32Array::New(env, static_cast<size_t>(n), buf, 0);
}

// dataSync(handle) -> Float32Array | Int32Array (waits for pending CUDA work)
Napi::Value DataSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TensorHandle* t = arg_tensor(info, 0, "dataSync", "tensor");
  int64_t n = t->numel();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, static_cast<size_t>(n) * 4);
  if (t->device() == Device::CPU) {
    to_js_elements(t->data(), t->dtype(), n, buf.Data());
  } else {
    std::vector<uint8_t> host(t->nbytes());
    cuda::copy_d2h(host.data(), t->data(), host.size());
    to_js_elements(host.data(), t->dtype(), n, buf.Data());
  }
  return make_typed_array(env, t->dtype(), n, buf);
}

// The worker behind data(): holds the storage so a dispose() meanwhile cannot free it.
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, TensorHandle* t)
      : Napi::AsyncWorker(env, "mamba.data"), deferred_(Napi::Promise::Deferred::New(env)), storage_(t->storage()),
        dtype_(t->dtype()), n_(t->numel()) {
    if (storage_->device == Device::CUDA) copy_ = cuda::host_copy_start(storage_->ptr, t->nbytes());
  }
  ~ReadWorker() override { cuda::host_copy_finish(copy_); }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      out_.resize(static_cast<size_t>(n_) * 4);
      const void* src = storage_->ptr;
      if (storage_->device == Device::CUDA) {
        cuda::host_copy_wait(copy_);
        src = copy_.host;
      }
      to_js_elements(src, dtype_, n_, out_.data());
    } catch (const Error& e) {
      error_ = std::make_unique<Error>(e);
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, out_.size());
    if (!out_.empty()) std::memcpy(buf.Data(), out_.data(), out_.size());
    storage_.reset();
    deferred_.Resolve(make_typed_array(env, dtype_, n_, buf));
  }
  void OnError(const Napi::Error& e) override {
    storage_.reset();
    deferred_.Reject(error_ ? to_js_error(Env(), *error_).Value() : e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<Storage> storage_;
  DType dtype_;
  int64_t n_;
  cuda::HostCopy copy_;
  std::vector<uint8_t> out_;
  std::unique_ptr<Error> error_;
};

// data(handle) -> Promise<Float32Array | Int32Array>
Napi::Value Data(const Napi::CallbackInfo& info) {
  TensorHandle* t = arg_tensor(info, 0, "data", "tensor");
  auto* w = new ReadWorker(info.Env(), t);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void InitCopy(Napi::Env env, Napi::Object exports) {
  export_fn<To>(env, exports, "to");
  export_fn<Cast>(env, exports, "cast");
  export_fn<Reshape>(env, exports, "reshape");
  export_fn<DataSync>(env, exports, "dataSync");
  export_fn<Data>(env, exports, "data");
}

}  // namespace mamba
