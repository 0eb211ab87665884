#include "owf/formats/packing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "owf/formats/quantise.h"

namespace owf {
namespace {

TEST(CodePacking, PowerOfTwoLevelsPackPlainly) {
  for (int b = 1; b <= 16; ++b) {
    const CodePacking p = ChoosePacking(int64_t{1} << b);
    EXPECT_EQ(p.group, 1) << b;
    EXPECT_EQ(p.group_bits, b);
  }
  // 4-bit codes: two per byte, first code in the low nibble.
  const std::vector<uint16_t> codes = {1, 2, 15, 0, 7};
  auto bytes = PackCodes(codes, ChoosePacking(16));
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), (std::vector<uint8_t>{0x21, 0x0F, 0x07}));
}

TEST(CodePacking, FractionalLevelCountsShareBits) {
  const CodePacking five = ChoosePacking(5);
  EXPECT_LE(five.bits_per_code(), std::log2(5.0) * 1.01);  // within 1% of the entropy of 5 levels
  const CodePacking three = ChoosePacking(3);
  EXPECT_LE(three.bits_per_code(), std::log2(3.0) * 1.01);
  // 3 codes of 5 levels: 1 + 2*5 + 4*25 = 111 in 7 bits.
  const CodePacking p{5, 3, 7};
  auto bytes = PackCodes(std::vector<uint16_t>{1, 2, 4}, p);
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin(), bytes.end()), (std::vector<uint8_t>{111}));
}

TEST(CodePacking, RoundTripsAnyLevelCount) {
  std::mt19937 rng(3);
  for (int64_t levels : {2, 3, 5, 7, 15, 16, 17, 35, 255, 256, 1000, 65535, 65536}) {
    const CodePacking p = ChoosePacking(levels);
    for (int64_t count : {0, 1, 7, 1000, 4097}) {
      std::vector<uint16_t> codes(static_cast<size_t>(count));
      for (auto& c : codes) c = static_cast<uint16_t>(rng() % levels);
      auto bytes = PackCodes(codes, p);
      ASSERT_EQ(static_cast<int64_t>(bytes.size()), p.PackedBytes(count));
      auto back = UnpackCodes(bytes, count, p);
      ASSERT_TRUE(back.ok()) << back.status().message();
      ASSERT_TRUE(std::equal(codes.begin(), codes.end(), back->begin())) << levels << " x " << count;
    }
  }
}

TEST(CodePacking, HostileBuffersAreRejected) {
  const CodePacking p = ChoosePacking(5);
  auto bytes = PackCodes(std::vector<uint16_t>(30, 4), p);
  EXPECT_FALSE(UnpackCodes(std::span(bytes.data(), bytes.size() - 1), 30, p).ok());
  EXPECT_FALSE(UnpackCodes(bytes, 31, p).ok());
  std::vector<uint8_t> ones(bytes.size(), 0xFF);  // groups of value 127 > 5^3 - 1
  auto r = UnpackCodes(ones, 30, p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("out of range"), std::string::npos);
  EXPECT_FALSE(UnpackCodes(bytes, 30, CodePacking{0, 1, 0}).ok());
}

TEST(Scales, RoundTripEveryStorageFormat) {
  std::mt19937 rng(4);
  std::lognormal_distribution<float> ld(-4.0f, 2.0f);
  for (ScaleFormat f : {ScaleFormat::kBf16, ScaleFormat::kFp16, ScaleFormat::kFp32, ScaleFormat::kE8m0,
                        ScaleFormat::kE4m3}) {
    std::vector<float> scales;
    for (int i = 0; i < 1000; ++i) {
      float s = ld(rng) * (f != ScaleFormat::kE8m0 && i % 3 == 0 ? -1.0f : 1.0f);
      scales.push_back(QuantiseScale(s, f));
    }
    scales.push_back(QuantiseScale(0.0f, f));
    auto bytes = EncodeScales(scales, f);
    EXPECT_EQ(bytes.size(), scales.size() * ScaleFormatBits(f) / 8);
    auto back = DecodeScales(bytes, f, static_cast<int64_t>(scales.size()));
    ASSERT_TRUE(back.ok());
    for (size_t i = 0; i < scales.size(); ++i) ASSERT_EQ((*back)[i], scales[i]) << ScaleFormatName(f) << " " << i;
  }
  EXPECT_FALSE(DecodeScales(std::vector<uint8_t>(3), ScaleFormat::kBf16, 2).ok());
}

TEST(Dequantise, StoredPiecesRebuildTheQuantisedTensorExactly) {
  std::mt19937 rng(5);
  std::student_t_distribution<float> td(4.0f);
  Tensor x;
  x.shape = {37, 172};
  for (int i = 0; i < 37 * 172; ++i) x.data.push_back(0.02f * td(rng));
  for (const char* text : {"crd4(t,df=7)@64:absmax:bf16", "int4@64:absmax:bf16+search", "e2m1@32:absmax:e8m0",
                           "e2m1(ri)@32:absmax:e4m3+search", "nf4@2x64:signmax:fp16", "int2.3219@channel:rms:bf16",
                           "lloyd3@tensor:rms:bf16+outliers(0.01,bf16)", "crd4(t)@64:absmax:bf16+search",
                           "grid(3)@tensor:absmax:bf16+entropy(ideal)", "crd3(normal,mode=asym)@16:signmax:bf16",
                           "int4(sym)"}) {
    auto q = QuantiseTensor(*ParseSpec(text), x);
    ASSERT_TRUE(q.ok()) << text << q.status().message();
    const CodePacking p = ChoosePacking(static_cast<int64_t>(q->element.centroids().size()));
    auto codes = UnpackCodes(PackCodes(q->codes, p), x.numel(), p);
    ASSERT_TRUE(codes.ok());
    std::vector<float> scales = q->scales;
    if (q->spec.scaling) scales = *DecodeScales(EncodeScales(q->scales, q->spec.scaling->format), q->spec.scaling->format,
                                                static_cast<int64_t>(q->scales.size()));
    std::vector<float> out(x.data.size());
    ASSERT_TRUE(DequantiseInto(q->element.centroids(), q->geometry, scales, *codes, q->outlier_indices,
                               q->outlier_values, out).ok());
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], q->values.data[i]) << text << " at " << i;
  }
}

}  // namespace
}  // namespace owf
