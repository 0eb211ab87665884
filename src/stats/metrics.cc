#include "owf/stats/metrics.h"

#include <cmath>
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
