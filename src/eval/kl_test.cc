#include "owf/eval/kl.h"

#include <gtest/gtest.h>

#include <cmath>

namespace owf {
namespace {

TEST(Kl, IdenticalDistributionsHaveZeroDivergence) {
  const std::vector<float> logits = {1.0f, 2.0f, -1.0f, 0.5f};
  auto s = ComparePosition(logits, logits, 1);
  EXPECT_NEAR(s.kl_full, 0, 1e-12);
  EXPECT_NEAR(s.kl_top128, 0, 1e-6);  // tail bucket floor 1e-6 on both sides
  EXPECT_TRUE(s.same_top1);
  EXPECT_NEAR(s.delta_p_top, 0, 1e-12);
  EXPECT_NEAR(s.ref_nll, s.cand_nll, 1e-12);
}

TEST(Kl, ClosedFormTwoSymbols) {
  // p = (0.75, 0.25), q = (0.5, 0.5): KL = 0.75 ln 1.5 + 0.25 ln 0.5.
  const std::vector<float> p = {std::log(3.0f), 0.0f}, q = {0.0f, 0.0f};
  auto s = ComparePosition(p, q, 0);
  const double want = 0.75 * std::log(1.5) + 0.25 * std::log(0.5);
  EXPECT_NEAR(s.kl_full, want, 1e-6);
  EXPECT_NEAR(s.delta_p_top, 0.5 - 0.75, 1e-6);
  EXPECT_NEAR(s.ref_nll, -std::log(0.75), 1e-6);
  EXPECT_NEAR(s.cand_nll, -std::log(0.5), 1e-6);
}

TEST(Kl, TopKLumpsTheTail) {
  // Top-1 of p = (0.5, 0.3, 0.2) vs q = (0.4, 0.4, 0.2): 0.5 ln(0.5/0.4) + 0.5 ln(0.5/0.6).
  const std::vector<float> p = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const std::vector<float> q = {std::log(0.4f), std::log(0.4f), std::log(0.2f)};
  auto s = ComparePosition(p, q, -1, 1);
  EXPECT_NEAR(s.kl_top128, 0.5 * std::log(0.5 / 0.4) + 0.5 * std::log(0.5 / 0.6), 1e-6);
  EXPECT_GE(s.kl_full, s.kl_top128 - 1e-9);  // lumping can only lose divergence
}

TEST(Kl, SummaryStatistics) {
  auto s = Summarise({1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_NEAR(s.stderr_, std::sqrt(2.5 / 5), 1e-12);
  EXPECT_NEAR(s.p90, 4.6, 1e-12);
}

}  // namespace
}  // namespace owf
