#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <queue>
#include <random>
#include <vector>

#include "owf/entropy/coder.h"
#include "test_symbols.h"

namespace owf {
namespace {

using testing::GaussianSymbols;
using testing::IdealBits;

void ExpectRoundTrip(const std::vector<uint16_t>& symbols, int k, int max_len = 15) {
  auto enc = EncodeHuffman(symbols, k, max_len);
  ASSERT_TRUE(enc.ok()) << enc.status().ToString();
  auto dec = DecodeHuffman(*enc);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_TRUE(*dec == symbols);
  auto any = DecodeEntropy(*enc);
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(*any == symbols);
}

uint64_t CodeCost(std::span<const uint64_t> counts, std::span<const uint8_t> lengths) {
  uint64_t bits = 0;
  for (size_t s = 0; s < counts.size(); ++s) bits += counts[s] * lengths[s];
  return bits;
}

// Unlimited Huffman cost: sum of the merged weights.
uint64_t HuffmanCost(const std::vector<uint64_t>& counts) {
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> q;
  for (uint64_t c : counts) {
    if (c) q.push(c);
  }
  uint64_t cost = 0;
  while (q.size() > 1) {
    const uint64_t a = q.top();
    q.pop();
    const uint64_t b = q.top();
    q.pop();
    cost += a + b;
    q.push(a + b);
  }
  return cost;
}

void ExpectCompleteWithin(std::span<const uint8_t> lengths, int limit) {
  double kraft = 0;
  int present = 0;
  for (uint8_t len : lengths) {
    if (len == 0) continue;
    ++present;
    EXPECT_LE(len, limit);
    kraft += std::ldexp(1.0, -len);
  }
  if (present >= 2) {
    EXPECT_DOUBLE_EQ(kraft, 1.0);
  }
}

TEST(Huffman, EmptyInput) {
  ExpectRoundTrip({}, 1);
  ExpectRoundTrip({}, 4096);
  auto enc = EncodeHuffman({}, 16);
  ASSERT_TRUE(enc.ok());
  EXPECT_LT(enc->size(), 16u);
}

TEST(Huffman, SingleSymbolRepeated) {
  ExpectRoundTrip({7}, 8);
  ExpectRoundTrip(std::vector<uint16_t>(100000, 3), 4);
  ExpectRoundTrip(std::vector<uint16_t>(5, 0), 1);
  // Costs nothing per symbol beyond the padding that bounds decoder allocations.
  const std::vector<uint16_t> many(1 << 22, 9);
  auto enc = EncodeHuffman(many, 16);
  ASSERT_TRUE(enc.ok());
  EXPECT_LE(enc->size(), many.size() / kMaxSymbolsPerByte + 32);
  EXPECT_GE(static_cast<int64_t>(enc->size()) * kMaxSymbolsPerByte,
            static_cast<int64_t>(many.size()));
  auto dec = DecodeHuffman(*enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_TRUE(*dec == many);
}

TEST(Huffman, AllSymbolsOnce) {
  for (int k : {1, 2, 3, 5, 255, 4096, 65536}) {
    std::vector<uint16_t> symbols(k);
    std::iota(symbols.begin(), symbols.end(), 0);
    std::shuffle(symbols.begin(), symbols.end(), std::mt19937_64(k));
    ExpectRoundTrip(symbols, k);
  }
}

TEST(Huffman, UniformOver4096IsTwelveBitsPerSymbol) {
  std::mt19937_64 rng(1);
  std::vector<uint16_t> symbols(1 << 20);
  for (auto& s : symbols) s = static_cast<uint16_t>(rng() % 4096);
  ExpectRoundTrip(symbols, 4096);
  auto info = InspectEntropyStream(*EncodeHuffman(symbols, 4096));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->max_code_length, 12);
  EXPECT_EQ(info->payload_bytes, static_cast<int64_t>(symbols.size()) * 12 / 8);
  EXPECT_LT(info->header_bytes, 32);
}

TEST(Huffman, VerySkewed) {
  std::mt19937_64 rng(2);
  std::vector<uint16_t> symbols(1000000, 5);
  for (int i = 0; i < 100; ++i) symbols[rng() % symbols.size()] = static_cast<uint16_t>(rng() % 64);
  ExpectRoundTrip(symbols, 64);
  ExpectRoundTrip(symbols, 64, 2);
}

TEST(Huffman, RandomHistograms) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    const int k = 1 + static_cast<int>(rng() % (trial < 20 ? 64 : 5000));
    std::vector<double> weights(k);
    for (auto& w : weights) w = (rng() % 3 == 0) ? 0.0 : std::pow(2.0, (rng() % 2000) / 100.0);
    weights[rng() % k] = 1;
    std::discrete_distribution<int> dist(weights.begin(), weights.end());
    std::vector<uint16_t> symbols(rng() % 20000);
    for (auto& s : symbols) s = static_cast<uint16_t>(dist(rng));
    const int limit = 12 + static_cast<int>(rng() % 13);
    ExpectRoundTrip(symbols, k, limit);
  }
}

TEST(Huffman, LengthLimitHoldsForFibonacciCounts) {
  std::vector<uint64_t> counts(40);
  counts[0] = counts[1] = 1;
  for (size_t i = 2; i < counts.size(); ++i) counts[i] = counts[i - 1] + counts[i - 2];
  // Unlimited Huffman would use codes of 39 bits.
  for (int limit : {6, 8, 11, 15, 24}) {
    auto lengths = HuffmanCodeLengths(counts, limit);
    ASSERT_TRUE(lengths.ok());
    ExpectCompleteWithin(*lengths, limit);
    EXPECT_EQ(*std::max_element(lengths->begin(), lengths->end()), limit);
  }
  EXPECT_FALSE(HuffmanCodeLengths(counts, 5).ok());  // 40 symbols need 6 bits
  // A stream with these counts (first 30 terms: 2.1M symbols) decodes back.
  std::vector<uint16_t> symbols;
  for (int s = 0; s < 30; ++s) symbols.insert(symbols.end(), counts[s], static_cast<uint16_t>(s));
  std::shuffle(symbols.begin(), symbols.end(), std::mt19937_64(4));
  ExpectRoundTrip(symbols, 30, 15);
  ExpectRoundTrip(symbols, 30, 5);
  auto info = InspectEntropyStream(*EncodeHuffman(symbols, 30, 9));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->max_code_length, 9);
}

TEST(Huffman, LengthsAreOptimal) {
  std::mt19937_64 rng(5);
  // Without a binding limit, package-merge matches unlimited Huffman's cost.
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<uint64_t> counts(1 + rng() % 300);
    for (auto& c : counts) c = rng() % 4 == 0 ? 0 : rng() % 100000;
    auto lengths = HuffmanCodeLengths(counts, 24);
    ASSERT_TRUE(lengths.ok());
    EXPECT_EQ(CodeCost(counts, *lengths), HuffmanCost(counts));
    ExpectCompleteWithin(*lengths, 24);
  }
  // With a binding limit: the best of all complete length vectors (exhaustive, 7 symbols).
  for (int trial = 0; trial < 20; ++trial) {
    const int limit = 3 + trial % 2;
    std::vector<uint64_t> counts(7);
    for (auto& c : counts) c = 1 + rng() % (trial < 10 ? 10 : 1000000);
    uint64_t best = UINT64_MAX;
    std::vector<uint8_t> len(7, 1);
    std::function<void(size_t, double)> search = [&](size_t i, double kraft) {
      if (kraft > 1.0) return;
      if (i == len.size()) {
        if (kraft == 1.0) best = std::min(best, CodeCost(counts, len));
        return;
      }
      for (int l = 1; l <= limit; ++l) {
        len[i] = static_cast<uint8_t>(l);
        search(i + 1, kraft + std::ldexp(1.0, -l));
      }
    };
    search(0, 0.0);
    auto lengths = HuffmanCodeLengths(counts, limit);
    ASSERT_TRUE(lengths.ok());
    ExpectCompleteWithin(*lengths, limit);
    EXPECT_EQ(CodeCost(counts, *lengths), best);
  }
}

TEST(Huffman, GaussianSizeWithinHuffmanRedundancy) {
  for (int levels : {16, 35, 64}) {
    const auto symbols = GaussianSymbols(1 << 20, levels, levels);
    auto enc = EncodeHuffman(symbols, levels);
    ASSERT_TRUE(enc.ok());
    const double ideal = IdealBits(symbols, levels);
    const double actual = 8.0 * enc->size();
    // Gallager: redundancy < p_max + 0.086 bits per symbol; here p_max < 0.2.
    EXPECT_LT(actual, ideal + symbols.size() * 0.1) << levels;
    EXPECT_GT(actual, ideal);
    auto dec = DecodeHuffman(*enc);
    ASSERT_TRUE(dec.ok());
    EXPECT_TRUE(*dec == symbols);
  }
}

TEST(Huffman, RejectsBadArguments) {
  const std::vector<uint16_t> symbols = {0, 1, 2, 8};
  EXPECT_EQ(EncodeHuffman(symbols, 8).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeHuffman(symbols, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeHuffman(symbols, 65537).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeHuffman(symbols, 9, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeHuffman(symbols, 9, 25).status().code(), StatusCode::kInvalidArgument);
  // More symbols than 2^max_code_length: the limit rises to fit.
  ExpectRoundTrip(symbols, 9, 1);
}

TEST(Huffman, RejectsTruncationsAndGarbage) {
  const auto symbols = GaussianSymbols(3000, 35, 6);
  const auto enc = *EncodeHuffman(symbols, 35);
  for (size_t len = 0; len < enc.size(); ++len) {
    auto dec = DecodeHuffman(std::span<const uint8_t>(enc).first(len));
    EXPECT_FALSE(dec.ok()) << len;
    if (!dec.ok()) {
      EXPECT_EQ(dec.status().code(), StatusCode::kInvalidData);
    }
  }
  std::vector<uint8_t> longer = enc;
  longer.push_back(0);
  EXPECT_FALSE(DecodeHuffman(longer).ok());
  EXPECT_FALSE(DecodeHuffman(*EncodeRans(symbols, 35)).ok());  // the other coder
  // A header claiming 2^40 symbols in a few bytes is refused before allocating.
  const std::vector<uint8_t> huge = {'O',  'W',  'F',  'E',  1, 1, 0x80, 0x80,
                                     0x80, 0x80, 0x80, 0x20, 2, 0, 1,    1};
  EXPECT_EQ(DecodeHuffman(huge).status().code(), StatusCode::kInvalidData);
}

// Random mutations of valid streams: decoding must fail cleanly or return at most n symbols.
TEST(Huffman, FuzzMutations) {
  std::mt19937_64 rng(7);
  std::vector<std::vector<uint8_t>> seeds;
  seeds.push_back(*EncodeHuffman(GaussianSymbols(2000, 35, 1), 35));
  seeds.push_back(*EncodeHuffman(GaussianSymbols(500, 4096, 2), 4096, 24));
  seeds.push_back(*EncodeHuffman(std::vector<uint16_t>(70000, 1), 3));
  seeds.push_back(*EncodeHuffman({}, 5));
  seeds.push_back(*EncodeHuffman(GaussianSymbols(3000, 16, 3), 16, 4));
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
          data[std::min<size_t>(at, 12)] = static_cast<uint8_t>(rng() | 0x80);
          break;
      }
    }
    auto dec = DecodeHuffman(data);
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
