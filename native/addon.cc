// Module init only: instance data, then each feature file's Init<X>. The cleanup hook returns the
// CUDA cache to the driver when the environment goes away.
#include <napi.h>

#include "../cuda/launch.h"
#include "addon.h"

namespace mamba {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<Addon>(new Addon());
  env.AddCleanupHook([] { cuda::release_all_at_exit(); });
  InitTensor(env, exports);
  InitCreation(env, exports);
  InitCopy(env, exports);
  InitDevice(env, exports);
  InitSelectiveScan(env, exports);
  InitFused(env, exports);
  InitMatmul(env, exports);
  InitElementwise(env, exports);
  InitShape(env, exports);
  InitReduceExtra(env, exports);
  InitAdamW(env, exports);
  return exports;
}

}  // namespace mamba

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return mamba::Init(env, exports); }

NODE_API_MODULE(mamba_node, InitModule)
