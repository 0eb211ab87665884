#include "owf/core/numeric.h"

#include <gtest/gtest.h>

namespace owf {
namespace {

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is exactly half way between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(RoundBf16(1.0f + 0x1p-8f), 1.0f);
  // 1 + 3*2^-8 is half way between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(RoundBf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  EXPECT_EQ(RoundBf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
  EXPECT_EQ(RoundBf16(-2.5f), -2.5f);
  EXPECT_TRUE(std::isnan(RoundBf16(NAN)));
}

TEST(Fp16, EdgeValuesMatchTorch) {
  // reference-spec 1.4: 2^-25*0.99 -> 0, 2^-25*1.01 -> 2^-24, 1e5 -> inf before clipping.
  EXPECT_EQ(RoundFp16(0x1p-25f * 0.99f), 0.0f);
  EXPECT_EQ(RoundFp16(0x1p-25f * 1.01f), 0x1p-24f);
  EXPECT_EQ(RoundFp16(0x1p-25f), 0.0f);  // tie to even (0)
  EXPECT_EQ(RoundFp16(3 * 0x1p-25f), 0x1p-23f);  // tie 1.5 ulp -> 2 ulp
  EXPECT_EQ(RoundFp16(65504.0f), 65504.0f);
  EXPECT_TRUE(std::isinf(RoundFp16(1e5f)));
  EXPECT_EQ(RoundFp16(1.0f + 0x1p-11f), 1.0f);
  EXPECT_EQ(RoundFp16(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);
  EXPECT_EQ(RoundFp16(-0.1f), -0.0999755859375f);
}

TEST(Fp16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = FloatFromFp16(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(Fp16FromFloat(f), h) << std::hex << h;
  }
}

}  // namespace
}  // namespace owf
