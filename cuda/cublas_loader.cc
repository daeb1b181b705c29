// Run-time loading of cuBLASLt (see cublas_loader.h): dlopen + dlsym of the entry points matmul needs,
// and one handle for the process. Never throws: a missing or unusable library is reported through
// lt() == nullptr and load_error(), and matmul then runs the hand-written kernel (cuda/matmul.cu).
#include "cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "launch.h"

namespace mamba {
namespace cuda {
namespace cublaslt {
namespace {

std::string g_error;
const Api* g_api = nullptr;

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* p = std::getenv("MAMBA_CUBLASLT_PATH"); p && *p) out.push_back(p);
  const char* names[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
  for (const char* n : names) out.push_back(n);  // LD_LIBRARY_PATH, rpath, ld.so.cache
  std::vector<std::string> dirs;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* d = std::getenv(var); d && *d) dirs.push_back(std::string(d) + "/lib64/");
  dirs.push_back("/usr/local/cuda/lib64/");
  for (const auto& d : dirs)
    for (const char* n : names) out.push_back(d + n);
  return out;
}

template <typename F>
bool sym(void* lib, const char* name, F& fn, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) missing = name;
  return fn != nullptr;
}

const Api* load() {
  if (device_count() == 0) {
    g_error = "no CUDA device";
    return nullptr;
  }
  void* lib = nullptr;
  std::string path, tried;
  for (const auto& c : candidates()) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      path = c;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  if (!lib) {
    g_error = "libcublasLt not found (tried " + tried + ")";
    return nullptr;
  }
  static Api api;
  std::string missing;
  size_t (*get_version)() = nullptr;
  bool ok = sym(lib, "cublasLtCreate", api.create, missing) && sym(lib, "cublasLtMatmulDescCreate", api.matmul_desc_create, missing) &&
            sym(lib, "cublasLtMatmulDescDestroy", api.matmul_desc_destroy, missing) &&
            sym(lib, "cublasLtMatmulDescSetAttribute", api.matmul_desc_set_attribute, missing) &&
            sym(lib, "cublasLtMatrixLayoutCreate", api.matrix_layout_create, missing) &&
            sym(lib, "cublasLtMatrixLayoutDestroy", api.matrix_layout_destroy, missing) &&
            sym(lib, "cublasLtMatrixLayoutSetAttribute", api.matrix_layout_set_attribute, missing) &&
            sym(lib, "cublasLtMatmulPreferenceCreate", api.preference_create, missing) &&
            sym(lib, "cublasLtMatmulPreferenceDestroy", api.preference_destroy, missing) &&
            sym(lib, "cublasLtMatmulPreferenceSetAttribute", api.preference_set_attribute, missing) &&
            sym(lib, "cublasLtMatmulAlgoGetHeuristic", api.algo_get_heuristic, missing) && sym(lib, "cublasLtMatmul", api.matmul, missing) &&
            sym(lib, "cublasLtGetStatusString", api.status_string, missing) && sym(lib, "cublasLtGetVersion", get_version, missing);
  if (!ok) {
    g_error = path + " lacks " + missing;
    dlclose(lib);
    return nullptr;
  }
  // The handle binds to the current device's context; make sure the runtime has created it.
  try {
    stream();
  } catch (const std::exception& e) {
    g_error = e.what();
    return nullptr;
  }
  Status s = api.create(&api.handle);
  if (s != kSuccess) {
    g_error = "cublasLtCreate failed: " + std::string(api.status_string(s));
    return nullptr;  // the library stays loaded: unloading code that may have registered state is riskier
  }
  api.version = get_version();
  api.path = path;
  return &api;
}

std::once_flag g_once;

}  // namespace

const Api* lt() {
  std::call_once(g_once, [] { g_api = load(); });
  return g_api;
}

std::string load_error() {
  lt();
  return g_api ? std::string() : g_error;
}

}  // namespace cublaslt
}  // namespace cuda
}  // namespace mamba
