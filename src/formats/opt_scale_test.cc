// opt / optmin scaling: the fast path against the plain reference path, the block fit against a
// brute-force scan, two-level scales against their definition, exact bit accounting, importance.
#include "opt_scale.h"

#include <gtest/gtest.h>

#include <random>

#include "owf/formats/element.h"
#include "owf/formats/quantise.h"
#include "owf/formats/spec.h"
#include "owf/stats/synthetic.h"

namespace owf {
namespace {

std::vector<float> StudentT(int64_t n, double df, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::student_t_distribution<float> t(static_cast<float>(df));
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = 0.02f * t(rng);
  return x;
}

Tensor MakeTensor(int64_t rows, int64_t cols, double df, uint64_t seed) {
  Tensor t;
  t.shape = {rows, cols};
  const std::vector<float> v = StudentT(rows * cols, df, seed);
  t.data.assign(v.begin(), v.end());
  return t;
}

TEST(NearestCode, MatchesTheLutRuleIncludingTies) {
  const std::vector<float> c = {-1.0f, -0.5f, -0.1f, 0.0f, 0.3f, 0.31f, 1.0f};
  const ElementFormat lut = ElementFormat::Lut(c, std::log2(7.0));
  const NearestCode code(c);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  std::vector<float> probes = {-2.0f, 2.0f, -0.75f, -0.3f, -0.05f, 0.15f, 0.305f, 0.655f};  // ends and midpoints
  for (int i = 0; i < 10000; ++i) probes.push_back(u(rng));
  for (float y : probes) EXPECT_EQ(code(y), lut.Code(y)) << y;
}

// Every layout: fast path (1, 2, 5 threads) == reference path, bit for bit.
TEST(OptScales, FastPathEqualsReferenceAtAnyThreadCount) {
  const int64_t rows = 37, cols = 200;  // partial blocks and super-blocks at every row end
  const std::vector<float> x = StudentT(rows * cols, 4, 1);
  std::vector<float> imp(x.size());
  std::mt19937 rng(2);
  for (float& w : imp) w = std::uniform_real_distribution<float>(0.0f, 2.0f)(rng);
  const std::vector<float> cb = {-1.0f, -0.6f, -0.3f, -0.1f, 0.1f, 0.3f, 0.6f, 1.0f};
  for (const char* text : {"int3@32:opt:bf16", "int3@32:optmin:fp16", "int3@64:opt:fp16/16:u6",
                           "int3@64:opt:e4m3/16:h3", "int3@64:opt:e4m3/16:m3", "int3@128:optmin:fp16/32:u4:u4", "int3@channel:opt:fp32"}) {
    const FormatSpec spec = *ParseSpec(text);
    const BlockGeometry g = *MakeGeometry(*spec.scaling, rows, cols);
    const OptLayout L = MakeOptLayout(*spec.scaling, g);
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(imp.data())}) {
      std::vector<uint16_t> ref_codes(x.size());
      const OptScales ref = OptimiseScales(x.data(), w, L, cb, 1, ref_codes.data(), /*reference=*/true);
      for (int threads : {1, 2, 5}) {
        std::vector<uint16_t> codes(x.size());
        const OptScales fast = OptimiseScales(x.data(), w, L, cb, threads, codes.data());
        EXPECT_EQ(codes, ref_codes) << text << " threads " << threads;
        EXPECT_EQ(fast.scales, ref.scales) << text;
        EXPECT_EQ(fast.mins, ref.mins) << text;
        EXPECT_EQ(fast.super_scales, ref.super_scales) << text;
        EXPECT_EQ(fast.sub_scales, ref.sub_scales) << text;
        EXPECT_EQ(fast.sub_mins, ref.sub_mins) << text;
      }
    }
  }
}

double BlockError(const float* x, int64_t n, const std::vector<float>& cb, float s, float m) {
  // Brute force: every element against every codebook value.
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    double best = INFINITY;
    for (float c : cb) best = std::min(best, std::pow(static_cast<double>(c) * s - m - x[i], 2));
    e += best;
  }
  return e;
}

// Single-level fp32 scales: each block's error is never above the absmax scale's and within 1%
// of a dense brute-force scan over scales (and, for optmin, minima).
TEST(OptScales, BlockFitIsCloseToTheBruteForceOptimum) {
  const int64_t rows = 64, cols = 32;
  const std::vector<float> cb = {-1.0f, -0.55f, -0.25f, 0.0f, 0.25f, 0.55f, 1.0f};
  for (double df : {3.0, 30.0}) {
    const std::vector<float> x = StudentT(rows * cols, df, 7);
    for (bool with_min : {false, true}) {
      OptLayout L;
      L.rows = rows, L.cols = cols, L.block = cols, L.with_min = with_min, L.format = ScaleFormat::kFp32;
      std::vector<uint16_t> codes(x.size());
      const OptScales s = OptimiseScales(x.data(), nullptr, L, cb, 1, codes.data());
      double total_fit = 0, total_brute = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* xb = x.data() + r * cols;
        double fit = 0;
        for (int64_t i = 0; i < cols; ++i) {
          const float v = OptValue(cb[codes[r * cols + i]], s.scales[r], with_min ? s.mins[r] : 0.0f, with_min);
          fit += std::pow(static_cast<double>(v) - xb[i], 2);
        }
        float amax = 0, lo = xb[0], hi = xb[0];
        for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(xb[i])), lo = std::min(lo, xb[i]), hi = std::max(hi, xb[i]);
        EXPECT_LE(fit, BlockError(xb, cols, cb, amax, 0) * (1 + 1e-6));
        double brute = INFINITY;
        const int steps = with_min ? 200 : 1000;
        for (int k = 1; k <= steps; ++k) {
          const float sc = amax * 1.4f * static_cast<float>(k) / static_cast<float>(steps);
          if (!with_min) {
            brute = std::min(brute, BlockError(xb, cols, cb, sc, 0));
            continue;
          }
          // value = c * sc - m: centre the codebook on the block's mid-range, then shift.
          for (int j = -10; j <= 10; ++j)
            brute = std::min(brute, BlockError(xb, cols, cb, sc, -(hi + lo) / 2 + (hi - lo) * j / 40.0f));
        }
        total_fit += fit;
        total_brute += brute;
      }
      // optmin searches two parameters from a few starts: within 3% of the brute-force grid.
      EXPECT_LE(total_fit, total_brute * (with_min ? 1.03 : 1.01)) << "df " << df << " min " << with_min;
    }
  }
}

// Two-level scales are what the container says: scale = super * (q + offset), fp32.
TEST(OptScales, TwoLevelScalesAreSuperTimesMultiplier) {
  const Tensor x = MakeTensor(9, 300, 5, 11);
  for (const char* text : {"lloyd4@128:opt:e4m3/16:h3", "lloyd4@128:opt:e4m3/16:m3", "lloyd3@64:optmin:fp16/16:u4:u4", "nf4@256:opt:bf16/32:u6"}) {
    auto q = QuantiseTensor(*ParseSpec(text), x, QuantiseOptions{2, nullptr});
    ASSERT_TRUE(q.ok()) << q.status().message();
    const ScalingSpec& s = *q->spec.scaling;
    const int64_t per_row = (300 + s.sub_block - 1) / s.sub_block, supers = (300 + s.block_cols - 1) / s.block_cols;
    ASSERT_EQ(q->scales.size(), static_cast<size_t>(9 * per_row));
    ASSERT_EQ(q->super_scales.size(), static_cast<size_t>(9 * supers));
    const int off = s.sub_high ? 1 << s.sub_bits : s.sub_mid ? 1 << (s.sub_bits - 1) : 0;
    for (int64_t r = 0; r < 9; ++r) {
      for (int64_t j = 0; j < per_row; ++j) {
        const size_t b = static_cast<size_t>(r * per_row + j);
        const float super = q->super_scales[static_cast<size_t>(r * supers + j * s.sub_block / s.block_cols)];
        EXPECT_LT(q->sub_scales[b], 1 << s.sub_bits);
        EXPECT_EQ(q->scales[b], super * static_cast<float>(q->sub_scales[b] + off));
        EXPECT_EQ(QuantiseScale(super, s.format), super);
        if (s.with_min()) {
          const float sm = q->super_mins[static_cast<size_t>(r * supers + j * s.sub_block / s.block_cols)];
          EXPECT_EQ(q->mins[b], sm * static_cast<float>(q->sub_mins[b]));
        }
      }
    }
    // Values are a function of (code, scale, min) alone.
    for (int64_t i = 0; i < x.numel(); ++i) {
      const size_t b = static_cast<size_t>((i / 300) * per_row + (i % 300) / s.sub_block);
      const float c = q->element.centroids()[q->codes[static_cast<size_t>(i)]];
      const float want = s.with_min() ? std::fma(c, q->scales[b], -q->mins[b]) : c * q->scales[b];
      ASSERT_EQ(q->values.data[static_cast<size_t>(i)], want) << text << " at " << i;
    }
  }
}

// Bits: codes + super-block scales (and min scales) + sub-block multipliers, counted exactly.
TEST(OptScales, BitsAreCountedExactly) {
  struct Case {
    const char* spec;
    int64_t cols;
    double expected;  // total bits for 4 rows
  };
  const Case cases[] = {
      {"fixed4", 1024, 4 * (1024 * 4.0 + 8 * 8 + 64 * 3)},
      {"lloyd4@256:opt:fp16/32:u6", 172, 4 * (172 * 4.0 + 1 * 16 + 6 * 6)},  // partial super and sub-blocks
      {"lloyd2@256:optmin:fp16/16:u4:u4", 512, 4 * (512 * 2.0 + 2 * 32 + 32 * 8)},
      {"int4@32:optmin:bf16", 100, 4 * (100 * 4.0 + 4 * 32)},
  };
  for (const Case& c : cases) {
    auto q = QuantiseTensor(*ParseSpec(c.spec), MakeTensor(4, c.cols, 5, 3), QuantiseOptions{1, nullptr});
    ASSERT_TRUE(q.ok()) << c.spec << ": " << q.status().message();
    EXPECT_DOUBLE_EQ(q->total_bits(), c.expected) << c.spec;
  }
  for (const Preset& p : Presets()) {
    auto spec = ParseSpec(p.name);
    ASSERT_TRUE(spec.ok()) << p.name;
    EXPECT_EQ(ToString(*spec), p.spec);
    auto q = QuantiseTensor(*spec, MakeTensor(8, 512, 5, 4), QuantiseOptions{2, nullptr});
    ASSERT_TRUE(q.ok()) << p.name << ": " << q.status().message();
    // ceil(log2(K) x n) element bits: within one bit of the nominal count.
    EXPECT_NEAR(q->bits_per_element(), *ScaleBitsPerElement(*spec->scaling) + q->element.bits(), 1.0 / 4096) << p.name;
    EXPECT_NEAR(q->element.bits(), std::log2(std::round(std::exp2(spec->element.bits))), 1e-12);
  }
}

// Importance weights steer the fit: the weighted error is lower than an unweighted fit's.
TEST(OptScales, ImportanceLowersTheWeightedError) {
  const Tensor x = MakeTensor(32, 256, 5, 21);
  std::vector<float> imp(static_cast<size_t>(x.numel()));
  std::mt19937 rng(5);
  for (float& w : imp) w = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng) < 0.2f ? 20.0f : 0.1f;
  auto weighted_error = [&](const QuantisedTensor& q) {
    double e = 0;
    for (size_t i = 0; i < imp.size(); ++i) e += imp[i] * std::pow(static_cast<double>(q.values.data[i]) - x.data[i], 2);
    return e;
  };
  for (const char* text : {"int3@32:opt:fp32", "lloyd3@256:optmin:fp16/16:u4:u4"}) {
    auto plain = QuantiseTensor(*ParseSpec(text), x, QuantiseOptions{1, nullptr});
    auto steered = QuantiseTensor(*ParseSpec(text), x, QuantiseOptions{1, &imp});
    ASSERT_TRUE(plain.ok() && steered.ok());
    EXPECT_LT(weighted_error(*steered), 0.9 * weighted_error(*plain)) << text;
  }
}

// The presets beat the paper's fixed-length format at the same or lower bits on every
// distribution family, and hold their rmse ordering by bits.
TEST(OptScales, PresetsBeatAbsmaxCrdAtEqualBits) {
  for (double df : {3.0, 6.0, 1000.0}) {
    const Tensor x = MakeTensor(64, 1024, df, 9);
    auto fixed4 = QuantiseTensor(*ParseSpec("fixed4"), x, QuantiseOptions{2, nullptr});
    auto paper = QuantiseTensor(*ParseSpec("crd4(t,df=5)@64:absmax:bf16"), x, QuantiseOptions{2, nullptr});
    ASSERT_TRUE(fixed4.ok() && paper.ok());
    EXPECT_LE(fixed4->bits_per_element(), paper->bits_per_element());
    const double a = ComputeMetrics(fixed4->error, 4.25).rmse_norm, b = ComputeMetrics(paper->error, 4.25).rmse_norm;
    EXPECT_LT(a, 0.9 * b) << "df " << df;
  }
}

}  // namespace
}  // namespace owf
