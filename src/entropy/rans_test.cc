#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "owf/entropy/coder.h"
#include "test_symbols.h"

namespace owf {
namespace {

using testing::GaussianSymbols;
using testing::IdealBits;

std::vector<uint8_t> Encode(const std::vector<uint16_t>& symbols, int k, int streams = 32,
                            int prob_bits = 0, int threads = 0) {
  auto enc = EncodeRans(symbols, k, streams, prob_bits, threads);
  EXPECT_TRUE(enc.ok()) << enc.status().ToString();
  return enc.ok() ? *enc : std::vector<uint8_t>();
}

void ExpectRoundTrip(const std::vector<uint16_t>& symbols, int k, int streams = 32,
                     int prob_bits = 0) {
  const auto enc = Encode(symbols, k, streams, prob_bits);
  for (int threads : {1, 3}) {
    auto dec = DecodeRans(enc, threads);
    ASSERT_TRUE(dec.ok()) << dec.status().ToString();
    EXPECT_TRUE(*dec == symbols);
  }
  auto any = DecodeEntropy(enc);
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(*any == symbols);
}

TEST(Rans, EmptyInput) {
  ExpectRoundTrip({}, 1);
  ExpectRoundTrip({}, 65536);
  EXPECT_LT(Encode({}, 16).size(), 16u);
}

TEST(Rans, SingleSymbolRepeated) {
  ExpectRoundTrip({7}, 8);
  ExpectRoundTrip(std::vector<uint16_t>(100000, 3), 4);
  ExpectRoundTrip(std::vector<uint16_t>(100000, 0), 1, 5, 16);
  const std::vector<uint16_t> many(1 << 22, 9);
  const auto enc = Encode(many, 16);
  EXPECT_LE(enc.size(), many.size() / kMaxSymbolsPerByte + 32);
  auto dec = DecodeRans(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_TRUE(*dec == many);
}

TEST(Rans, AllSymbolsOnce) {
  for (int k : {1, 2, 3, 5, 255, 4096, 65535, 65536}) {
    std::vector<uint16_t> symbols(k);
    std::iota(symbols.begin(), symbols.end(), 0);
    std::shuffle(symbols.begin(), symbols.end(), std::mt19937_64(k));
    ExpectRoundTrip(symbols, k);
  }
  std::vector<uint16_t> symbols(65536);
  std::iota(symbols.begin(), symbols.end(), 0);
  EXPECT_FALSE(EncodeRans(symbols, 65536, 32, 15).ok());  // 2^15 slots < 65536 symbols
}

TEST(Rans, ShortInputsAndOddSliceLengths) {
  std::mt19937_64 rng(1);
  for (size_t n : {1, 2, 3, 4, 5, 7, 8, 9, 31, 4095, 4097, 8193, 100003}) {
    std::vector<uint16_t> symbols(n);
    for (auto& s : symbols) s = static_cast<uint16_t>(rng() % 10);
    for (int streams : {1, 2, 7, 32, 65536}) ExpectRoundTrip(symbols, 10, streams);
  }
}

TEST(Rans, VerySkewed) {
  std::mt19937_64 rng(2);
  std::vector<uint16_t> symbols(1000000, 5);
  for (int i = 0; i < 100; ++i) symbols[rng() % symbols.size()] = static_cast<uint16_t>(rng() % 64);
  ExpectRoundTrip(symbols, 64);
  ExpectRoundTrip(symbols, 64, 32, 16);
  ExpectRoundTrip(symbols, 64, 3, 7);
  // Far below one bit per symbol.
  EXPECT_LT(Encode(symbols, 64).size(), 5000u);
}

TEST(Rans, UniformOver4096) {
  std::mt19937_64 rng(3);
  std::vector<uint16_t> symbols(1 << 20);
  for (auto& s : symbols) s = static_cast<uint16_t>(rng() % 4096);
  ExpectRoundTrip(symbols, 4096);
  const auto enc = Encode(symbols, 4096);
  EXPECT_LT(8.0 * enc.size(), IdealBits(symbols, 4096) * 1.005);
}

TEST(Rans, RandomHistogramsAndPrecisions) {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 60; ++trial) {
    const int k = 1 + static_cast<int>(rng() % (trial < 30 ? 64 : 5000));
    std::vector<double> weights(k);
    for (auto& w : weights) w = (rng() % 3 == 0) ? 0.0 : std::pow(2.0, (rng() % 2400) / 100.0);
    weights[rng() % k] = 1;
    std::discrete_distribution<int> dist(weights.begin(), weights.end());
    std::vector<uint16_t> symbols(rng() % 50000);
    for (auto& s : symbols) s = static_cast<uint16_t>(dist(rng));
    const int present = static_cast<int>(std::set<uint16_t>(symbols.begin(), symbols.end()).size());
    int prob_bits = trial % 3 == 0 ? 0 : 1 + static_cast<int>(rng() % 16);
    while (prob_bits != 0 && (1 << prob_bits) < present) ++prob_bits;
    ExpectRoundTrip(symbols, k, 1 + static_cast<int>(rng() % 40), prob_bits);
  }
}

TEST(Rans, QuantisedFrequenciesAreValid) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint64_t> counts(1 + rng() % 3000);
    for (auto& c : counts) c = rng() % 2 ? 0 : (rng() % 5 == 0 ? rng() % 1000000 : rng() % 10);
    const int present =
        static_cast<int>(std::count_if(counts.begin(), counts.end(), [](uint64_t c) { return c; }));
    const int bits = 12 + static_cast<int>(rng() % 5);
    auto f = QuantiseFrequencies(counts, bits);
    ASSERT_EQ(f.ok(), present <= (1 << bits));
    if (!f.ok()) continue;
    uint64_t sum = 0;
    for (size_t s = 0; s < counts.size(); ++s) {
      EXPECT_EQ(counts[s] > 0, (*f)[s] > 0);
      sum += (*f)[s];
    }
    EXPECT_EQ(sum, present ? uint64_t{1} << bits : 0);
  }
}

TEST(Rans, CountSymbols) {
  std::mt19937_64 rng(10);
  std::vector<uint16_t> symbols((size_t{1} << 22) + 12345);
  std::vector<uint64_t> expected(300, 0);
  for (auto& s : symbols) {
    s = static_cast<uint16_t>(rng() % 300);
    ++expected[s];
  }
  for (int threads : {1, 2, 0}) {
    auto counts = CountSymbols(symbols, 300, threads);
    ASSERT_TRUE(counts.ok());
    EXPECT_EQ(*counts, expected);
  }
  symbols.back() = 300;
  EXPECT_EQ(CountSymbols(symbols, 300, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 300).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeHuffman(symbols, 300).status().code(), StatusCode::kInvalidArgument);
  const std::vector<uint16_t> few = {1, 2, 2, 299};
  std::vector<uint64_t> few_counts(300, 0);
  few_counts[1] = 1;
  few_counts[2] = 2;
  few_counts[299] = 1;
  EXPECT_EQ(*CountSymbols(few, 300), few_counts);
  EXPECT_FALSE(CountSymbols(std::vector<uint16_t>{300}, 300).ok());
}

TEST(Rans, OutputIndependentOfThreads) {
  const auto symbols = GaussianSymbols(300000, 64, 6);
  const auto a = Encode(symbols, 64, 32, 0, 1);
  const auto b = Encode(symbols, 64, 32, 0, 4);
  EXPECT_EQ(a, b);
  for (int threads : {0, 1, 2, 5, 32}) {
    auto dec = DecodeRans(a, threads);
    ASSERT_TRUE(dec.ok());
    EXPECT_TRUE(*dec == symbols);
  }
}

TEST(Rans, GaussianSizeWithinHalfAPercentOfEntropy) {
  for (int levels : {16, 35, 64}) {
    const auto symbols = GaussianSymbols(1 << 20, levels, levels);
    const double ideal = IdealBits(symbols, levels);
    for (int streams : {1, 32}) {
      const auto enc = Encode(symbols, levels, streams);
      const double actual = 8.0 * enc.size();
      EXPECT_LT(actual, ideal * 1.005) << levels << " levels, " << streams << " streams";
      EXPECT_GT(actual, ideal);
      auto info = InspectEntropyStream(enc);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->coder, EntropyCoder::kRans);
      EXPECT_EQ(info->num_symbols, static_cast<int64_t>(symbols.size()));
      EXPECT_EQ(info->alphabet_size, levels);
      EXPECT_EQ(info->streams, streams);
      EXPECT_EQ(info->header_bytes + info->payload_bytes + info->padding_bytes,
                static_cast<int64_t>(enc.size()));
      auto dec = DecodeRans(enc);
      ASSERT_TRUE(dec.ok());
      EXPECT_TRUE(*dec == symbols);
    }
  }
}

TEST(Rans, RejectsBadArguments) {
  const std::vector<uint16_t> symbols = {0, 1, 2, 8};
  EXPECT_EQ(EncodeRans(symbols, 8).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 9, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 9, 65537).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 9, 4, 17).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeRans(symbols, 9, 4, 1).status().code(), StatusCode::kInvalidArgument);
  ExpectRoundTrip(symbols, 9, 4, 2);
}

TEST(Rans, DetectsTruncationAndCorruption) {
  const auto symbols = GaussianSymbols(20000, 35, 7);
  const auto enc = Encode(symbols, 35, 4);
  for (size_t len = 0; len < enc.size(); ++len) {
    auto dec = DecodeRans(std::span<const uint8_t>(enc).first(len));
    EXPECT_FALSE(dec.ok()) << len;
    if (!dec.ok()) {
      EXPECT_EQ(dec.status().code(), StatusCode::kInvalidData);
    }
  }
  // Flipping a payload bit almost always breaks the final-state check.
  const int64_t header = InspectEntropyStream(enc)->header_bytes;
  std::mt19937_64 rng(8);
  int detected = 0;
  const int trials = 1000;
  for (int t = 0; t < trials; ++t) {
    auto bad = enc;
    bad[header + rng() % (bad.size() - header)] ^= static_cast<uint8_t>(1u << (rng() % 8));
    detected += !DecodeRans(bad).ok();
  }
  EXPECT_GE(detected, trials * 99 / 100);
  const std::vector<uint8_t> huge = {'O',  'W', 'F', 'E', 1, 2, 0x80, 0x80, 0x80, 0x80, 0x80,
                                     0x20, 2,   0,   12,  4, 1, 0x80, 0x40, 0,    16};
  EXPECT_EQ(DecodeRans(huge).status().code(), StatusCode::kInvalidData);
  EXPECT_FALSE(DecodeRans(*EncodeHuffman(symbols, 35)).ok());
}

// Random mutations of valid streams: decoding must fail cleanly or return at most n symbols.
TEST(Rans, FuzzMutations) {
  std::mt19937_64 rng(9);
  std::vector<std::vector<uint8_t>> seeds;
  seeds.push_back(Encode(GaussianSymbols(20000, 35, 1), 35, 4));
  seeds.push_back(Encode(GaussianSymbols(3000, 4096, 2), 4096, 1, 14));
  seeds.push_back(Encode(std::vector<uint16_t>(70000, 1), 3));
  seeds.push_back(Encode({}, 5));
  seeds.push_back(Encode(GaussianSymbols(9000, 16, 3), 16, 3, 5));
  int decoded = 0;
  for (int iter = 0; iter < 10000; ++iter) {
    std::vector<uint8_t> data = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !data.empty(); ++e) {
      const size_t at = rng() % data.size();
      switch (rng() % 5) {
        case 0:
          data[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          data[at] = static_cast<uint8_t>(rng());
          break;
        case 2:
          data.resize(at);
          break;
        case 3:
          data.insert(data.begin() + at, static_cast<uint8_t>(rng()));
          break;
        default:
          data[std::min<size_t>(at, 16)] = static_cast<uint8_t>(rng() | 0x80);
          break;
      }
    }
    auto dec = DecodeRans(data, 1 + static_cast<int>(iter % 3));
    if (!dec.ok()) {
      EXPECT_EQ(dec.status().code(), StatusCode::kInvalidData);
      EXPECT_FALSE(dec.status().message().empty());
      continue;
    }
    ++decoded;
    EXPECT_LE(dec->size(), static_cast<size_t>(kMaxSymbolsPerByte) * data.size());
  }
  EXPECT_LT(decoded, 10000);
}

}  // namespace
}  // namespace owf
