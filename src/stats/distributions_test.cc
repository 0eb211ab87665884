#include "owf/stats/distributions.h"

#include <gtest/gtest.h>

#include <cmath>

namespace owf {
namespace {

// Reference values below were computed with mpmath at 50 digits.

double Rel(double got, double want) { return std::fabs(got - want) / std::fabs(want); }

TEST(Distributions, NormalQuantiles) {
  EXPECT_LT(Rel(NormalPpf(0.975), 1.9599639845400542355), 1e-14);
  EXPECT_LT(Rel(NormalPpf(0.025), -1.9599639845400542355), 1e-14);
  EXPECT_LT(Rel(NormalIsf(1e-20), 9.2623400897984075737), 1e-14);
  EXPECT_LT(Rel(NormalPpf(1e-300), -37.047096299361199237), 1e-14);
  EXPECT_LT(Rel(NormalPpf(0.975, 3.0), 3 * 1.9599639845400542355), 1e-14);
  EXPECT_EQ(NormalPpf(0.5), 0.0);
  EXPECT_TRUE(std::isinf(NormalPpf(0.0)) && NormalPpf(0.0) < 0);
  EXPECT_TRUE(std::isinf(NormalPpf(1.0)) && NormalPpf(1.0) > 0);
  EXPECT_TRUE(std::isnan(NormalPpf(1.5)));
  EXPECT_TRUE(std::isnan(NormalPpf(0.5, -1)));
  EXPECT_NEAR(NormalCdf(NormalPpf(0.3, 2), 2), 0.3, 1e-15);
  EXPECT_NEAR(NormalSf(1.0) + NormalCdf(1.0), 1.0, 1e-15);
}

TEST(Distributions, LaplaceQuantiles) {
  EXPECT_DOUBLE_EQ(LaplacePpf(0.25, 2.0), 2 * std::log(0.5));
  EXPECT_DOUBLE_EQ(LaplacePpf(0.75, 2.0), -2 * std::log(0.5));
  EXPECT_EQ(LaplacePpf(0.5), 0.0);
  EXPECT_NEAR(LaplaceCdf(LaplacePpf(0.1, 0.7), 0.7), 0.1, 1e-15);
  EXPECT_NEAR(LaplaceSf(LaplacePpf(0.99, 0.7), 0.7), 0.01, 1e-15);
}

TEST(Distributions, StudentTRealDf) {
  EXPECT_LT(Rel(StudentTPpf(0.975, 10), 2.2281388519862747484), 1e-13);
  EXPECT_LT(Rel(StudentTPpf(0.1, 2.5), -1.7302509288071765896), 1e-13);
  // Very heavy tail (df = 1/3): the quantile scales like p^-3.
  EXPECT_LT(Rel(StudentTPpf(1.0 / 257, 1.0 / 3), -684137.82017332813774), 1e-12);
  EXPECT_LT(Rel(StudentTIsf(1.0 / 257, 1.0 / 3, 2.0), 2 * 684137.82017332813774), 1e-12);
  EXPECT_EQ(StudentTPpf(0.5, 3.3), 0.0);
  EXPECT_NEAR(StudentTCdf(StudentTPpf(0.2, 4.5, 1.5), 4.5, 1.5), 0.2, 1e-14);
  EXPECT_NEAR(StudentTSf(1.0, 4.5) + StudentTCdf(1.0, 4.5), 1.0, 1e-15);
  EXPECT_TRUE(std::isnan(StudentTPpf(0.2, -1)));
  EXPECT_TRUE(std::isnan(StudentTPpf(0.2, std::nan(""))));
}

TEST(Distributions, TruncatedNormal) {
  EXPECT_LT(Rel(TruncNormalPpf(0.3, -1.5, 2), -0.41262688225521283737), 1e-13);
  EXPECT_LT(Rel(TruncNormalPpf(0.3, -1.5, 2, 0.5), 0.5 * -0.41262688225521283737), 1e-13);
  // Far upper tail: a cdf-based formula would lose everything here (cdf(8) == 1 in double).
  EXPECT_LT(Rel(TruncNormalPpf(0.999, 8, 9), 8.7919635866188912158), 1e-12);
  EXPECT_LT(Rel(TruncNormalPpf(0.5, 8, 9), 8.0848888990181664333), 1e-12);
  EXPECT_LT(Rel(TruncNormalPpf(0.5, -9, -8), -8.0848888990181664333), 1e-12);
  EXPECT_EQ(TruncNormalPpf(0, -1, 2, 3), -3.0);
  EXPECT_EQ(TruncNormalPpf(1, -1, 2, 3), 6.0);
  EXPECT_TRUE(std::isnan(TruncNormalPpf(0.5, 2, 1)));
  EXPECT_NEAR(TruncNormalPpf(0.5, -1.7, 1.7), 0, 1e-16);
}

TEST(Distributions, TruncatedLaplace) {
  // Matches the reference-spec closed form.
  const double a = 2.5, s = 0.4, ea = std::exp(-a);
  for (double q : {0.01, 0.2, 0.49, 0.5, 0.7, 0.999}) {
    const double want =
        q < 0.5 ? s * std::log(2 * q * (1 - ea) + ea) : -s * std::log(2 - ea - 2 * q * (1 - ea));
    EXPECT_NEAR(TruncLaplacePpf(q, a, s), want, 1e-15) << q;
  }
  EXPECT_NEAR(TruncLaplacePpf(0, a, s), -a * s, 1e-15);
  EXPECT_NEAR(TruncLaplacePpf(1, a, s), a * s, 1e-15);
  EXPECT_TRUE(std::isnan(TruncLaplacePpf(0.5, -1)));
}

TEST(Distributions, TruncatedStudentT) {
  EXPECT_LT(Rel(TruncStudentTPpf(0.9, 2.5, -3, 3, 1.2), 1.6311544201010279525), 1e-13);
  EXPECT_LT(Rel(TruncStudentTPpf(0.1, 2.5, -3, 3, 1.2), -1.6311544201010279525), 1e-13);
  EXPECT_EQ(TruncStudentTPpf(0, 2.5, -3, 3, 1.2), -3.0);
  EXPECT_EQ(TruncStudentTPpf(1, 2.5, -3, 3, 1.2), 3.0);
  EXPECT_TRUE(std::isnan(TruncStudentTPpf(0.5, 2.5, 3, -3)));
}

}  // namespace
}  // namespace owf
