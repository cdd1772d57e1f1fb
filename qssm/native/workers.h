// Shared by the native kernels: split `tasks` work items over up to `nthreads` std::threads
// (1 runs inline, no thread is started). fn(worker, lo, hi) handles tasks [lo, hi).
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#define QSSM_EXPORT extern "C" __attribute__((visibility("default")))

namespace qssm {

template <typename F>
void run_workers(int64_t nthreads, int64_t tasks, F fn) {
  const int64_t n = std::min<int64_t>(nthreads < 1 ? 1 : nthreads, tasks);
  if (n <= 1) {
    fn(0, 0, tasks);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t lo = tasks * i / n, hi = tasks * (i + 1) / n;
    pool.emplace_back([=] { fn(i, lo, hi); });
  }
  for (auto& th : pool) th.join();
}

}  // namespace qssm
