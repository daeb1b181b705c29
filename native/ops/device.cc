// What the build and the machine offer: CUDA availability, device list, memory statistics, and the
// allocator controls. JS side: lib/device.ts and lib/memory.ts.
#include "../../cuda/launch.h"
#include "../addon.h"
#include "../check.h"

namespace mamba {
namespace {

Napi::Value CompiledWithCuda(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cuda::compiled_with_cuda()); }

Napi::Value CudaAvailable(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), cuda::device_count() > 0); }

// devices() -> [{ index, name, totalMemory, computeCapability: 'major.minor', multiprocessors }]
Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = cuda::device_count();
  Napi::Array out = Napi::Array::New(env, n);
  for (int i = 0; i < n; ++i) {
    cuda::DeviceInfo d = cuda::device_info(i);
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", i);
    o.Set("name", d.name);
    o.Set("totalMemory", static_cast<double>(d.total_memory));
    o.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    o.Set("multiprocessors", d.multiprocessors);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// memory() -> { cpu: { tensors, bytes }, cuda: { tensors, bytes, allocatedBytes, reservedBytes, deviceAllocs,
//                                         peakAllocatedBytes, peakReservedBytes } }
Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const LiveCounts& c = live_counts();
  cuda::AllocatorStats s = cuda::allocator_stats();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("tensors", static_cast<double>(c.tensors[0]));
  cpu.Set("bytes", static_cast<double>(c.bytes[0]));
  Napi::Object gpu = Napi::Object::New(env);
  gpu.Set("tensors", static_cast<double>(c.tensors[1]));
  gpu.Set("bytes", static_cast<double>(c.bytes[1]));
  gpu.Set("allocatedBytes", static_cast<double>(s.allocated_bytes));
  gpu.Set("reservedBytes", static_cast<double>(s.reserved_bytes));
  gpu.Set("deviceAllocs", static_cast<double>(s.num_device_allocs));
  gpu.Set("peakAllocatedBytes", static_cast<double>(s.peak_allocated_bytes));
  gpu.Set("peakReservedBytes", static_cast<double>(s.peak_reserved_bytes));
  Napi::Object out = Napi::Object::New(env);
  out.Set("cpu", cpu);
  out.Set("cuda", gpu);
  return out;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  cuda::empty_cache();
  return info.Env().Undefined();
}

// resetPeakMemory(): the allocator's peak allocated / reserved bytes become the current ones.
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  cuda::reset_peak_stats();
  return info.Env().Undefined();
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  if (cuda::device_count() > 0) cuda::synchronize();
  return info.Env().Undefined();
}

// cudaTime(fn, iterations) -> number[]: device milliseconds of each call of fn(), measured with CUDA
// events around it on the library stream (fn should enqueue work and return).
Napi::Value CudaTime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) fail(ErrorKind::Argument, "cudaTime", "fn", "cudaTime: argument 'fn' expected a function");
  double n = arg_number(info, 1, "cudaTime", "iterations");
  if (!(n >= 1 && n <= 1e6) || n != static_cast<int>(n)) fail(ErrorKind::Argument, "cudaTime", "iterations", "cudaTime: argument 'iterations' expected an integer in 1..1e6");
  Napi::Function fn = info[0].As<Napi::Function>();
  std::vector<float> ms = cuda::time_events(static_cast<int>(n), [&](int) { fn.Call({}); });
  Napi::Array out = Napi::Array::New(env, ms.size());
  for (size_t i = 0; i < ms.size(); ++i) out.Set(static_cast<uint32_t>(i), static_cast<double>(ms[i]));
  return out;
}

}  // namespace

void InitDevice(Napi::Env env, Napi::Object exports) {
  export_fn<CompiledWithCuda>(env, exports, "compiledWithCuda");
  export_fn<CudaAvailable>(env, exports, "cudaAvailable");
  export_fn<Devices>(env, exports, "devices");
  export_fn<Memory>(env, exports, "memory");
  export_fn<EmptyCache>(env, exports, "emptyCache");
  export_fn<ResetPeakMemory>(env, exports, "resetPeakMemory");
  export_fn<Synchronize>(env, exports, "synchronize");
  export_fn<CudaTime>(env, exports, "cudaTime");
}

}  // namespace mamba
