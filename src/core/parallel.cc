#include "owf/core/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace owf {

int ResolveThreads(int requested) {
  if (requested > 0) return requested;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

void ParallelFor(size_t num_chunks, int threads, const std::function<void(size_t)>& fn) {
  const size_t workers = std::min<size_t>(static_cast<size_t>(ResolveThreads(threads)), num_chunks);
  if (workers <= 1) {
    for (size_t i = 0; i < num_chunks; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < num_chunks; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace owf
