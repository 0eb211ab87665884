#include "owf/stats/metrics.h"
#include "owf/stats/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace owf {
namespace {

TEST(Metrics, SumsOfAKnownError) {
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> q = {1, 2, 3, 5};
  const ErrorSums s = ComputeErrorSums(x, q);
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.sum_x, 10);
  EXPECT_DOUBLE_EQ(s.sum_x2, 30);
  EXPECT_DOUBLE_EQ(s.sum_err2, 1);
}

TEST(Metrics, RmseNormSnrAndEfficiency) {
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> q = {1, 2, 3, 5};
  const ErrorMetrics m = ComputeMetrics(ComputeErrorSums(x, q), 3);
  EXPECT_DOUBLE_EQ(m.rmse_norm, std::sqrt(1.0 / 30.0));
  EXPECT_NEAR(m.snr_db, 14.771212547196624, 1e-12);  // 10 log10(30)
  EXPECT_DOUBLE_EQ(m.efficiency, 8 * std::sqrt(1.0 / 30.0));
}

TEST(Metrics, ShannonGapHandComputed) {
  // variance = 30/4 - 2.5^2 = 1.25, MSE = 1/4: R(D) = 0.5 log2(5) = 1.160964 bits.
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> q = {1, 2, 3, 5};
  const ErrorMetrics m = ComputeMetrics(ComputeErrorSums(x, q), 3);
  EXPECT_NEAR(m.shannon_gap_bits, 3 - 1.1609640474436813, 1e-12);
}

TEST(Metrics, UniformQuantiserOfUniformDataHasKnownGap) {
  // x uniform on a fine grid over [0, 1), quantised to 4 levels (cell centres): MSE -> 1/(12*16),
  // variance -> 1/12, so the rate needed is 0.5 log2(16) = 2 bits and the gap at 2 bits -> 0.
  const int n = 1 << 16;
  std::vector<float> x(n), q(n);
  for (int i = 0; i < n; ++i) {
    x[i] = (i + 0.5f) / n;
    q[i] = (std::floor(x[i] * 4) + 0.5f) / 4;
  }
  const ErrorMetrics m = ComputeMetrics(ComputeErrorSums(x, q), 2);
  EXPECT_NEAR(m.shannon_gap_bits, 0, 1e-6);
  EXPECT_NEAR(m.snr_db, 10 * std::log10((1.0 / 3) / (1.0 / 192)), 1e-3);  // E[x^2] / MSE
}

TEST(Metrics, ExactAndDegenerateCases) {
  const std::vector<float> x = {0.5f, -1.5f};
  ErrorMetrics m = ComputeMetrics(ComputeErrorSums(x, x), 4);
  EXPECT_EQ(m.rmse_norm, 0);
  EXPECT_TRUE(std::isinf(m.snr_db) && m.snr_db > 0);
  EXPECT_TRUE(std::isinf(m.shannon_gap_bits) && m.shannon_gap_bits < 0);
  const std::vector<float> zeros = {0, 0};
  m = ComputeMetrics(ComputeErrorSums(zeros, x), 4);
  EXPECT_TRUE(std::isinf(m.rmse_norm));
  m = ComputeMetrics(ComputeErrorSums(zeros, zeros), 4);
  EXPECT_EQ(m.rmse_norm, 0);
}

TEST(Metrics, AddCombinesChunks) {
  const std::vector<float> x = {1, 2, 3, 4};
  const std::vector<float> q = {1.5f, 2, 2, 4};
  ErrorSums total = ComputeErrorSums(std::span(x).first(1), std::span(q).first(1));
  total.Add(ComputeErrorSums(std::span(x).subspan(1), std::span(q).subspan(1)));
  const ErrorSums whole = ComputeErrorSums(x, q);
  EXPECT_EQ(total.count, whole.count);
  EXPECT_DOUBLE_EQ(total.sum_x, whole.sum_x);
  EXPECT_DOUBLE_EQ(total.sum_x2, whole.sum_x2);
  EXPECT_DOUBLE_EQ(total.sum_err2, whole.sum_err2);
  EXPECT_DOUBLE_EQ(ComputeMetrics(total, 4).rmse_norm, std::sqrt(1.25 / 30));
}

}  // namespace
namespace {

TEST(DifferentialEntropy, MatchesClosedFormsOnSyntheticData) {
  // Normal(0, s^2): h = 0.5 log2(2 pi e s^2); Laplace with unit variance: log2(2 e b), b = 1/sqrt2.
  const Tensor normal = SyntheticTensor(Distribution::kNormal, 0, 512, 1024, 3, 0.5f);
  EXPECT_NEAR(DifferentialEntropyBits(normal.data), 0.5 * std::log2(2 * M_PI * std::exp(1.0) * 0.25), 0.01);
  const Tensor laplace = SyntheticTensor(Distribution::kLaplace, 0, 512, 1024, 4, 1.0f);
  EXPECT_NEAR(DifferentialEntropyBits(laplace.data), std::log2(2 * std::exp(1.0) / std::sqrt(2.0)), 0.01);
  // For Gaussian data the Shannon lower bound equals the Gaussian bound.
  const double h = 0.5 * std::log2(2 * M_PI * std::exp(1.0) * 0.25);
  EXPECT_NEAR(ShannonLowerBoundRmseNorm(h, 0.25, 4), GaussianBoundRmseNorm(0.25, 0.25, 4), 1e-12);
  EXPECT_DOUBLE_EQ(GaussianBoundRmseNorm(1, 1, 3), 0.125);
}

}  // namespace
}  // namespace owf
