#include "owf/stats/moments.h"

#include <algorithm>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "owf/core/parallel.h"

namespace owf {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Elements per chunk: fixed, so that chunk boundaries (and hence rounding) never depend on the
// thread count.
constexpr size_t kChunk = size_t{1} << 16;

struct FirstPass {
  double sum = 0;
  double sum_sq = 0;
  double absmax = 0;
  bool nan = false;
};

struct SecondPass {
  double m2 = 0;  // sum (x - mean)^2
  double m4 = 0;  // sum (x - mean)^4
};

// Sum of f(v[i]) over [begin, end) with four interleaved partial sums (a fixed order, so the
// result is reproducible; the independent chains let the loop pipeline).
template <typename T, typename F>
double SumOf(const T* v, size_t begin, size_t end, F f) {
  double s[4] = {0, 0, 0, 0};
  size_t i = begin;
  for (; i + 4 <= end; i += 4) {
    s[0] += f(v[i]);
    s[1] += f(v[i + 1]);
    s[2] += f(v[i + 2]);
    s[3] += f(v[i + 3]);
  }
  for (; i < end; ++i) s[0] += f(v[i]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// The reference's df grid: 1, 1.5, ..., 9.5, 10, 12, ..., 18, 20, 30, ..., 100.
std::vector<double> DfGrid() {
  std::vector<double> g;
  for (int i = 2; i <= 19; ++i) g.push_back(0.5 * i);
  for (int d = 10; d <= 18; d += 2) g.push_back(d);
  for (int d = 20; d <= 100; d += 10) g.push_back(d);
  return g;
}

struct DfResult {
  double scale2 = kNaN;
  double mean_ll = kNaN;
};

// EM / IRLS scale for one df, then the mean log-likelihood of the scaled t at that scale.
DfResult FitOneDf(const std::vector<double>& x2, double mean_x2, double nu) {
  constexpr int kMaxIterations = 200;
  constexpr double kTolerance = 1e-3;
  const size_t n = x2.size();
  const double inv_n = 1.0 / static_cast<double>(n);
  double s2 = mean_x2;  // w = 1
  for (int it = 0; it < kMaxIterations; ++it) {
    const double a = (nu + 1) * s2;
    const double b = nu * s2;
    const double next =
        SumOf(x2.data(), 0, n, [a, b](double v) { return a * v / (v + b); }) * inv_n;
    if (!(next > 0) || !std::isfinite(next)) break;  // degenerate (e.g. mostly-zero data)
    const double change = std::fabs(std::sqrt(next) - std::sqrt(s2)) / std::sqrt(s2);
    s2 = next;
    if (change < kTolerance) break;
  }
  const double c = boost::math::lgamma((nu + 1) / 2) - boost::math::lgamma(nu / 2) -
                   0.5 * std::log(nu * std::numbers::pi) - 0.5 * std::log(s2);
  const double inv_b = 1.0 / (nu * s2);
  const double sum_log =
      SumOf(x2.data(), 0, n, [inv_b](double v) { return std::log1p(v * inv_b); });
  return {s2, c - 0.5 * (nu + 1) * sum_log * inv_n};
}

}  // namespace

TensorStats ComputeStats(std::span<const float> x, int threads) {
  TensorStats st;
  st.count = static_cast<int64_t>(x.size());
  if (x.empty()) {
    st.mean = st.std = st.rms = st.absmax = st.excess_kurtosis = kNaN;
    return st;
  }
  const size_t num_chunks = (x.size() + kChunk - 1) / kChunk;
  auto range = [&](size_t c) {
    return std::pair<size_t, size_t>(c * kChunk, std::min(x.size(), (c + 1) * kChunk));
  };

  std::vector<FirstPass> first(num_chunks);
  ParallelFor(num_chunks, threads, [&](size_t c) {
    const auto [begin, end] = range(c);
    FirstPass& r = first[c];
    r.sum = SumOf(x.data(), begin, end, [](float v) { return static_cast<double>(v); });
    r.sum_sq = SumOf(x.data(), begin, end, [](float v) { return static_cast<double>(v) * v; });
    float m = 0;
    for (size_t i = begin; i < end; ++i) {
      const float a = std::fabs(x[i]);
      r.nan |= std::isnan(a);
      m = std::max(m, a);
    }
    r.absmax = m;
  });
  FirstPass total;
  for (const FirstPass& r : first) {
    total.sum += r.sum;
    total.sum_sq += r.sum_sq;
    total.absmax = std::max(total.absmax, r.absmax);
    total.nan |= r.nan;
  }
  const double n = static_cast<double>(x.size());
  st.mean = total.sum / n;
  st.rms = std::sqrt(total.sum_sq / n);
  st.absmax = total.nan ? kNaN : total.absmax;

  std::vector<SecondPass> second(num_chunks);
  const double mean = st.mean;
  ParallelFor(num_chunks, threads, [&](size_t c) {
    const auto [begin, end] = range(c);
    second[c].m2 = SumOf(x.data(), begin, end, [mean](float v) {
      const double d = v - mean;
      return d * d;
    });
    second[c].m4 = SumOf(x.data(), begin, end, [mean](float v) {
      const double d = v - mean;
      return (d * d) * (d * d);
    });
  });
  double m2 = 0, m4 = 0;
  for (const SecondPass& r : second) {
    m2 += r.m2;
    m4 += r.m4;
  }
  const double var = m2 / n;
  st.std = std::sqrt(var);
  st.excess_kurtosis = (m4 / n) / (var * var) - 3.0;
  if (total.nan) st.mean = st.std = st.rms = st.excess_kurtosis = kNaN;
  return st;
}

StudentTFit FitStudentT(std::span<const float> x, int64_t max_samples, int threads) {
  const StudentTFit kInvalid{kNaN, kNaN, kNaN};
  const int64_t n = static_cast<int64_t>(x.size());
  if (n == 0) return kInvalid;
  const int64_t m = std::min(n, std::max<int64_t>(max_samples, 1));
  // Element floor(i * n / m), computed as i * q + floor(i * r / m) where n = q * m + r: i * r <
  // m^2 stays in range for any sample count that fits in memory.
  const int64_t q = n / m, r = n % m;
  std::vector<double> x2(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    const double v = x[static_cast<size_t>(i * q + (i * r) / m)];
    if (!std::isfinite(v)) return kInvalid;
    x2[static_cast<size_t>(i)] = v * v;
  }
  const double mean_x2 =
      SumOf(x2.data(), 0, x2.size(), [](double v) { return v; }) / static_cast<double>(m);
  if (mean_x2 == 0) return {kNaN, 0, kNaN};

  const std::vector<double> grid = DfGrid();
  std::vector<DfResult> results(grid.size());
  ParallelFor(grid.size(), threads, [&](size_t i) { results[i] = FitOneDf(x2, mean_x2, grid[i]); });
  StudentTFit best{kNaN, kNaN, -std::numeric_limits<double>::infinity()};
  for (size_t i = 0; i < grid.size(); ++i) {
    if (results[i].mean_ll > best.mean_log_likelihood) {
      best = {grid[i], std::sqrt(results[i].scale2), results[i].mean_ll};
    }
  }
  if (std::isnan(best.df)) return kInvalid;
  return best;
}

}  // namespace owf
