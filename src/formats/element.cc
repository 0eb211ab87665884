#include "owf/formats/element.h"

#include <algorithm>
#include <cmath>

#include "owf/core/numeric.h"

namespace owf {

const std::vector<float>& Nf4Table() {
  // QLoRA (Dettmers et al. 2023), appendix E: NormalFloat4.
  static const std::vector<float> kTable = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
      -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
      0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
      0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  return kTable;
}

const std::vector<float>& Sf4Table() {
  // Student Float 4 (Dotzel et al. 2024), Student-t with df=5, as in the reference code.
  static const std::vector<float> kTable = {-1.0f,  -0.628f, -0.455f, -0.334f, -0.237f, -0.153f,
                                            -0.075f, 0.0f,   0.066f,  0.133f,  0.205f,  0.284f,
                                            0.376f,  0.491f, 0.657f,  1.0f};
  return kTable;
}

void ElementFormat::BuildMidpoints() {
  midpoints_.resize(centroids_.empty() ? 0 : centroids_.size() - 1);
  for (size_t i = 0; i + 1 < centroids_.size(); ++i)
    midpoints_[i] = (centroids_[i] + centroids_[i + 1]) / 2.0f;
}

ElementFormat ElementFormat::Lut(std::vector<float> centroids, double bits) {
  ElementFormat f;
  f.kind_ = Kind::kLut;
  std::sort(centroids.begin(), centroids.end());
  f.centroids_ = std::move(centroids);
  f.bits_ = bits;
  f.lo_ = f.centroids_.front();
  f.hi_ = f.centroids_.back();
  f.BuildMidpoints();
  return f;
}

ElementFormat ElementFormat::Int(double bits, bool symmetric) {
  ElementFormat f;
  f.kind_ = Kind::kInt;
  const int64_t n = std::llround(std::exp2(bits));
  f.bits_ = std::log2(static_cast<double>(n));
  f.symmetric_ = symmetric;
  if (symmetric) {
    const double half = (n - 1) / 2.0;
    f.lo_ = static_cast<float>(-half);
    f.hi_ = static_cast<float>(half);
    f.half_offset_ = n % 2 == 0;
  } else {
    const int64_t half = (n - 1) / 2;
    f.lo_ = static_cast<float>(-half - (2 * half + 1 < n ? 1 : 0));
    f.hi_ = static_cast<float>(half);
  }
  for (int64_t i = 0; i < n; ++i) f.centroids_.push_back(f.lo_ + static_cast<float>(i));
  return f;
}

ElementFormat ElementFormat::Float(int exponent_bits, int mantissa_bits, Rounding rounding) {
  ElementFormat f;
  f.kind_ = Kind::kFloat;
  f.exponent_bits_ = exponent_bits;
  f.mantissa_bits_ = mantissa_bits;
  f.rounding_ = rounding;
  f.bits_ = 1 + exponent_bits + mantissa_bits;
  const int bias = 1 << (exponent_bits - 1);
  const int num_exp = 1 << exponent_bits;
  const int num_man = 1 << mantissa_bits;
  std::vector<float> positive;
  for (int e = 0; e < num_exp; ++e) {
    for (int m = 0; m < num_man; ++m) {
      double v = e == 0 ? std::ldexp(static_cast<double>(m) / num_man, 1 - bias)
                        : std::ldexp(1.0 + static_cast<double>(m) / num_man, e - bias);
      if (e == 0 && m == 0) continue;
      positive.push_back(static_cast<float>(v));
    }
  }
  f.max_ = positive.back();
  for (auto it = positive.rbegin(); it != positive.rend(); ++it) f.centroids_.push_back(-*it);
  f.centroids_.push_back(0.0f);
  f.centroids_.insert(f.centroids_.end(), positive.begin(), positive.end());
  f.lo_ = -f.max_;
  f.hi_ = f.max_;
  return f;
}

ElementFormat ElementFormat::Cast(ElementFamily family) {
  ElementFormat f;
  f.kind_ = Kind::kCast;
  f.cast_ = family;
  switch (family) {
    case ElementFamily::kBf16: f.bits_ = 16; f.hi_ = kBf16Max; break;
    case ElementFamily::kFp16: f.bits_ = 16; f.hi_ = kFp16Max; break;
    default: f.bits_ = 32; f.hi_ = std::numeric_limits<float>::max(); break;
  }
  f.lo_ = -f.hi_;
  return f;
}

ElementFormat ElementFormat::WithScale(float s) const {
  ElementFormat f = *this;
  f.format_scale_ = s * format_scale_;
  if (kind_ == Kind::kLut) {
    // A scaled codebook is a codebook: snap to the nearest of the scaled values directly.
    for (float& c : f.centroids_) c *= s;
    f.BuildMidpoints();
  } else if (kind_ != Kind::kCast) {
    for (float& c : f.centroids_) c *= s;
  }
  return f;
}

float ElementFormat::QuantiseUnscaled(float y) const {
  switch (kind_) {
    case Kind::kLut: {
      // Number of midpoints strictly below y: ties go to the lower index.
      const auto it = std::lower_bound(midpoints_.begin(), midpoints_.end(), y);
      return centroids_[static_cast<size_t>(it - midpoints_.begin())];
    }
    case Kind::kInt: {
      float v = half_offset_ ? std::nearbyint(y + 0.5f) - 0.5f : std::nearbyint(y);
      return std::clamp(v, lo_, hi_);
    }
    case Kind::kFloat: {
      const float x = std::clamp(y, -max_, max_);
      const float shift = std::ldexp(1.0f, 127 - (1 << (exponent_bits_ - 1)));
      uint32_t b = FloatBits(x / shift);
      const int k = 23 - mantissa_bits_;
      if (k > 0) {
        const uint32_t mask = (1u << k) - 1;
        const uint32_t offset = rounding_ == Rounding::kToZero  ? 0u
                                : rounding_ == Rounding::kToInf ? mask
                                                                : (1u << (k - 1)) - 1;
        b = (b + offset) & ~mask;
      }
      return BitsFloat(b) * shift;
    }
    case Kind::kCast:
      switch (cast_) {
        case ElementFamily::kBf16: return RoundBf16(std::clamp(y, lo_, hi_));
        case ElementFamily::kFp16: return RoundFp16(std::clamp(y, lo_, hi_));
        default: return y;
      }
  }
  return y;
}

float ElementFormat::Quantise(float x) const {
  if (kind_ == Kind::kLut || format_scale_ == 1.0f) return QuantiseUnscaled(x);
  return QuantiseUnscaled(x / format_scale_) * format_scale_;
}

int ElementFormat::CodeOfValue(float q) const {
  const auto it = std::lower_bound(centroids_.begin(), centroids_.end(), q);
  return static_cast<int>(it - centroids_.begin());
}

int ElementFormat::Code(float x) const {
  if (kind_ == Kind::kCast) return -1;
  if (kind_ == Kind::kLut) {
    return static_cast<int>(std::lower_bound(midpoints_.begin(), midpoints_.end(), x) -
                            midpoints_.begin());
  }
  // -0.0 compares equal to 0.0, so the zero code is found for both.
  return CodeOfValue(Quantise(x));
}

void ElementFormat::QuantiseScaled(std::span<const float> x, float scale, float* out,
                                   uint16_t* codes) const {
  const size_t n = x.size();
  if (kind_ == Kind::kLut) {
    const float* mid = midpoints_.data();
    const size_t nm = midpoints_.size();
    const float* cent = centroids_.data();
    for (size_t i = 0; i < n; ++i) {
      const float y = scale != 0.0f ? x[i] / scale : x[i];
      uint32_t idx = 0;
      if (nm <= 32) {
        for (size_t j = 0; j < nm; ++j) idx += y > mid[j];
      } else {
        idx = static_cast<uint32_t>(std::lower_bound(mid, mid + nm, y) - mid);
      }
      if (codes) codes[i] = static_cast<uint16_t>(idx);
      out[i] = cent[idx] * scale;
    }
    return;
  }
  if (kind_ == Kind::kInt && format_scale_ == 1.0f) {
    for (size_t i = 0; i < n; ++i) {
      const float y = scale != 0.0f ? x[i] / scale : x[i];
      const uint16_t code = static_cast<uint16_t>(QuantiseUnscaled(y) - lo_);
      if (codes) codes[i] = code;
      out[i] = centroids_[code] * scale;  // the codebook value: +0, never -0
    }
    return;
  }
  if (kind_ == Kind::kFloat && format_scale_ == 1.0f) {
    // The bit trick of QuantiseUnscaled, with the code read off the rounded bits: the format's
    // magnitudes map onto fp32 bit patterns whose bits above the cleared ones count up 0, 1, ...
    const float shift = std::ldexp(1.0f, 127 - (1 << (exponent_bits_ - 1)));
    const int k = 23 - mantissa_bits_;
    const uint32_t mask = k > 0 ? (1u << k) - 1 : 0;
    const uint32_t offset = k <= 0 ? 0u
                            : rounding_ == Rounding::kToZero ? 0u
                            : rounding_ == Rounding::kToInf  ? mask
                                                             : (1u << (k - 1)) - 1;
    const int32_t zero_code = static_cast<int32_t>(centroids_.size() / 2);
    for (size_t i = 0; i < n; ++i) {
      const float y = std::clamp(scale != 0.0f ? x[i] / scale : x[i], -max_, max_);
      const uint32_t b = (FloatBits(y / shift) + offset) & ~mask;
      const int32_t magnitude = static_cast<int32_t>((b & 0x7FFFFFFFu) >> std::max(k, 0));
      const uint16_t code = static_cast<uint16_t>((b >> 31) ? zero_code - magnitude : zero_code + magnitude);
      if (codes) codes[i] = code;
      out[i] = centroids_[code] * scale;
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const float y = scale != 0.0f ? x[i] / scale : x[i];
    const float q = Quantise(y);
    if (!has_codes()) {
      out[i] = q * scale;
      continue;
    }
    const uint16_t code = static_cast<uint16_t>(CodeOfValue(q));
    if (codes) codes[i] = code;
    out[i] = centroids_[code] * scale;
  }
}

}  // namespace owf
