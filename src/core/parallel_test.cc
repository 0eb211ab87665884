#include "owf/core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

namespace owf {
namespace {

TEST(ParallelFor, VisitsEveryChunkOnce) {
  for (int threads : {1, 2, 7}) {
    std::vector<int> hits(1000, 0);
    ParallelFor(hits.size(), threads, [&](size_t i) { hits[i] += 1; });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

TEST(ParallelFor, ZeroChunksIsANoOp) {
  bool called = false;
  ParallelFor(0, 4, [&](size_t) { called = true; });
  EXPECT_FALSE(called);
}

// Per-chunk results do not depend on the thread count (the contract callers rely on).
TEST(ParallelFor, ChunkResultsIndependentOfThreads) {
  auto run = [](int threads) {
    std::vector<double> out(257);
    ParallelFor(out.size(), threads, [&](size_t i) {
      double s = 0;
      for (int k = 1; k <= 1000; ++k) s += std::sin(static_cast<double>(i * k));
      out[i] = s;
    });
    return out;
  };
  const std::vector<double> one = run(1);
  for (int threads : {2, 3, 8, 0}) EXPECT_EQ(run(threads), one) << threads << " threads";
}

// A ParallelFor inside a chunk runs inline and must not deadlock, whether the outer chunk
// runs on a pool worker or on the calling thread.
TEST(ParallelFor, NestedCallsComplete) {
  constexpr size_t kOuter = 16, kInner = 50;
  std::vector<std::vector<int>> hits(kOuter, std::vector<int>(kInner, 0));
  ParallelFor(kOuter, 4, [&](size_t i) {
    ParallelFor(kInner, 4, [&](size_t j) {
      ParallelFor(2, 4, [&](size_t k) { hits[i][j] += static_cast<int>(k) + 1; });
    });
  });
  for (const auto& row : hits)
    for (int h : row) ASSERT_EQ(h, 3);
}

// Several threads calling ParallelFor at once share the pool; each call sees all its chunks.
TEST(ParallelFor, ConcurrentCallersEachCompleteTheirOwnWork) {
  constexpr int kCallers = 6, kRounds = 200;
  std::vector<std::thread> callers;
  std::vector<int> failures(kCallers, 0);
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int r = 0; r < kRounds; ++r) {
        const size_t n = 1 + static_cast<size_t>((c * 37 + r * 11) % 97);
        std::vector<int> hits(n, 0);
        ParallelFor(n, 1 + (c + r) % 5, [&](size_t i) { hits[i] += 1; });
        for (int h : hits) failures[c] += h != 1;
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(failures[c], 0) << "caller " << c;
}

// Many tiny calls (the forward pass's pattern) reuse the pool: all complete, exactly once.
TEST(ParallelFor, ManyTinyCalls) {
  std::atomic<int64_t> total{0};
  for (int call = 0; call < 20000; ++call) {
    ParallelFor(2 + call % 3, 2, [&](size_t i) { total += static_cast<int64_t>(i) + 1; });
  }
  // chunks 2, 3, 4 cycling: sums 3, 6, 10 per call.
  int64_t expected = 0;
  for (int call = 0; call < 20000; ++call) expected += (2 + call % 3) * (3 + call % 3) / 2;
  EXPECT_EQ(total.load(), expected);
}

// A thread count above the chunk count, or far above the core count, is fine.
TEST(ParallelFor, MoreThreadsThanChunks) {
  std::vector<int> hits(3, 0);
  ParallelFor(hits.size(), 64, [&](size_t i) { hits[i] += 1; });
  for (int h : hits) EXPECT_EQ(h, 1);
}

}  // namespace
}  // namespace owf
