#include "owf/core/numeric.h"

namespace owf {

uint16_t Fp16FromFloat(float x) {
  const uint32_t b = FloatBits(x);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000);
  const uint32_t abs = b & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;  // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;  // rounds to >= 65520: inf
  if (abs < 0x38800000) {
    // Result is subnormal (or zero): value = m * 2^-24 with m < 1024. Round |x| * 2^24 to even.
    // |x| < 2^-14 so the product is exact in double.
    const double scaled = static_cast<double>(BitsFloat(abs)) * 16777216.0;
    const double r = std::nearbyint(scaled);  // default rounding mode: to nearest even
    return sign | static_cast<uint16_t>(r);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to even.
  uint32_t v = abs - (112u << 23);
  v += 0xFFF + ((v >> 13) & 1);
  return sign | static_cast<uint16_t>(v >> 13);
}

float FloatFromFp16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t man = h & 0x3FF;
  if (exp == 0) {
    const float v = static_cast<float>(man) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return BitsFloat(sign | 0x7F800000 | (man << 13));
  return BitsFloat(sign | ((exp + 112) << 23) | (man << 13));
}

}  // namespace owf
