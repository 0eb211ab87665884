// Fitting element formats to data: the exact error of any nearest-centroid codebook on a sorted
// sample with prefix sums (O(K log n) per codebook instead of O(n)), which makes the scale / df
// searches, exact 1-D Lloyd-Max and the entropy-coded grid's bit budget cheap.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "owf/core/memory.h"

namespace owf {

// Normalised values y with error weights w (w = block scale^2 x importance), sorted by y.
class SortedSample {
 public:
  SortedSample(std::vector<float> y, std::vector<float> w);

  int64_t size() const { return static_cast<int64_t>(y_.size()); }
  float min() const { return y_.empty() ? 0.0f : y_.front(); }
  float max() const { return y_.empty() ? 0.0f : y_.back(); }
  std::span<const float> values() const { return y_; }

  // sum w (c(y) - y)^2 where c(y) is the nearest centroid (midpoints in fp32, ties to the lower
  // centroid, as ElementFormat's LUT rule). centroids must be sorted.
  double Error(std::span<const float> centroids) const;
  // Number of samples in each cell of the sorted centroids.
  std::vector<int64_t> Counts(std::span<const float> centroids) const;
  // Exact Lloyd-Max (1-D weighted k-means) from `init` until no sample changes cell.
  std::vector<float> Lloyd(std::vector<float> init, int max_iterations = 500) const;

 private:
  // Boundaries: number of samples assigned to cells 0..j, for j < K - 1.
  std::vector<int64_t> Boundaries(std::span<const float> centroids) const;
  LargeVector<float> y_;
  LargeVector<double> w_, wy_, wy2_;  // prefix sums, size n + 1
};

// The ideal static code length in bits of `counts` with the model p = (count + 1) / (n + K)
// (the reference's entropy model, trained on the same tensor with add-one smoothing).
double IdealCodeBits(std::span<const int64_t> counts);

// k-means++ seeding (D^2 sampling, fixed seed) on a strided subsample of at most 2^16 values.
std::vector<float> KMeansPlusPlus(const SortedSample& sample, int levels);

// Lloyd-Max codebook of `levels` centroids: exact Lloyd iterations from each of several
// deterministic initialisations (uniform over [min, max] as the reference uses for absmax,
// k-means++ as it uses for rms, quantiles, cube-root density), keeping the lowest error.
std::vector<float> FitLloyd(const SortedSample& sample, int levels);

// Uniform grid k * res, k = -K..K with K = ceil(extent / res).
std::vector<float> UniformGrid(double res, double extent);

}  // namespace owf
