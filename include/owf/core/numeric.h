// Bit-level float helpers: bf16 and fp16 conversions with IEEE round-to-nearest-even,
// exactly as PyTorch casts (fp32 -> bf16/fp16 -> fp32).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace owf {

inline uint32_t FloatBits(float x) { return std::bit_cast<uint32_t>(x); }
inline float BitsFloat(uint32_t b) { return std::bit_cast<float>(b); }

constexpr float kFp32MinNormal = std::numeric_limits<float>::min();  // 2^-126
constexpr float kBf16Max = 3.38953139e38f;                           // (2 - 2^-7) * 2^127
constexpr float kFp16Max = 65504.0f;

// fp32 -> bf16 bits, round to nearest even; NaN stays NaN.
inline uint16_t Bf16FromFloat(float x) {
  uint32_t b = FloatBits(x);
  if (std::isnan(x)) return static_cast<uint16_t>((b >> 16) | 0x40);
  b += 0x7FFF + ((b >> 16) & 1);
  return static_cast<uint16_t>(b >> 16);
}
inline float FloatFromBf16(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }
inline float RoundBf16(float x) { return FloatFromBf16(Bf16FromFloat(x)); }

// fp32 -> IEEE half bits, round to nearest even, subnormals kept, overflow to inf.
uint16_t Fp16FromFloat(float x);
float FloatFromFp16(uint16_t h);
inline float RoundFp16(float x) { return FloatFromFp16(Fp16FromFloat(x)); }

}  // namespace owf
