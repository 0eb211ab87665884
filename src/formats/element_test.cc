// Unit cases of reference-spec.md sections 1 and 12 for the scalar element formats.
#include "owf/formats/element.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace owf {
namespace {

TEST(FloatFormat, CentroidsAndRange) {
  const auto e2m1 = ElementFormat::Float(2, 1, Rounding::kNearest);
  const std::vector<float> expected = {-3, -2, -1.5, -1, -0.75, -0.5, -0.25, 0,
                                       0.25, 0.5, 0.75, 1, 1.5, 2, 3};
  EXPECT_EQ(e2m1.centroids(), expected);
  EXPECT_EQ(e2m1.hi(), 3.0f);
  EXPECT_EQ(ElementFormat::Float(3, 0, Rounding::kNearest).hi(), 8.0f);
  EXPECT_EQ(ElementFormat::Float(4, 3, Rounding::kNearest).hi(), 240.0f);  // not OCP's 448
  EXPECT_EQ(ElementFormat::Float(5, 2, Rounding::kNearest).hi(), 57344.0f);
  EXPECT_EQ(ElementFormat::Float(3, 2, Rounding::kNearest).hi(), 14.0f);
  EXPECT_EQ(ElementFormat::Float(2, 0, Rounding::kNearest).centroids(),
            (std::vector<float>{-2, -1, -0.5, 0, 0.5, 1, 2}));
  EXPECT_EQ(ElementFormat::Float(4, 3, Rounding::kNearest).centroids().size(), 255u);
}

TEST(FloatFormat, RoundingModesAtOnePointFive) {
  // reference-spec 1.1: x = [1.5-eps, 1.5, 1.5+eps].
  const float eps = 1e-4f;
  const float x[] = {1.5f - eps, 1.5f, 1.5f + eps};
  const auto rn = ElementFormat::Float(2, 1, Rounding::kNearest);
  const auto ri = ElementFormat::Float(2, 1, Rounding::kToInf);
  const auto rz = ElementFormat::Float(2, 1, Rounding::kToZero);
  const float want_rn[] = {1.5f, 1.5f, 1.5f}, want_ri[] = {1.5f, 1.5f, 2.0f}, want_rz[] = {1.0f, 1.5f, 1.5f};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rn.Quantise(x[i]), want_rn[i]);
    EXPECT_EQ(ri.Quantise(x[i]), want_ri[i]);
    EXPECT_EQ(rz.Quantise(x[i]), want_rz[i]);
  }
}

TEST(FloatFormat, NearestTiesGoTowardZero) {
  const auto rn = ElementFormat::Float(2, 1, Rounding::kNearest);
  const std::pair<float, float> cases[] = {{1.25f, 1.0f}, {1.75f, 1.5f}, {2.5f, 2.0f}, {0.125f, 0.0f},
                                           {0.375f, 0.25f}, {2.9f, 3.0f}, {100.0f, 3.0f}, {-1.25f, -1.0f},
                                           {-2.5f, -2.0f}, {-100.0f, -3.0f}};
  for (auto [x, q] : cases) EXPECT_EQ(rn.Quantise(x), q) << x;
  const auto ri = ElementFormat::Float(2, 1, Rounding::kToInf);
  EXPECT_EQ(ri.Quantise(1.25f), 1.5f);
  EXPECT_EQ(ri.Quantise(0.125f), 0.25f);
  EXPECT_EQ(ElementFormat::Float(2, 1, Rounding::kToZero).Quantise(2.9f), 2.0f);
}

TEST(FloatFormat, OutputsAreCentroidsAndNearest) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (auto [e, m] : {std::pair{2, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 2}, {2, 0}}) {
    const auto f = ElementFormat::Float(e, m, Rounding::kNearest);
    const auto& c = f.centroids();
    for (int i = 0; i < 2000; ++i) {
      const float x = nd(rng) * (e >= 4 ? 30.0f : 1.0f);
      const float q = f.Quantise(x);
      ASSERT_TRUE(std::binary_search(c.begin(), c.end(), q)) << x;
      const float best = *std::min_element(c.begin(), c.end(), [&](float a, float b) {
        return std::fabs(a - x) < std::fabs(b - x);
      });
      ASSERT_EQ(std::fabs(q - x), std::fabs(best - x)) << "e" << e << "m" << m << " x=" << x;
      ASSERT_EQ(c[f.Code(x)], q);
    }
  }
}

TEST(IntFormat, RangesAndCentroids) {
  EXPECT_EQ(ElementFormat::Int(3, false).lo(), -4.0f);
  EXPECT_EQ(ElementFormat::Int(3, false).hi(), 3.0f);
  EXPECT_EQ(ElementFormat::Int(3, true).lo(), -3.5f);
  EXPECT_EQ(ElementFormat::Int(3, true).hi(), 3.5f);
  const auto five = ElementFormat::Int(std::log2(5.0), false);  // fractional: 5 levels
  EXPECT_EQ(five.centroids(), (std::vector<float>{-2, -1, 0, 1, 2}));
  const auto nine = ElementFormat::Int(std::log2(9.0), false);
  EXPECT_EQ(nine.lo(), -4.0f);
  EXPECT_EQ(nine.hi(), 4.0f);
  EXPECT_NEAR(nine.bits(), std::log2(9.0), 1e-12);
}

TEST(IntFormat, RoundsHalfToEvenThenClips) {
  const auto i3 = ElementFormat::Int(3, false);
  EXPECT_EQ(i3.Quantise(2.5f), 2.0f);
  EXPECT_EQ(i3.Quantise(-3.5f), -4.0f);
  EXPECT_EQ(i3.Quantise(0.5f), 0.0f);
  EXPECT_EQ(i3.Quantise(1.5f), 2.0f);
  EXPECT_EQ(i3.Quantise(9.0f), 3.0f);
  EXPECT_EQ(i3.Quantise(-9.0f), -4.0f);
  const auto s3 = ElementFormat::Int(3, true);  // half-integer grid
  EXPECT_EQ(s3.Quantise(0.1f), 0.5f);
  EXPECT_EQ(s3.Quantise(-0.1f), -0.5f);
  EXPECT_EQ(s3.Quantise(0.0f), -0.5f);  // round(0 + 0.5) = 0 (half to even), minus 0.5
}

TEST(LutFormat, MidpointTiesGoToTheLowerValue) {
  // reference-spec 12: LUT (-1,-.125,.125,1): [0.8,0.6,-0.001,-1.2] -> [1,1,-0.125,-1].
  const auto lut = ElementFormat::Lut({-1.0f, -0.125f, 0.125f, 1.0f}, 2);
  EXPECT_EQ(lut.Quantise(0.8f), 1.0f);
  EXPECT_EQ(lut.Quantise(0.6f), 1.0f);
  EXPECT_EQ(lut.Quantise(-0.001f), -0.125f);
  EXPECT_EQ(lut.Quantise(-1.2f), -1.0f);
  EXPECT_EQ(lut.Quantise(0.0f), -0.125f);    // exactly on the midpoint: lower
  EXPECT_EQ(lut.Quantise(0.5625f), 0.125f);  // exactly on the midpoint: lower
  EXPECT_EQ(lut.Code(0.5625f), 2);
}

TEST(ElementFormat, FastPathMatchesScalarPath) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> x(4099);
  for (float& v : x) v = nd(rng);
  const ElementFormat formats[] = {
      ElementFormat::Lut(Nf4Table(), 4), ElementFormat::Int(4, false), ElementFormat::Int(4, true),
      ElementFormat::Float(2, 1, Rounding::kNearest), ElementFormat::Float(3, 2, Rounding::kToInf),
      ElementFormat::Int(4, false).WithScale(0.841f), ElementFormat::Cast(ElementFamily::kBf16)};
  for (const auto& f : formats) {
    for (float scale : {0.0123f, 0.0f, 1.0f}) {
      std::vector<float> out(x.size());
      std::vector<uint16_t> codes(x.size());
      f.QuantiseScaled(x, scale, out.data(), codes.data());
      for (size_t i = 0; i < x.size(); ++i) {
        const float y = scale != 0.0f ? x[i] / scale : x[i];
        ASSERT_EQ(out[i], f.Quantise(y) * scale);
        if (f.has_codes()) {
          ASSERT_EQ(codes[i], f.Code(y));
        }
      }
    }
  }
}

}  // namespace
}  // namespace owf
