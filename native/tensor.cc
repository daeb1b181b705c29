// Storage, live counts and the TensorHandle ObjectWrap (see tensor.h).
#include "tensor.h"

#include <atomic>
#include <cstdlib>
#include <new>

#include "../cuda/launch.h"
#include "addon.h"
#include "check.h"

namespace mamba {
namespace {

// Set while a handle's destructor runs from the GC, so a storage dying there only queues its frees.
bool g_in_finalizer = false;
std::atomic<int64_t> g_external_delta{0};

// 64-byte alignment so CPU kernels can use aligned vector loads.
void* host_alloc(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + (bytes == 0 ? 64 : 0));
  if (!p) throw std::bad_alloc();
  return p;
}

const napi_type_tag kTensorTag = {0x6d616d62615f6e6fULL, 0x64655f74656e736fULL};  // "mamba_node_tenso"

}  // namespace

LiveCounts& live_counts() {
  static LiveCounts c;
  return c;
}

int64_t take_external_delta() {
  static int64_t reported_cuda_reserved = 0;  // JS thread only (report_external_memory)
  int64_t d = g_external_delta.exchange(0);
  if (cuda::compiled_with_cuda()) {
    const int64_t reserved = static_cast<int64_t>(cuda::allocator_stats().reserved_bytes);
    d += reserved - reported_cuda_reserved;
    reported_cuda_reserved = reserved;
  }
  return d;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::shared_ptr<Storage> Storage::allocate(Device device, size_t bytes, const char* fn) {
  void* p = device == Device::CUDA ? cuda::alloc(bytes, fn) : host_alloc(bytes);
  try {
    return std::make_shared<Storage>(device, p, bytes);
  } catch (...) {
    if (device == Device::CUDA) cuda::free(p); else std::free(p);
    throw;
  }
}

// Host bytes are reported to V8 as they come and go. CUDA bytes are not: V8 starts a garbage collection
// whenever the reported external memory rises 64 MB above its lowest point since the last full GC (and a
// full, blocking one at a few GB), so reporting every short-lived CUDA tensor made one op that allocates
// 75 MB (rmsNorm with a float32 residual) trigger a mark-compact every call or two, and a training step
// that holds GBs of activations trigger several blocking collections, while the GPU waited for the host.
// CUDA memory is reported as the caching allocator's reserved bytes instead (take_external_delta): they
// grow only when the cache cannot serve a request, which is when collecting leaked handles helps.
static void count_storage(Device d, int64_t bytes) {
  live_counts().bytes[static_cast<int>(d)] += bytes;
  if (d == Device::CPU) g_external_delta += bytes;
}

Storage::Storage(Device d, void* p, size_t b) : device(d), ptr(p), bytes(b) { count_storage(d, static_cast<int64_t>(b)); }

Storage::~Storage() {
  count_storage(device, -static_cast<int64_t>(bytes));
  if (device == Device::CUDA) {
    if (g_in_finalizer) cuda::free_deferred(ptr); else cuda::free(ptr);
  } else {
    std::free(ptr);
  }
}

Napi::Function TensorHandle::Define(Napi::Env env) { return DefineClass(env, "TensorHandle", {}); }

bool TensorHandle::Is(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) return false;
  bool tagged = false;
  napi_check_object_type_tag(env, v, &kTensorTag, &tagged);
  return tagged;
}

Napi::Object TensorHandle::Create(Napi::Env env, std::shared_ptr<Storage> storage, std::vector<int64_t> shape, DType dtype) {
  Napi::Object obj = addon(env).tensor_ctor.New({});
  napi_type_tag_object(env, obj, &kTensorTag);
  TensorHandle* t = Unwrap(obj);
  t->numel_ = shape_numel(shape);
  t->shape_ = std::move(shape);
  t->dtype_ = dtype;
  if (storage && t->storage_ == nullptr) {
    live_counts().tensors[static_cast<int>(storage->device)] += 1;
  }
  t->storage_ = std::move(storage);
  return obj;
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

void TensorHandle::dispose() {
  if (!storage_) return;
  live_counts().tensors[static_cast<int>(storage_->device)] -= 1;
  storage_.reset();
}

TensorHandle::~TensorHandle() {
  // The GC backstop: only reached for handles the program never disposed.
  g_in_finalizer = true;
  dispose();
  g_in_finalizer = false;
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !TensorHandle::Is(info.Env(), info[0]))
    fail(ErrorKind::Argument, "dispose", "tensor", "dispose: argument 'tensor' expected a tensor handle");
  TensorHandle::Unwrap(info[0].As<Napi::Object>())->dispose();
  return info.Env().Undefined();
}

static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !TensorHandle::Is(info.Env(), info[0]))
    fail(ErrorKind::Argument, "isDisposed", "tensor", "isDisposed: argument 'tensor' expected a tensor handle");
  return Napi::Boolean::New(info.Env(), TensorHandle::Unwrap(info[0].As<Napi::Object>())->disposed());
}

static Napi::Value RegisterErrors(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArray())
    fail(ErrorKind::Argument, "registerErrors", "classes", "registerErrors: expected an array of error classes");
  Napi::Array a = info[0].As<Napi::Array>();
  Addon& ad = addon(info.Env());
  ad.error_ctors.clear();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsFunction()) fail(ErrorKind::Argument, "registerErrors", "classes", "registerErrors: expected functions");
    ad.error_ctors.push_back(Napi::Persistent(v.As<Napi::Function>()));
  }
  return info.Env().Undefined();
}

void InitTensor(Napi::Env env, Napi::Object exports) {
  addon(env).tensor_ctor = Napi::Persistent(TensorHandle::Define(env));
  export_fn<Dispose>(env, exports, "dispose");
  export_fn<IsDisposed>(env, exports, "isDisposed");
  export_fn<RegisterErrors>(env, exports, "registerErrors");
}

}  // namespace mamba
