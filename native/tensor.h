// The native tensor handle: a type-tagged ObjectWrap owning a shared reference to contiguous storage
// on 'cpu' or 'cuda', with its shape and dtype. Several handles may share one storage (reshape);
// the storage goes back to the host heap or the CUDA caching allocator when its last handle is
// disposed or collected. Live handle and byte counts per device feed memory() and the leak tests.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dtype.h"

namespace mamba {

// Contiguous bytes on one device. Bytes are counted per device from birth to death.
struct Storage {
  Device device;
  void* ptr = nullptr;
  size_t bytes = 0;
  static std::shared_ptr<Storage> allocate(Device device, size_t bytes, const char* fn);
  Storage(Device d, void* p, size_t b);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct LiveCounts {
  int64_t tensors[2] = {0, 0};  // indexed by Device
  int64_t bytes[2] = {0, 0};
};
LiveCounts& live_counts();

// The change of external memory since the last report to V8 (AdjustExternalMemory): host tensor bytes
// allocated minus freed, plus the change of the CUDA allocator's reserved bytes (see tensor.cc). Finalizers
// only update the host count; the next call from JS reports it, so no N-API call runs inside a finalizer.
// Call only from the JS thread.
int64_t take_external_delta();

int64_t shape_numel(const std::vector<int64_t>& shape);

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  static bool Is(Napi::Env env, Napi::Value v);
  // A new JS handle object owning `storage` viewed as `shape` / `dtype`.
  static Napi::Object Create(Napi::Env env, std::shared_ptr<Storage> storage, std::vector<int64_t> shape, DType dtype);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  void dispose();
  bool disposed() const { return !storage_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  void* data() const { return storage_->ptr; }

 private:
  std::shared_ptr<Storage> storage_;
  std::vector<int64_t> shape_;
  DType dtype_ = DType::Float32;
  int64_t numel_ = 0;
};

}  // namespace mamba
