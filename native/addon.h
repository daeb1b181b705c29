// Per-environment addon state (N-API instance data): the handle constructor and the JS error
// classes registered by lib/native.ts. Cleaned up with the environment.
#pragma once
#include <napi.h>

#include <vector>

namespace mamba {

struct Addon {
  Napi::FunctionReference tensor_ctor;
  std::vector<Napi::FunctionReference> error_ctors;  // indexed by ErrorKind
};

inline Addon& addon(Napi::Env env) { return *env.GetInstanceData<Addon>(); }

// Each feature file exports its functions through one of these.
void InitTensor(Napi::Env env, Napi::Object exports);
void InitCreation(Napi::Env env, Napi::Object exports);
void InitCopy(Napi::Env env, Napi::Object exports);
void InitDevice(Napi::Env env, Napi::Object exports);
void InitSelectiveScan(Napi::Env env, Napi::Object exports);
void InitFused(Napi::Env env, Napi::Object exports);
void InitMatmul(Napi::Env env, Napi::Object exports);
void InitElementwise(Napi::Env env, Napi::Object exports);
void InitShape(Napi::Env env, Napi::Object exports);
void InitReduceExtra(Napi::Env env, Napi::Object exports);
void InitAdamW(Napi::Env env, Napi::Object exports);

}  // namespace mamba
