// Scalar element formats: the value sets that a normalised weight is snapped to.
//
// Every low-bit element format is a sorted codebook ("centroids") plus a rounding rule:
//   kLut   nearest centroid; a value exactly on a midpoint (computed in fp32) goes to the lower
//          index; out-of-range values snap to the end values.
//   kInt   round half to even, then clip (reference IntFormat), values are integers or
//          half-integers (symmetric, even level count).
//   kFloat ExMy without inf/NaN, quantised with the reference's bit trick (bit-exact): clip to
//          +-max, shift onto fp32 subnormals, add a rounding offset, clear low mantissa bits.
//   kCast  bf16 / fp16 / fp32 round-to-nearest-even casts (no codebook).
// A format scale s (from +search) applies as q(x) = inner(x / s) * s.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/formats/spec.h"

namespace owf {

class ElementFormat {
 public:
  enum class Kind { kLut, kInt, kFloat, kCast };

  ElementFormat() = default;  // an fp32 cast

  static ElementFormat Lut(std::vector<float> centroids, double bits);
  static ElementFormat Int(double bits, bool symmetric);
  static ElementFormat Float(int exponent_bits, int mantissa_bits, Rounding rounding);
  static ElementFormat Cast(ElementFamily family);  // kBf16, kFp16 or kFp32

  Kind kind() const { return kind_; }
  double bits() const { return bits_; }
  // The (unscaled) representable range that absmax/signmax scaling normalises to.
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  // Sorted representable values (times format_scale); empty for casts.
  const std::vector<float>& centroids() const { return centroids_; }
  bool has_codes() const { return kind_ != Kind::kCast; }
  // True when Quantise is exactly "nearest centroid" up to tie rules (rz/ri floats are not).
  bool is_nearest() const { return !(kind_ == Kind::kFloat && rounding_ != Rounding::kNearest); }

  float format_scale() const { return format_scale_; }
  // A copy with a format scale: q(x) = inner(x / s) * s (range stays unscaled).
  ElementFormat WithScale(float s) const;

  // Scalar reference path.
  float Quantise(float x) const;
  // Index of Quantise(x) in centroids(); -1 for casts.
  int Code(float x) const;

  // Fast path: y[i] = x[i] / scale (or x[i] when scale == 0), codes[i] = code of y[i],
  // out[i] = centroids()[code] * scale: equal to Quantise(y[i]) * scale, except that a zero is
  // always +0 (the codebook's zero), so values are a function of (code, scale) alone. codes may
  // be null.
  void QuantiseScaled(std::span<const float> x, float scale, float* out, uint16_t* codes) const;

 private:
  float QuantiseUnscaled(float y) const;  // inner format, no format scale
  int CodeOfValue(float q) const;         // binary search in centroids_
  void BuildMidpoints();

  Kind kind_ = Kind::kCast;
  // (default-constructed: fp32 cast)
  double bits_ = 32;
  float lo_ = 0, hi_ = 0;
  std::vector<float> centroids_;
  std::vector<float> midpoints_;  // kLut only, fp32 (c[i] + c[i+1]) / 2
  float format_scale_ = 1.0f;
  // kInt
  bool symmetric_ = false;
  bool half_offset_ = false;  // symmetric with even level count: round(x + 0.5) - 0.5
  // kFloat
  int exponent_bits_ = 0, mantissa_bits_ = 0;
  Rounding rounding_ = Rounding::kNearest;
  float max_ = 0;
  // kCast
  ElementFamily cast_ = ElementFamily::kFp32;
};

// Published tables (normalised to [-1, 1]).
const std::vector<float>& Nf4Table();
const std::vector<float>& Sf4Table();

}  // namespace owf
