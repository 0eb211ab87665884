#include "owf/stats/moments.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

#include "owf/stats/synthetic.h"

namespace owf {
namespace {

std::span<const float> View(const Tensor& t) { return {t.data.data(), t.data.size()}; }

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

TEST(Moments, SmallVectorClosedForm) {
  const std::vector<float> x = {1, -2, 3, -4};
  const TensorStats s = ComputeStats(x);
  // mean -0.5; deviations +-1.5, +-3.5: var = (2 * 2.25 + 2 * 12.25) / 4 = 7.25,
  // E[d^4] = (2 * 5.0625 + 2 * 150.0625) / 4 = 77.5625.
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.mean, -0.5);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(7.25));
  EXPECT_DOUBLE_EQ(s.rms, std::sqrt(7.5));
  EXPECT_DOUBLE_EQ(s.absmax, 4);
  EXPECT_DOUBLE_EQ(s.excess_kurtosis, 77.5625 / (7.25 * 7.25) - 3);
}

TEST(Moments, TwoPointDistributionHasKurtosisMinusTwo) {
  std::vector<float> x(1000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 2 ? 0.25f : -0.25f;
  const TensorStats s = ComputeStats(x);
  EXPECT_DOUBLE_EQ(s.mean, 0);
  EXPECT_DOUBLE_EQ(s.std, 0.25);
  EXPECT_DOUBLE_EQ(s.excess_kurtosis, -2);
}

TEST(Moments, NormalAndLaplaceKurtosis) {
  const Tensor normal = SyntheticTensor(Distribution::kNormal, 0, 1024, 1024, 11, 0.02f);
  const TensorStats n = ComputeStats(View(normal));
  EXPECT_EQ(n.count, 1024 * 1024);
  EXPECT_NEAR(n.mean, 0, 1e-4);
  EXPECT_NEAR(n.std, 0.02, 2e-4);
  EXPECT_NEAR(n.rms, 0.02, 2e-4);
  EXPECT_NEAR(n.excess_kurtosis, 0, 0.05);
  EXPECT_GT(n.absmax, 0.02 * 4);

  const Tensor laplace = SyntheticTensor(Distribution::kLaplace, 0, 2048, 1024, 12, 1.0f);
  const TensorStats l = ComputeStats(View(laplace));
  EXPECT_NEAR(l.std, 1, 0.01);
  EXPECT_NEAR(l.excess_kurtosis, 3, 0.2);
}

TEST(Moments, BitIdenticalForAnyThreadCount) {
  // 1000 x 1001 elements: several chunks and a partial last one.
  const Tensor t = SyntheticTensor(Distribution::kStudentT, 5, 1000, 1001, 3, 0.02f);
  const TensorStats a = ComputeStats(View(t), 1);
  for (int threads : {2, 5}) {
    const TensorStats b = ComputeStats(View(t), threads);
    EXPECT_EQ(a.count, b.count);
    EXPECT_TRUE(SameBits(a.mean, b.mean)) << threads;
    EXPECT_TRUE(SameBits(a.std, b.std)) << threads;
    EXPECT_TRUE(SameBits(a.rms, b.rms)) << threads;
    EXPECT_TRUE(SameBits(a.absmax, b.absmax)) << threads;
    EXPECT_TRUE(SameBits(a.excess_kurtosis, b.excess_kurtosis)) << threads;
  }
  const StudentTFit fa = FitStudentT(View(t), 1 << 18, 1);
  for (int threads : {2, 5}) {
    const StudentTFit fb = FitStudentT(View(t), 1 << 18, threads);
    EXPECT_TRUE(SameBits(fa.df, fb.df)) << threads;
    EXPECT_TRUE(SameBits(fa.scale, fb.scale)) << threads;
    EXPECT_TRUE(SameBits(fa.mean_log_likelihood, fb.mean_log_likelihood)) << threads;
  }
}

TEST(Moments, DegenerateInputs) {
  const TensorStats e = ComputeStats({});
  EXPECT_EQ(e.count, 0);
  EXPECT_TRUE(std::isnan(e.mean) && std::isnan(e.std) && std::isnan(e.rms) &&
              std::isnan(e.absmax) && std::isnan(e.excess_kurtosis));

  const std::vector<float> zeros(100, 0.0f);
  const TensorStats z = ComputeStats(zeros);
  EXPECT_EQ(z.count, 100);
  EXPECT_EQ(z.mean, 0);
  EXPECT_EQ(z.std, 0);
  EXPECT_EQ(z.rms, 0);
  EXPECT_EQ(z.absmax, 0);
  EXPECT_TRUE(std::isnan(z.excess_kurtosis));

  std::vector<float> with_nan(100, 1.0f);
  with_nan[50] = std::numeric_limits<float>::quiet_NaN();
  const TensorStats w = ComputeStats(with_nan);
  EXPECT_TRUE(std::isnan(w.mean) && std::isnan(w.rms) && std::isnan(w.absmax));

  const StudentTFit fe = FitStudentT({});
  EXPECT_TRUE(std::isnan(fe.df) && std::isnan(fe.scale) && std::isnan(fe.mean_log_likelihood));
  const StudentTFit fz = FitStudentT(zeros);
  EXPECT_TRUE(std::isnan(fz.df));
  EXPECT_EQ(fz.scale, 0);
  const StudentTFit fn = FitStudentT(with_nan);
  EXPECT_TRUE(std::isnan(fn.df) && std::isnan(fn.scale));
}

TEST(StudentTFit, RecoversDfAndScaleOfT4) {
  // Unit variance t4 times 1: the t scale is sqrt((df - 2) / df) = sqrt(1/2).
  const Tensor t = SyntheticTensor(Distribution::kStudentT, 4, 1024, 1024, 21, 1.0f);
  const StudentTFit f = FitStudentT(View(t));
  EXPECT_TRUE(f.df == 3.5 || f.df == 4 || f.df == 4.5) << f.df;
  EXPECT_NEAR(f.scale, std::sqrt(0.5), 0.02 * std::sqrt(0.5));
  EXPECT_TRUE(std::isfinite(f.mean_log_likelihood));
}

TEST(StudentTFit, ScaleOfT5WithKnownScale) {
  const Tensor t = SyntheticTensor(Distribution::kStudentT, 5, 512, 1024, 22, 0.02f);
  const StudentTFit f = FitStudentT(View(t));
  EXPECT_GE(f.df, 4);
  EXPECT_LE(f.df, 6);
  // At df = 5 exactly the scale would be 0.02 sqrt(3/5); the grid neighbours shift it slightly.
  EXPECT_NEAR(f.scale, 0.02 * std::sqrt(0.6), 0.03 * 0.02 * std::sqrt(0.6));
}

TEST(StudentTFit, NormalDataGivesLargeDf) {
  const Tensor t = SyntheticTensor(Distribution::kNormal, 0, 1024, 1024, 23, 0.02f);
  const StudentTFit f = FitStudentT(View(t));
  EXPECT_GE(f.df, 30);
  EXPECT_NEAR(f.scale, 0.02, 0.02 * 0.03);
  // Mean log-likelihood of N(0, s^2) data: -0.5 log(2 pi e s^2); a t with df >= 30 is close.
  EXPECT_NEAR(f.mean_log_likelihood,
              -0.5 * std::log(2 * std::numbers::pi * std::numbers::e * 0.02 * 0.02), 0.01);
}

TEST(StudentTFit, SubsamplesWithAFixedStride) {
  const Tensor t = SyntheticTensor(Distribution::kStudentT, 3, 1, 1000, 5, 1.0f);
  // max_samples 400 of 1000: elements floor(i * 1000 / 400) = floor(2.5 i).
  std::vector<float> picked;
  for (int i = 0; i < 400; ++i) picked.push_back(t.data[static_cast<size_t>(i * 1000 / 400)]);
  const StudentTFit a = FitStudentT(View(t), 400);
  const StudentTFit b = FitStudentT(picked);
  EXPECT_TRUE(SameBits(a.df, b.df));
  EXPECT_TRUE(SameBits(a.scale, b.scale));
  EXPECT_TRUE(SameBits(a.mean_log_likelihood, b.mean_log_likelihood));
}

}  // namespace
}  // namespace owf
