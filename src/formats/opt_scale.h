// Internal: per-block optimal scales (scaling kinds opt / optmin), two-level scale quantisation
// (one scale per super-block, small integer multipliers per sub-block) and the joint fit of a
// Lloyd-Max codebook with the block scales.
//
// Per block, with codebook c and element weights w (importance, or 1):
//   opt     q_i = c[k_i] * s               minimise sum w (q_i - x_i)^2 over s and the codes
//   optmin  q_i = c[k_i] * s - m           ... over s, m and the codes
// A handful of candidate scales around the one that maps the block's range onto the codebook's
// are tried; for each, every element takes its nearest code and (s, m) are refitted in closed
// form (least squares given the codes). The best is refined by two more assign + refit rounds
// (each never increases the error). Then the scales are quantised: single level, to the scale
// format; two level, to d * q with d = max_j s_j / (2^b - 1) in the scale format and q the
// integer below or above s_j / d, whichever gives the lower error after re-assigning the codes.
// Everything is a function of the block's own values, so the output is identical for any thread
// count; `reference` selects the plain scalar path (std::upper_bound assignment, no threads,
// generic weighted sums) that the fast path is tested against.
#pragma once

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "owf/formats/quantise.h"

namespace owf {

// Nearest centroid, ties to the lower one (fp32 midpoints): ElementFormat's LUT rule, i.e. the
// number of midpoints below y. Fast path: a uniform bucket table over the codebook's range, with
// buckets narrower than half the smallest gap between midpoints; table[b] counts the midpoints
// below the bucket's start less half a bucket, so at most one midpoint lies between that and y
// (float rounding of the bucket index moves it by far less than half a bucket): one comparison.
// Codebooks with (near-)coincident midpoints fall back to a branchless binary search.
class NearestCode {
 public:
  explicit NearestCode(std::span<const float> centroids);
  int operator()(float y) const {
    if (bucketed()) return Bucket(y);
    int i = 0;
    for (int step = half_; step > 0; step >>= 1) i += mids_[static_cast<size_t>(i + step - 1)] < y ? step : 0;
    return i;
  }
  bool bucketed() const { return !table_.empty(); }
  // The table lookup alone (only when bucketed()): branch-free, vectorisable.
  int Bucket(float y) const {
    float t = (y - lo_) * inv_width_;
    t = std::min(std::max(0.0f, t), top_);  // NaN -> 0
    const int k = table_.data()[static_cast<int>(t)];
    return k + (mids_.data()[k] < y ? 1 : 0);
  }

 private:
  std::vector<float> mids_;  // padded with +inf
  std::vector<int32_t> table_;
  float lo_ = 0, inv_width_ = 0, top_ = 0;
  int half_ = 0;
};

struct OptLayout {
  int64_t rows = 0, cols = 0;
  int64_t block = 0;  // elements per (sub-)block along a row: the unit one scale covers
  int64_t super = 0;  // two-level: elements per super-block (a multiple of block); 0 = single level
  bool with_min = false;
  ScaleFormat format = ScaleFormat::kBf16;
  int sub_bits = 0, min_bits = 0;
  int sub_offset = 0;  // sub-scale multipliers are q + sub_offset (h<b>: 2^b, m<b>: 2^(b-1))

  int64_t blocks_across() const { return (cols + block - 1) / block; }
  int64_t supers_across() const { return super ? (cols + super - 1) / super : 0; }
};

OptLayout MakeOptLayout(const ScalingSpec& s, const BlockGeometry& g);

struct OptScales {
  std::vector<float> scales, mins;              // per block: the values used (mins empty for opt)
  std::vector<float> super_scales, super_mins;  // two-level, per super-block, in the scale format
  std::vector<uint16_t> sub_scales, sub_mins;   // two-level, per block: the integer multipliers
};

// Fits every block's scale (and min) for the sorted codebook, quantises them and writes every
// element's code. importance: per-element weights or null.
OptScales OptimiseScales(const float* x, const float* importance, const OptLayout& layout,
                         std::span<const float> codebook, int threads, uint16_t* codes, bool reference = false);

// value = codebook[code] * scale (- min): the one expression the quantiser and every decoder use.
// With a min it is one fused multiply-add (a single rounding), so that every decoder agrees.
inline float OptValue(float c, float scale, float min, bool with_min) {
  return with_min ? std::fma(c, scale, -min) : c * scale;
}

// The Lloyd-Max codebook of `levels` values fitted jointly with the block scales: from a
// starting codebook, alternate (opt scales on a sample of super-blocks, exact Lloyd-Max on the
// values they normalise, weighted by scale^2 x importance) for a few rounds. Deterministic.
std::vector<float> FitJointCodebook(const float* x, const float* importance, const OptLayout& layout, int levels,
                                    std::vector<float> init, int threads);

}  // namespace owf
