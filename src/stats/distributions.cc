#include "owf/stats/distributions.h"

#include <boost/math/distributions/laplace.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <boost/math/policies/policy.hpp>
#include <cmath>
#include <limits>

namespace owf {
namespace {

// Boost.Math reports errors by throwing by default; owf never throws, so every error category
// returns a value instead (NaN for domain errors, +-inf for overflow). Arguments are also checked
// before calling Boost, so these paths are a second line of defence.
using NoThrowPolicy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::pole_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::underflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::denorm_error<boost::math::policies::ignore_error>,
    boost::math::policies::evaluation_error<boost::math::policies::ignore_error>,
    boost::math::policies::rounding_error<boost::math::policies::ignore_error>,
    boost::math::policies::indeterminate_result_error<boost::math::policies::ignore_error>>;

using NormalDist = boost::math::normal_distribution<double, NoThrowPolicy>;
using LaplaceDist = boost::math::laplace_distribution<double, NoThrowPolicy>;
using StudentTDist = boost::math::students_t_distribution<double, NoThrowPolicy>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool BadScale(double scale) { return !(scale > 0) || !std::isfinite(scale); }
bool BadProbability(double p) { return !(p >= 0 && p <= 1); }  // also rejects NaN
bool BadDf(double df) { return !(df > 0) || std::isnan(df); }

// Quantile of a distribution symmetric about 0 given either the cdf value p (lower side) or the
// survival value q (upper side): whichever is below 1/2 is passed to Boost, so that the small
// tail probability keeps its full relative precision.
template <typename Dist>
double SymmetricPpfFromSides(const Dist& dist, double p, double q) {
  if (p <= q) {
    if (p <= 0) return -kInf;
    return boost::math::quantile(dist, p);
  }
  if (q <= 0) return kInf;
  return boost::math::quantile(boost::math::complement(dist, q));
}

}  // namespace

double NormalCdf(double x, double scale) {
  if (BadScale(scale) || std::isnan(x)) return kNaN;
  return boost::math::cdf(NormalDist(0.0, scale), x);
}

double NormalSf(double x, double scale) {
  if (BadScale(scale) || std::isnan(x)) return kNaN;
  return boost::math::cdf(boost::math::complement(NormalDist(0.0, scale), x));
}

double NormalPpf(double p, double scale) {
  if (BadScale(scale) || BadProbability(p)) return kNaN;
  return SymmetricPpfFromSides(NormalDist(0.0, scale), p, 1.0 - p);
}

double NormalIsf(double q, double scale) {
  if (BadScale(scale) || BadProbability(q)) return kNaN;
  return SymmetricPpfFromSides(NormalDist(0.0, scale), 1.0 - q, q);
}

double LaplaceCdf(double x, double scale) {
  if (BadScale(scale) || std::isnan(x)) return kNaN;
  return boost::math::cdf(LaplaceDist(0.0, scale), x);
}

double LaplaceSf(double x, double scale) {
  if (BadScale(scale) || std::isnan(x)) return kNaN;
  return boost::math::cdf(boost::math::complement(LaplaceDist(0.0, scale), x));
}

double LaplacePpf(double p, double scale) {
  if (BadScale(scale) || BadProbability(p)) return kNaN;
  // p <= 1/2: s ln(2p); p > 1/2: -s ln(2(1 - p)), where 1 - p is exact for p >= 1/2.
  if (p <= 0.5) return p <= 0 ? -kInf : scale * std::log(2.0 * p);
  return p >= 1 ? kInf : -scale * std::log(2.0 * (1.0 - p));
}

double StudentTCdf(double x, double df, double scale) {
  if (BadScale(scale) || BadDf(df) || std::isnan(x)) return kNaN;
  return boost::math::cdf(StudentTDist(df), x / scale);
}

double StudentTSf(double x, double df, double scale) {
  if (BadScale(scale) || BadDf(df) || std::isnan(x)) return kNaN;
  return boost::math::cdf(boost::math::complement(StudentTDist(df), x / scale));
}

double StudentTPpf(double p, double df, double scale) {
  if (BadScale(scale) || BadDf(df) || BadProbability(p)) return kNaN;
  return scale * SymmetricPpfFromSides(StudentTDist(df), p, 1.0 - p);
}

double StudentTIsf(double q, double df, double scale) {
  if (BadScale(scale) || BadDf(df) || BadProbability(q)) return kNaN;
  return scale * SymmetricPpfFromSides(StudentTDist(df), 1.0 - q, q);
}

double TruncNormalPpf(double q, double a, double b, double scale) {
  if (BadScale(scale) || BadProbability(q) || std::isnan(a) || std::isnan(b) || !(a < b)) {
    return kNaN;
  }
  if (q == 0) return a * scale;
  if (q == 1) return b * scale;
  // Mass of [a, b], computed without cancelling against 1 where both ends are in one tail.
  const NormalDist std_normal(0.0, 1.0);
  const double cdf_a = NormalCdf(a);
  const double sf_b = NormalSf(b);
  double mass;
  if (a >= 0) {
    mass = NormalSf(a) - sf_b;
  } else if (b <= 0) {
    mass = NormalCdf(b) - cdf_a;
  } else {
    mass = 1.0 - cdf_a - sf_b;
  }
  if (!(mass > 0)) return kNaN;
  // The target cdf value and its complement: both are sums of non-negative terms.
  const double p_lo = cdf_a + q * mass;
  const double p_hi = sf_b + (1.0 - q) * mass;
  double x = SymmetricPpfFromSides(std_normal, p_lo, p_hi);
  // Rounding can leave the result a hair outside [a, b].
  x = std::fmin(std::fmax(x, a), b);
  return x * scale;
}

double TruncLaplacePpf(double q, double a, double scale) {
  if (BadScale(scale) || BadProbability(q) || !(a > 0)) return kNaN;
  if (std::isinf(a)) return LaplacePpf(q, scale);
  // c = 1 - e^-a; lower half: ln(1 - c (1 - 2q)), upper half: -ln(1 - c (2q - 1)).
  const double c = -std::expm1(-a);
  if (q < 0.5) return scale * std::log1p(-c * (1.0 - 2.0 * q));
  return -scale * std::log1p(-c * (2.0 * q - 1.0));
}

double TruncStudentTPpf(double q, double df, double lo, double hi, double scale) {
  if (BadScale(scale) || BadDf(df) || BadProbability(q) || std::isnan(lo) || std::isnan(hi) ||
      !(lo < hi)) {
    return kNaN;
  }
  if (q == 0) return lo;
  if (q == 1) return hi;
  const StudentTDist dist(df);
  const double a = lo / scale;
  const double b = hi / scale;
  const double cdf_a = std::isinf(a) ? 0.0 : boost::math::cdf(dist, a);
  const double sf_b = std::isinf(b) ? 0.0 : boost::math::cdf(boost::math::complement(dist, b));
  double mass;
  if (a >= 0) {
    mass = boost::math::cdf(boost::math::complement(dist, a)) - sf_b;
  } else if (b <= 0) {
    mass = boost::math::cdf(dist, b) - cdf_a;
  } else {
    mass = 1.0 - cdf_a - sf_b;
  }
  if (!(mass > 0)) return kNaN;
  const double p_lo = cdf_a + q * mass;
  const double p_hi = sf_b + (1.0 - q) * mass;
  double x = SymmetricPpfFromSides(dist, p_lo, p_hi);
  x = std::fmin(std::fmax(x, a), b);
  return x * scale;
}

}  // namespace owf
