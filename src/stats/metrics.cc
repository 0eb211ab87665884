#include "owf/stats/metrics.h"

#include <algorithm>
#include <cmath>
#include <vector>
#include <limits>

namespace owf {

ErrorSums ComputeErrorSums(std::span<const float> x, std::span<const float> q) {
  ErrorSums s;
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    const double d = static_cast<double>(q[i]) - xi;
    s.sum_x += xi;
    s.sum_x2 += xi * xi;
    s.sum_err2 += d * d;
  }
  s.count = static_cast<int64_t>(x.size());
  return s;
}

ErrorMetrics ComputeMetrics(const ErrorSums& s, double bits) {
  ErrorMetrics m;
  const double inf = std::numeric_limits<double>::infinity();
  m.rmse_norm = s.sum_x2 > 0 ? std::sqrt(s.sum_err2 / s.sum_x2) : (s.sum_err2 > 0 ? inf : 0.0);
  m.snr_db = s.sum_err2 > 0 ? 10.0 * std::log10(s.sum_x2 / s.sum_err2) : inf;
  m.efficiency = m.rmse_norm * std::exp2(bits);
  if (s.count > 0 && s.sum_err2 > 0) {
    const double n = static_cast<double>(s.count);
    const double mean = s.sum_x / n;
    const double variance = s.sum_x2 / n - mean * mean;
    const double mse = s.sum_err2 / n;
    m.shannon_gap_bits = bits - 0.5 * std::log2(variance / mse);
  } else {
    m.shannon_gap_bits = -inf;
  }
  return m;
}

}  // namespace owf

namespace owf {

double DifferentialEntropyBits(std::span<const float> x, int64_t max_samples) {
  const int64_t n_all = static_cast<int64_t>(x.size());
  const int64_t n = std::min(n_all, max_samples);
  if (n < 4) return -std::numeric_limits<double>::infinity();
  std::vector<float> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s[static_cast<size_t>(i)] = x[static_cast<size_t>(i * n_all / n)];
  std::sort(s.begin(), s.end());
  const int64_t m = std::max<int64_t>(1, std::llround(std::sqrt(static_cast<double>(n))));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double hi = s[static_cast<size_t>(std::min(n - 1, i + m))];
    const double lo = s[static_cast<size_t>(std::max<int64_t>(0, i - m))];
    const double gap = hi - lo;
    if (!(gap > 0)) continue;  // ties: contributes -inf in theory; skip (documented estimator bias)
    sum += std::log2(static_cast<double>(n) / (2.0 * static_cast<double>(m)) * gap);
  }
  return sum / static_cast<double>(n);
}

double GaussianBoundRmseNorm(double variance, double mean_square, double bits) {
  return std::sqrt(variance / mean_square) * std::exp2(-bits);
}

double ShannonLowerBoundRmseNorm(double entropy_bits, double mean_square, double bits) {
  const double d = std::exp2(2.0 * entropy_bits) / (2.0 * M_PI * std::exp(1.0));
  return std::sqrt(d / mean_square) * std::exp2(-bits);
}

}  // namespace owf
