// Shared by the native kernels: split `tasks` work items over up to `nthreads` std::threads
// (1 runs inline, no thread is started). fn(worker, lo, hi) handles tasks [lo, hi). A thread that
// cannot be started (e.g. a cgroup's pids limit on a batch node) has its share run inline.
// `guarded` turns a C++ exception into a return code: nothing may unwind through the C ABI.
#pragma once
#include <algorithm>
#include <cstdint>
#include <new>
#include <system_error>
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
  pool.reserve(n);
  int64_t i = 0;
  try {
    for (; i < n; ++i) {
      const int64_t lo = tasks * i / n, hi = tasks * (i + 1) / n;
      pool.emplace_back([=] { fn(i, lo, hi); });
    }
  } catch (const std::system_error&) {
    for (; i < n; ++i) fn(i, tasks * i / n, tasks * (i + 1) / n);  // no more threads: run here
  }
  for (auto& th : pool) th.join();
}

// 0: done; 1: out of memory; 2: another C++ exception.
template <typename F>
int guarded(F fn) {
  try {
    fn();
    return 0;
  } catch (const std::bad_alloc&) {
    return 1;
  } catch (...) {
    return 2;
  }
}

}  // namespace qssm
