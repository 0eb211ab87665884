// Symbol streams and their ideal code length, shared by the Huffman and rANS tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace owf::testing {

// n symbols in [0, levels): a standard normal quantised on a uniform grid over +-3 sigma; the
// tails clip to the end levels, as a quantiser's would.
inline std::vector<uint16_t> GaussianSymbols(size_t n, int levels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<uint16_t> out(n);
  for (auto& s : out) {
    const double t = (normal(rng) / 3.0 + 1.0) / 2.0 * (levels - 1);
    s = static_cast<uint16_t>(std::clamp<double>(std::round(t), 0, levels - 1));
  }
  return out;
}

// The ideal static code length of `symbols` (alphabet of k): -sum count * log2(count / n), bits.
inline double IdealBits(const std::vector<uint16_t>& symbols, int k) {
  std::vector<double> counts(k, 0);
  for (uint16_t s : symbols) counts[s] += 1;
  const double n = static_cast<double>(symbols.size());
  double bits = 0;
  for (double c : counts) {
    if (c > 0) bits -= c * std::log2(c / n);
  }
  return bits;
}

}  // namespace owf::testing
