// Tensor-level behaviour: block scaling (reference-spec.md 3.1), outliers (3.3), bit counts,
// partial blocks, fitting, determinism and bad input.
#include "owf/formats/quantise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "../formats/fit.h"
#include "owf/core/numeric.h"
#include "owf/entropy/coder.h"
#include "owf/formats/rotation.h"

namespace owf {
namespace {

Tensor MakeTensor(std::vector<int64_t> shape, std::vector<float> data) {
  Tensor t;
  t.shape = std::move(shape);
  t.data.assign(data.begin(), data.end());
  return t;
}

Tensor RandomTensor(int64_t rows, int64_t cols, uint32_t seed, float scale = 0.02f, bool heavy = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::student_t_distribution<float> td(4.0f);
  Tensor t;
  t.shape = {rows, cols};
  t.data.resize(static_cast<size_t>(rows * cols));
  for (float& v : t.data) v = scale * (heavy ? td(rng) : nd(rng));
  return t;
}

QuantisedTensor Q(const std::string& spec, const Tensor& x, int threads = 0) {
  auto s = ParseSpec(spec);
  EXPECT_TRUE(s.ok()) << s.status().message();
  auto q = QuantiseTensor(*s, x, QuantiseOptions{threads, nullptr});
  EXPECT_TRUE(q.ok()) << spec << ": " << q.status().message();
  return std::move(q).value();
}

TEST(BlockScaling, AbsmaxExampleFromTheReference) {
  // Int(2) asymmetric, fp32 scale, blocks of 3: [100,-60,40,-40,10,21] -> [100,-100,0,-40,0,40].
  auto q = Q("int2@3:absmax:fp32", MakeTensor({6}, {100, -60, 40, -40, 10, 21}));
  EXPECT_EQ(q.values.data, (std::vector<float>{100, -100, 0, -40, 0, 40}));
  EXPECT_EQ(q.scales, (std::vector<float>{100, 40}));
  // count_bits((12,)) = 24 + 4 * 32.
  auto q12 = Q("int2@3:absmax:fp32", RandomTensor(1, 12, 1));
  EXPECT_EQ(q12.total_bits(), 24 + 4 * 32);
}

TEST(BlockScaling, SignmaxFlipsTheBlockOntoTheLongSide) {
  // reference: signmax, block 2: [-20,9,40,-15] -> [-20,10,40,-20] (scale of block 2 negative).
  auto q = Q("int2@2:signmax:fp32", MakeTensor({4}, {-20, 9, 40, -15}));
  EXPECT_EQ(q.values.data, (std::vector<float>{-20, 10, 40, -20}));
  EXPECT_EQ(q.scales, (std::vector<float>{10, -20}));
}

TEST(BlockScaling, ZeroBlocksStayZero) {
  Tensor x = RandomTensor(4, 64, 3);
  for (int c = 0; c < 64; ++c) x.data[64 + c] = 0.0f;
  for (const char* spec : {"nf4@32:absmax:bf16", "int4@channel:rms:fp16", "crd4(normal,mode=asym)@16:signmax:bf16",
                           "e2m1@32:absmax:e8m0"}) {
    auto q = Q(spec, x);
    for (int c = 0; c < 64; ++c) ASSERT_EQ(q.values.data[64 + c], 0.0f) << spec;
    for (float v : q.values.data) ASSERT_TRUE(std::isfinite(v)) << spec;
  }
}

TEST(BlockScaling, PartialLastBlock) {
  // FFN width 172 = 64 + 64 + 44 (stories260K): the last block has 44 elements.
  Tensor x = RandomTensor(5, 172, 4);
  auto q = Q("int4@64:absmax:bf16", x);
  ASSERT_EQ(q.scales.size(), 15u);
  for (int r = 0; r < 5; ++r) {
    for (int b = 0; b < 3; ++b) {
      float amax = 0;
      for (int c = b * 64; c < std::min(172, b * 64 + 64); ++c) amax = std::max(amax, std::fabs(x.data[r * 172 + c]));
      EXPECT_EQ(q.scales[r * 3 + b], RoundBf16(amax / 7.0f));
    }
  }
  EXPECT_EQ(q.total_bits(), 4.0 * 5 * 172 + 15 * 16);
  // 2-D tiles with partial tiles in both directions.
  auto t = Q("int4@2x64:absmax:fp32", x);
  EXPECT_EQ(t.scales.size(), 3u * 3u);
  float amax = 0;
  for (int c = 128; c < 172; ++c) amax = std::max(amax, std::fabs(x.data[4 * 172 + c]));
  EXPECT_EQ(t.scales.back(), amax / 7.0f);
}

TEST(BlockScaling, ScaleFormats) {
  EXPECT_EQ(QuantiseScale(0.3f, ScaleFormat::kE8m0), 0.5f);   // rounds up to a power of two
  EXPECT_EQ(QuantiseScale(0.25f, ScaleFormat::kE8m0), 0.25f);
  EXPECT_EQ(QuantiseScale(1e-3f, ScaleFormat::kE8m0), 0x1p-9f);
  EXPECT_EQ(QuantiseScale(1000.0f, ScaleFormat::kE4m3), 240.0f);
  EXPECT_EQ(QuantiseScale(1.0f + 0x1p-9f, ScaleFormat::kBf16), 1.0f);
  EXPECT_EQ(QuantiseScale(1e6f, ScaleFormat::kFp16), 65504.0f);
}

TEST(Outliers, ExampleFromTheReference) {
  // [[1,2,-1,-1000],[0,0,0,900]], E2M1 + fp32 outliers at 1/4: exact; bits = 8*4 + 2*(32+32).
  auto q = Q("e2m1+outliers(0.25,fp32)", MakeTensor({2, 4}, {1, 2, -1, -1000, 0, 0, 0, 900}));
  EXPECT_EQ(q.values.data, (std::vector<float>{1, 2, -1, -1000, 0, 0, 0, 900}));
  EXPECT_EQ(q.total_bits(), 8 * 4 + 2 * (32 + 32));
  EXPECT_EQ(q.outlier_indices, (std::vector<int64_t>{3, 7}));
}

TEST(Outliers, CountedAsTheReferenceCounts) {
  // k = floor(0.001 * 262144) = 262 outliers at 16 + 32 bits: the golden 4.0635986328125.
  auto q = Q("e2m1@channel:absmax:bf16+outliers(0.001,bf16)", RandomTensor(256, 1024, 5));
  EXPECT_EQ(q.outlier_indices.size(), 262u);
  EXPECT_DOUBLE_EQ(q.bits_per_element(), 4.0635986328125);
}

TEST(Quantise, FixedBitCounts) {
  Tensor x = RandomTensor(256, 1024, 6);
  EXPECT_DOUBLE_EQ(Q("crd4(normal)@channel:rms:bf16", x).bits_per_element(), 4.015625);
  EXPECT_DOUBLE_EQ(Q("crd4(t,df=5)@tensor:rms:bf16", x).bits_per_element(), 4.00006103515625);
  EXPECT_DOUBLE_EQ(Q("e2m1@32:absmax:e8m0", x).bits_per_element(), 4.25);
  EXPECT_DOUBLE_EQ(Q("int2.3219280948873622", x).bits_per_element(),
                   std::ceil(std::log2(5.0) * 262144) / 262144);
}

TEST(Quantise, OutputsAreScaledCentroids) {
  Tensor x = RandomTensor(8, 256, 7, 0.02f, true);
  auto q = Q("crd4(t,df=7)@64:absmax:bf16", x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float s = q.scales[i / 64];
    ASSERT_EQ(q.values.data[i], q.element.centroids()[q.codes[i]] * s);
  }
}

TEST(Quantise, IdenticalForAnyThreadCount) {
  Tensor x = RandomTensor(300, 1000, 8, 0.02f, true);
  for (const char* spec : {"crd4(t,df=7)@64:absmax:bf16", "crd4(t)@64:absmax:bf16+search",
                           "lloyd3@tensor:rms:bf16", "grid(3)@channel:absmax:bf16+entropy(ideal)",
                           "e2m1@32:absmax:e8m0+outliers(0.01,bf16)", "int4@2x64:signmax:fp16"}) {
    auto a = Q(spec, x, 1), b = Q(spec, x, 2), c = Q(spec, x, 5);
    EXPECT_EQ(a.values.data, b.values.data) << spec;
    EXPECT_EQ(a.values.data, c.values.data) << spec;
    EXPECT_EQ(a.codes, c.codes) << spec;
    EXPECT_EQ(a.scales, c.scales) << spec;
    EXPECT_EQ(a.total_bits(), c.total_bits()) << spec;
    EXPECT_EQ(a.error.sum_err2, c.error.sum_err2) << spec;
  }
}

TEST(Fitting, SearchIsNeverWorseThanNoSearch) {
  Tensor x = RandomTensor(128, 512, 9, 0.02f, true);
  for (const char* base : {"int4@64:absmax:bf16", "crd4(normal)@64:absmax:bf16", "e2m1@32:absmax:e8m0",
                           "int3@tensor:rms:bf16", "nf4@channel:absmax:bf16"}) {
    const double plain = ComputeMetrics(Q(base, x).error, 4).rmse_norm;
    const double searched = ComputeMetrics(Q(std::string(base) + "+search", x).error, 4).rmse_norm;
    EXPECT_LE(searched, plain * (1 + 1e-9)) << base;
  }
}

TEST(Fitting, LloydBeatsFixedCodebooksAtEqualBits) {
  Tensor x = RandomTensor(128, 512, 10, 0.02f, true);
  const double lloyd = ComputeMetrics(Q("lloyd4@tensor:rms:bf16", x).error, 4).rmse_norm;
  const double crd = ComputeMetrics(Q("crd4(t,df=4)@tensor:rms:bf16", x).error, 4).rmse_norm;
  EXPECT_LT(lloyd, crd);
}

TEST(Fitting, ExactLloydMatchesBruteForceKMeansFixedPoint) {
  // On a small sample, a Lloyd fixed point: each centroid is the mean of its cell.
  std::vector<float> y = {-3, -2.5, -1, -0.2, 0.1, 0.3, 2, 2.2, 5};
  SortedSample s(y, std::vector<float>(y.size(), 1.0f));
  auto c = s.Lloyd({-3, 0, 3});
  // From {-3, 0, 3}: cells {-3, -2.5}, {-1, -0.2, 0.1, 0.3}, {2, 2.2, 5}, stable after one step.
  EXPECT_NEAR(c[0], (-3 - 2.5) / 2.0, 1e-6);
  EXPECT_NEAR(c[1], (-1 - 0.2 + 0.1 + 0.3) / 4.0, 1e-6);
  EXPECT_NEAR(c[2], (2 + 2.2 + 5) / 3.0, 1e-6);
  double brute = 0;
  for (float v : y) {
    double best = INFINITY;
    for (float ci : c) best = std::min(best, double(v - ci) * (v - ci));
    brute += best;
  }
  EXPECT_NEAR(s.Error(c), brute, 1e-6 * brute);
}

TEST(Fitting, KMeansPlusPlusSeedsDistinctSortedCentroids) {
  std::vector<float> y;
  for (int i = 0; i < 1000; ++i) y.push_back(static_cast<float>(i % 10));  // 10 distinct values
  SortedSample s(y, std::vector<float>(y.size(), 1.0f));
  auto c = KMeansPlusPlus(s, 10);
  ASSERT_EQ(c.size(), 10u);
  EXPECT_TRUE(std::is_sorted(c.begin(), c.end()));
  EXPECT_EQ(std::set<float>(c.begin(), c.end()).size(), 10u);  // D^2 sampling never repeats a point
  EXPECT_EQ(KMeansPlusPlus(s, 10), c);                            // deterministic
  EXPECT_EQ(KMeansPlusPlus(s, 16).size(), 16u);                   // more levels than values: padded
}

TEST(Fitting, ImportanceWeightsSteerTheCodebook) {
  // Heavy weight on a few large values: a weighted Lloyd codebook fits them better.
  Tensor x = RandomTensor(64, 256, 15, 0.02f, true);
  std::vector<float> w(x.data.size(), 1.0f);
  for (size_t i = 0; i < w.size(); ++i)
    if (std::fabs(x.data[i]) > 0.05f) w[i] = 1000.0f;
  auto plain = QuantiseTensor(*ParseSpec("lloyd3@tensor:rms"), x);
  auto weighted = QuantiseTensor(*ParseSpec("lloyd3@tensor:rms"), x, QuantiseOptions{0, &w});
  ASSERT_TRUE(plain.ok() && weighted.ok());
  auto werr = [&](const QuantisedTensor& q) {
    double e = 0;
    for (size_t i = 0; i < w.size(); ++i) e += w[i] * std::pow(double(q.values.data[i]) - x.data[i], 2);
    return e;
  };
  EXPECT_LT(werr(*weighted), 0.8 * werr(*plain));
  std::vector<float> bad(x.data.size(), 1.0f);
  bad[3] = -1.0f;
  EXPECT_FALSE(QuantiseTensor(*ParseSpec("lloyd3@tensor:rms"), x, QuantiseOptions{0, &bad}).ok());
}

TEST(Fitting, IdealCodeLengthIsTheSmoothedEmpiricalEntropy) {
  // Counts (2, 0, 6): p = (3/11, 1/11, 7/11); bits = -2 log2(3/11) - 6 log2(7/11).
  const std::vector<int64_t> counts = {2, 0, 6};
  EXPECT_NEAR(IdealCodeBits(counts), -2 * std::log2(3.0 / 11) - 6 * std::log2(7.0 / 11), 1e-12);
}

TEST(Fitting, GridHitsTheBitBudget) {
  Tensor x = RandomTensor(256, 1024, 11);
  for (double b : {2.5, 3.0, 4.0, 5.25}) {
    auto q = Q("grid(" + FormatNumber(b) + ")@tensor:absmax:bf16+entropy(ideal)", x);
    EXPECT_NEAR(q.bits_per_element(), b, 0.01) << b;
    // Entropy-coded uniform: R * 2^b near 1.19-1.21 for Gaussian data (reference-spec 11.2).
    const double eff = ComputeMetrics(q.error, q.bits_per_element()).efficiency;
    EXPECT_GT(eff, 1.1);
    EXPECT_LT(eff, 1.3);
  }
}

TEST(Rotation, InverseRestoresTheRowAndIsOrthogonal) {
  for (int64_t cols : {1, 64, 172, 4096, 11008}) {
    Tensor x = RandomTensor(3, cols, 16);
    Tensor y = x;
    HadamardRotate(y, 9, false, 2);
    double nx = 0, ny = 0;
    for (size_t i = 0; i < x.data.size(); ++i) nx += double(x.data[i]) * x.data[i], ny += double(y.data[i]) * y.data[i];
    EXPECT_NEAR(ny, nx, 1e-5 * nx) << cols;  // norm preserved
    HadamardRotate(y, 9, true, 1);
    for (size_t i = 0; i < x.data.size(); ++i) ASSERT_NEAR(y.data[i], x.data[i], 1e-6) << cols;
  }
}

TEST(Rotation, HelpsHeavyTailedDataAtFixedLength) {
  // reference-spec 3.2: a rotation lowers the error of a fixed-length format on heavy-tailed data.
  Tensor x = RandomTensor(256, 1024, 17, 0.02f, true);  // Student-t(4)
  for (const char* spec : {"e2m1@channel:absmax:bf16", "int4@channel:absmax:bf16"}) {
    const double plain = ComputeMetrics(Q(spec, x).error, 4).rmse_norm;
    auto q = Q(std::string(spec) + "+rotate(hadamard,3)", x);
    const double rotated = ComputeMetrics(q.error, 4).rmse_norm;
    EXPECT_LT(rotated, 0.9 * plain) << spec;
    EXPECT_EQ(q.total_bits(), Q(spec, x).total_bits());  // the rotation costs no bits
  }
}

TEST(Entropy, RealCodersHitTheBudgetAndStayNearIdeal) {
  Tensor x = RandomTensor(1024, 1024, 18);  // 1M elements
  for (double b : {3.0, 4.5}) {
    auto q = Q("grid(" + FormatNumber(b) + ")@tensor:absmax:bf16+entropy(rans)", x);
    EXPECT_NEAR(q.bits_per_element(), b, 0.02) << b;
    EXPECT_LE(q.element_bits, q.ideal_element_bits * 1.005) << b;  // rANS within 0.5% of ideal
    EXPECT_EQ(q.element_bits, 8.0 * q.entropy_stream.size());
    auto h = Q("grid(" + FormatNumber(b) + ")@tensor:absmax:bf16+entropy(huffman)", x);
    EXPECT_NEAR(h.bits_per_element(), b, 0.02) << b;
  }
}

TEST(Entropy, ComposesWithOtherFormatsWithoutChangingValues) {
  Tensor x = RandomTensor(256, 512, 19, 0.02f, true);
  for (const char* base : {"crd4(t,df=5)@64:absmax:bf16", "lloyd5@tensor:rms:bf16", "e2m1@32:absmax:e8m0"}) {
    auto plain = Q(base, x);
    auto coded = Q(std::string(base) + "+entropy(rans)", x);
    EXPECT_EQ(plain.values.data, std::vector<float>(coded.values.data.begin(), coded.values.data.end())) << base;
    EXPECT_LT(coded.bits_per_element(), plain.bits_per_element()) << base;  // variable length wins
    auto decoded = DecodeEntropy(coded.entropy_stream);
    ASSERT_TRUE(decoded.ok());
    EXPECT_TRUE(std::equal(decoded->begin(), decoded->end(), coded.codes.begin())) << base;
  }
}

TEST(BadInput, NanAndInfAreRejectedWithTheirPosition) {
  Tensor x = RandomTensor(4, 8, 12);
  x.data[19] = NAN;
  auto q = QuantiseTensor(*ParseSpec("nf4@8:absmax"), x);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidData);
  EXPECT_NE(q.status().message().find("flat index 19 (row 2, column 3) is NaN"), std::string::npos)
      << q.status().message();
  x.data[19] = INFINITY;
  EXPECT_NE(QuantiseTensor(*ParseSpec("nf4"), x).status().message().find("infinite"), std::string::npos);
}

TEST(BadInput, BlocksLargerThanTheTensor) {
  Tensor x = RandomTensor(4, 32, 13);
  auto q = QuantiseTensor(*ParseSpec("nf4@64:absmax"), x);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("larger than the tensor's last dimension (32)"), std::string::npos);
  EXPECT_FALSE(QuantiseTensor(*ParseSpec("nf4@8x8:absmax"), x).ok());
  Tensor empty;
  empty.shape = {0, 4};
  EXPECT_FALSE(QuantiseTensor(*ParseSpec("nf4"), empty).ok());
}

TEST(BadInput, ImpossibleDesignsAreErrorsNotCrashes) {
  Tensor x = RandomTensor(4, 64, 14);
  // symmetric + signmax has no probability grid in the reference.
  auto q = QuantiseTensor(*ParseSpec("crd4(normal)@64:signmax"), x);
  EXPECT_FALSE(q.ok());
}

}  // namespace
}  // namespace owf
