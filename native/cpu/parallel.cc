// Worker count for parallel_for (see parallel.h).
#include "parallel.h"

#include <cstdlib>

namespace mamba {

int cpu_num_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("MAMBA_NUM_THREADS")) {
      int v = std::atoi(env);
      if (v > 0) return v;
    }
    unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
  }();
  return n;
}

}  // namespace mamba
