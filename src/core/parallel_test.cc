#include "owf/core/parallel.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace owf
