// A small fork-join helper for CPU kernels: splits [0, n) into contiguous ranges, one per worker.
// Threads are created per call; CPU kernels here run for milliseconds, so the ~20 us spawn cost is noise,
// and a pool would add shutdown ordering problems at addon unload.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace mamba {

// Worker count: MAMBA_NUM_THREADS if set, else the hardware concurrency.
int cpu_num_threads();

// Calls fn(begin, end) over disjoint ranges covering [0, n). Ranges hold at least `grain` items.
// An exception thrown by any worker is rethrown in the caller after all workers joined.
template <typename Fn>
void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  int64_t workers = std::min<int64_t>(cpu_num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(1, grain)));
  if (workers <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(workers);
  int64_t per = (n + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    int64_t b = w * per, e = std::min(n, b + per);
    if (b >= e) break;
    threads.emplace_back([&, w, b, e] {
      try {
        fn(b, e);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  }
  try {
    fn(int64_t{0}, std::min(n, per));
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace mamba
