#include "fit.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>
#include <random>

namespace owf {

namespace {

// Maps a float to an unsigned key with the same order (negative floats reversed).
inline uint32_t OrderedKey(float v) {
  const uint32_t b = std::bit_cast<uint32_t>(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// LSD radix sort of (key, payload) pairs by key, 3 passes of 11 bits. Stable, deterministic.
void RadixSort(LargeVector<uint64_t>& items) {
  LargeVector<uint64_t> tmp(items.size());
  for (int shift = 32; shift < 64; shift += 11) {
    std::vector<size_t> count(2049, 0);
    for (uint64_t v : items) ++count[((v >> shift) & 2047) + 1];
    for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
    for (uint64_t v : items) tmp[count[(v >> shift) & 2047]++] = v;
    items.swap(tmp);
  }
}

}  // namespace

SortedSample::SortedSample(std::vector<float> y, std::vector<float> w) {
  const size_t n = y.size();
  // Sort (key, index) pairs: key in the high 32 bits, index in the low.
  LargeVector<uint64_t> items(n);
  for (size_t i = 0; i < n; ++i) items[i] = (static_cast<uint64_t>(OrderedKey(y[i])) << 32) | i;
  RadixSort(items);
  y_.resize(n);
  w_.assign(n + 1, 0.0);
  wy_.assign(n + 1, 0.0);
  wy2_.assign(n + 1, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t j = static_cast<uint32_t>(items[i]);
    const double yi = y[j];
    const double wi = w[j];
    y_[i] = y[j];
    w_[i + 1] = w_[i] + wi;
    wy_[i + 1] = wy_[i] + wi * yi;
    wy2_[i + 1] = wy2_[i] + wi * yi * yi;
  }
}

std::vector<int64_t> SortedSample::Boundaries(std::span<const float> c) const {
  std::vector<int64_t> b(c.size() > 0 ? c.size() - 1 : 0);
  for (size_t j = 0; j + 1 < c.size(); ++j) {
    const float mid = (c[j] + c[j + 1]) / 2.0f;
    // Samples equal to the midpoint belong to the lower cell.
    b[j] = std::upper_bound(y_.begin(), y_.end(), mid) - y_.begin();
  }
  return b;
}

double SortedSample::Error(std::span<const float> c) const {
  const std::vector<int64_t> b = Boundaries(c);
  double total = 0;
  int64_t lo = 0;
  for (size_t j = 0; j < c.size(); ++j) {
    const int64_t hi = j + 1 < c.size() ? std::max(b[j], lo) : size();
    const double cj = c[j];
    const double e = cj * cj * (w_[hi] - w_[lo]) - 2 * cj * (wy_[hi] - wy_[lo]) + (wy2_[hi] - wy2_[lo]);
    total += std::max(e, 0.0);
    lo = hi;
  }
  return total;
}

std::vector<int64_t> SortedSample::Counts(std::span<const float> c) const {
  const std::vector<int64_t> b = Boundaries(c);
  std::vector<int64_t> counts(c.size());
  int64_t lo = 0;
  for (size_t j = 0; j < c.size(); ++j) {
    const int64_t hi = j + 1 < c.size() ? std::max(b[j], lo) : size();
    counts[j] = hi - lo;
    lo = hi;
  }
  return counts;
}

std::vector<float> SortedSample::Lloyd(std::vector<float> c, int max_iterations) const {
  std::vector<int64_t> prev;
  for (int it = 0; it < max_iterations; ++it) {
    const std::vector<int64_t> b = Boundaries(c);
    if (b == prev) break;
    int64_t lo = 0;
    for (size_t j = 0; j < c.size(); ++j) {
      const int64_t hi = j + 1 < c.size() ? std::max(b[j], lo) : size();
      const double wsum = w_[hi] - w_[lo];
      if (hi > lo && wsum > 0) c[j] = static_cast<float>((wy_[hi] - wy_[lo]) / wsum);
      lo = hi;
    }
    // Keep the codebook sorted (an empty cell keeps its old value).
    for (size_t j = 1; j < c.size(); ++j) c[j] = std::max(c[j], c[j - 1]);
    prev = b;
  }
  return c;
}

double IdealCodeBits(std::span<const int64_t> counts) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  const double denom = n + static_cast<double>(counts.size());
  double bits = 0;
  for (int64_t k : counts)
    if (k > 0) bits -= static_cast<double>(k) * std::log2((static_cast<double>(k) + 1.0) / denom);
  return bits;
}

std::vector<float> KMeansPlusPlus(const SortedSample& s, int levels) {
  // D^2 sampling (Arthur & Vassilvitskii) on a strided subsample of at most 2^16 points, with a
  // fixed seed: deterministic.
  const int64_t n = s.size();
  const int64_t m = std::min<int64_t>(n, 1 << 16);
  std::vector<float> pts(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) pts[static_cast<size_t>(i)] = s.values()[static_cast<size_t>(i * n / m)];
  std::mt19937_64 rng(0x5eed);
  auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1p-53; };
  std::vector<float> c = {pts[static_cast<size_t>(uniform() * static_cast<double>(m))]};
  std::vector<double> d2(pts.size());
  for (size_t i = 0; i < pts.size(); ++i) d2[i] = static_cast<double>(pts[i] - c[0]) * (pts[i] - c[0]);
  while (static_cast<int>(c.size()) < levels) {
    const double total = std::accumulate(d2.begin(), d2.end(), 0.0);
    if (!(total > 0)) break;  // fewer distinct values than levels
    double r = uniform() * total;
    size_t pick = 0;
    while (pick + 1 < d2.size() && r >= d2[pick]) r -= d2[pick++];
    c.push_back(pts[pick]);
    for (size_t i = 0; i < pts.size(); ++i)
      d2[i] = std::min(d2[i], static_cast<double>(pts[i] - pts[pick]) * (pts[i] - pts[pick]));
  }
  while (static_cast<int>(c.size()) < levels) c.push_back(c.back());
  std::sort(c.begin(), c.end());
  return c;
}

std::vector<float> FitLloyd(const SortedSample& s, int levels) {
  const int64_t n = s.size();
  std::vector<std::vector<float>> inits;
  // Uniform over the data's range (the reference's init for absmax/signmax scaling).
  std::vector<float> uniform(levels);
  for (int i = 0; i < levels; ++i)
    uniform[i] = s.min() + (s.max() - s.min()) * static_cast<float>(i) / static_cast<float>(levels - 1);
  inits.push_back(uniform);
  // Quantiles of the data, and cube-root-density points (Panter-Dite from the sample).
  if (n > 0) {
    std::vector<float> quant(levels);
    for (int i = 0; i < levels; ++i)
      quant[i] = s.values()[static_cast<size_t>((i + 0.5) / levels * static_cast<double>(n - 1))];
    inits.push_back(quant);
    // Cumulative sum of gap^(2/3) over a sorted subsample approximates the cdf of pdf^(1/3).
    const int64_t m = std::min<int64_t>(n, 1 << 16);
    std::vector<double> cum(m, 0.0);
    for (int64_t i = 1; i < m; ++i) {
      const double a = s.values()[static_cast<size_t>((i - 1) * (n - 1) / std::max<int64_t>(m - 1, 1))];
      const double b = s.values()[static_cast<size_t>(i * (n - 1) / std::max<int64_t>(m - 1, 1))];
      cum[i] = cum[i - 1] + std::cbrt((b - a) * (b - a));
    }
    if (cum.back() > 0) {
      std::vector<float> cube(levels);
      for (int i = 0; i < levels; ++i) {
        const double target = cum.back() * (i + 0.5) / levels;
        const int64_t k = std::lower_bound(cum.begin(), cum.end(), target) - cum.begin();
        cube[i] = s.values()[static_cast<size_t>(k * (n - 1) / std::max<int64_t>(m - 1, 1))];
      }
      inits.push_back(cube);
    }
  }
  if (n > 0) inits.push_back(KMeansPlusPlus(s, levels));
  std::vector<float> best;
  double best_err = INFINITY;
  for (auto& init : inits) {
    std::sort(init.begin(), init.end());
    std::vector<float> c = s.Lloyd(init);
    const double e = s.Error(c);
    if (e < best_err) {
      best_err = e;
      best = std::move(c);
    }
  }
  return best;
}

std::vector<float> UniformGrid(double res, double extent) {
  const int64_t k = static_cast<int64_t>(std::ceil(extent / res - 1e-9));
  std::vector<float> g;
  g.reserve(static_cast<size_t>(2 * k + 1));
  for (int64_t i = -k; i <= k; ++i) g.push_back(static_cast<float>(static_cast<double>(i) * res));
  return g;
}

}  // namespace owf
