#include "owf/stats/crd.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace owf {
namespace {

constexpr double kTol = 1e-6;
// golden.json's Student-t quantiles come from scipy and are themselves accurate only to about
// 1e-9 relative (checked against mpmath, see HeavyTailQuantilesMatchHighPrecision): for the 18
// centroids of the t_3 8-bit rms codebooks beyond 5000 in magnitude (up to 1.2e6) that exceeds
// 1e-6 absolute. Values of magnitude >= kGoldenRelFrom may use the relative tolerance instead.
constexpr double kGoldenRelTol = 2e-9;
constexpr double kGoldenRelFrom = 1000;

CrdDesign Design(Distribution dist, int bits, CrdMode mode = CrdMode::kSymmetric,
                 CrdRange range = CrdRange::kRms, int64_t block_size = 64, double df = 0) {
  CrdDesign d;
  d.dist = dist;
  d.levels = 1 << bits;
  d.mode = mode;
  d.range = range;
  d.block_size = block_size;
  d.df = df;
  return d;
}

// {a, b, c} -> {-c, -b, -a, a, b, c}
std::vector<double> PlusMinus(const std::vector<double>& positive) {
  std::vector<double> out;
  for (auto it = positive.rbegin(); it != positive.rend(); ++it) out.push_back(-*it);
  out.insert(out.end(), positive.begin(), positive.end());
  return out;
}

void ExpectCodebook(const CrdDesign& design, const std::vector<double>& expected,
                    double tol = kTol) {
  const Result<std::vector<double>> got = CrdCodebook(design);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR((*got)[i], expected[i], tol) << "index " << i;
  }
}

// ---- reference-spec.md section 2.3, "Reference tables [computed]" ----

TEST(CrdReferenceTables, Normal) {
  const auto n = Distribution::kNormal;
  ExpectCodebook(Design(n, 3), PlusMinus({0.241985, 0.746042, 1.324516, 2.114211}));
  ExpectCodebook(Design(n, 3, CrdMode::kAsymmetric),
                 {-1.992464, -1.168250, -0.551900, 0, 0.438810, 0.908288, 1.457731, 2.219712});
  ExpectCodebook(Design(n, 3, CrdMode::kRepeatZero), PlusMinus({0, 0.551900, 1.168250, 1.992464}));
  CrdDesign quantile = Design(n, 3);
  quantile.power = 1;
  ExpectCodebook(quantile, PlusMinus({0.139710, 0.430727, 0.764710, 1.220640}));
  ExpectCodebook(Design(n, 4), PlusMinus({0.127810, 0.386261, 0.653662, 0.937724, 1.249713,
                                          1.608901, 2.055652, 2.710186}));
}

TEST(CrdReferenceTables, LaplaceAndT) {
  ExpectCodebook(Design(Distribution::kLaplace, 3),
                 PlusMinus({0.249856, 0.860122, 1.720243, 3.190630}));
  ExpectCodebook(Design(Distribution::kStudentT, 3, CrdMode::kSymmetric, CrdRange::kRms, 64, 5),
                 PlusMinus({0.305407, 1, 2.064178, 4.758771}));
  ExpectCodebook(Design(Distribution::kStudentT, 3, CrdMode::kAsymmetric, CrdRange::kRms, 64, 7),
                 {-2.996667, -1.471540, -0.649217, 0, 0.512537, 1.104615, 1.931126, 3.574195});
}

TEST(CrdReferenceTables, BlockDesigns) {
  const auto n = Distribution::kNormal;
  const auto absmax = CrdRange::kAbsmax;
  ExpectCodebook(Design(n, 3, CrdMode::kSymmetric, absmax, 64),
                 PlusMinus({0.106970, 0.331491, 0.597032, 1}));
  ExpectCodebook(Design(n, 3, CrdMode::kAsymmetric, absmax, 64),
                 {-1, -.547664, -.254029, 0, .188710, .392278, .636064, 1});
  ExpectCodebook(Design(n, 3, CrdMode::kAsymmetric, CrdRange::kSignmax, 64),
                 {-.636064, -.392278, -.188709, 0, .188710, .392278, .636064, 1});
  ExpectCodebook(Design(Distribution::kLaplace, 3, CrdMode::kSymmetric, absmax, 64),
                 PlusMinus({0.076236, 0.263375, 0.530149, 1}));
  const auto t = Distribution::kStudentT;
  ExpectCodebook(Design(t, 3, CrdMode::kSymmetric, absmax, 64, 7),
                 PlusMinus({0.089614, 0.284030, 0.539125, 1}));
  ExpectCodebook(Design(t, 4, CrdMode::kSymmetric, absmax, 64, 7),
                 PlusMinus({.041608, .126254, .215433, .313079, .424922, .560488, .738049, 1}));
  ExpectCodebook(Design(t, 3, CrdMode::kAsymmetric, CrdRange::kSignmax, 128, 5),
                 {-.518423, -.286970, -.130787, 0, .130787, .286970, .518423, 1});
}

TEST(Crd, RepeatZeroKeepsBothZerosAndBlockEndsAreExact) {
  const Result<std::vector<double>> rz = CrdCodebook(
      Design(Distribution::kStudentT, 4, CrdMode::kRepeatZero, CrdRange::kAbsmax, 32, 4));
  ASSERT_TRUE(rz.ok()) << rz.status().ToString();
  ASSERT_EQ(rz->size(), 16u);
  EXPECT_EQ(std::count(rz->begin(), rz->end(), 0.0), 2);
  EXPECT_EQ(rz->front(), -1.0);
  EXPECT_EQ(rz->back(), 1.0);
  EXPECT_TRUE(std::is_sorted(rz->begin(), rz->end()));
}

TEST(Crd, PowerZeroIsUniformOnBlockRange) {
  CrdDesign d = Design(Distribution::kNormal, 2, CrdMode::kSymmetric, CrdRange::kAbsmax);
  d.power = 0;
  ExpectCodebook(d, {-1, -1.0 / 3, 1.0 / 3, 1}, 1e-7);
  d.mode = CrdMode::kAsymmetric;
  d.range = CrdRange::kSignmax;
  ExpectCodebook(d, {-0.5, 0, 0.5, 1}, 0);
}

TEST(Crd, OddLevelsSymmetric) {
  CrdDesign d = Design(Distribution::kNormal, 0);
  d.levels = 3;
  const Result<std::vector<double>> got = CrdCodebook(d);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[1], 0.0);
  EXPECT_NEAR((*got)[2], -(*got)[0], 1e-7);
}

// ---- golden.json: every "crd..." codebook of the reference implementation ----

struct GoldenKey {
  CrdDesign design;
  bool ok = false;
};

// "crd3(t,df=7,mode=asym)@64:signmax", "crd2(normal)@channel:rms", ...
GoldenKey ParseGoldenKey(const std::string& key) {
  static const std::regex kPattern(
      R"(^crd(\d+)\((normal|laplace|t)(?:,df=([0-9]+(?:\.[0-9]+)?))?(?:,mode=(asym|zero))?\))"
      R"(@(channel|\d+):(rms|absmax|signmax)$)");
  GoldenKey out;
  std::smatch m;
  if (!std::regex_match(key, m, kPattern)) return out;
  CrdDesign& d = out.design;
  const int bits = std::stoi(m[1].str());
  if (bits < 1 || bits > 16) return out;
  d.levels = 1 << bits;
  const std::string dist = m[2].str();
  d.dist = dist == "normal"    ? Distribution::kNormal
           : dist == "laplace" ? Distribution::kLaplace
                               : Distribution::kStudentT;
  if (m[3].matched) d.df = std::stod(m[3].str());
  if (d.dist == Distribution::kStudentT && !m[3].matched) return out;  // t needs a df here
  d.mode = !m[4].matched          ? CrdMode::kSymmetric
           : m[4].str() == "asym" ? CrdMode::kAsymmetric
                                  : CrdMode::kRepeatZero;
  const std::string range = m[6].str();
  if (m[5].str() == "channel") {
    if (range != "rms") return out;
    d.range = CrdRange::kRms;
  } else {
    if (range == "rms") return out;
    d.block_size = std::stoll(m[5].str());
    d.range = range == "absmax" ? CrdRange::kAbsmax : CrdRange::kSignmax;
  }
  d.power = 1.0 / 3.0;
  out.ok = true;
  return out;
}

TEST(CrdGolden, KeyParser) {
  GoldenKey k = ParseGoldenKey("crd3(t,df=7,mode=asym)@64:signmax");
  ASSERT_TRUE(k.ok);
  EXPECT_EQ(k.design.levels, 8);
  EXPECT_EQ(k.design.dist, Distribution::kStudentT);
  EXPECT_EQ(k.design.df, 7);
  EXPECT_EQ(k.design.mode, CrdMode::kAsymmetric);
  EXPECT_EQ(k.design.range, CrdRange::kSignmax);
  EXPECT_EQ(k.design.block_size, 64);
  k = ParseGoldenKey("crd2(normal)@channel:rms");
  ASSERT_TRUE(k.ok);
  EXPECT_EQ(k.design.levels, 4);
  EXPECT_EQ(k.design.mode, CrdMode::kSymmetric);
  EXPECT_EQ(k.design.range, CrdRange::kRms);
  k = ParseGoldenKey("crd4(laplace,mode=zero)@16:absmax");
  ASSERT_TRUE(k.ok);
  EXPECT_EQ(k.design.mode, CrdMode::kRepeatZero);
  EXPECT_EQ(k.design.block_size, 16);
  EXPECT_FALSE(ParseGoldenKey("crd4(normal)@16:rms").ok);
  EXPECT_FALSE(ParseGoldenKey("crd4(cauchy)@16:absmax").ok);
}

TEST(CrdGolden, EveryCrdCodebookMatchesReference) {
  const std::string path = std::string(OWF_SHARED_DIR) + "/golden/golden.json";
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << "golden file not found: " << path;
  const nlohmann::json golden = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(golden.is_discarded()) << "cannot parse " << path;
  ASSERT_TRUE(golden.contains("codebooks"));
  int compared = 0;
  double worst_small = 0;  // worst |diff| among values below kGoldenRelFrom in magnitude
  int relative_only = 0;   // values beyond kTol absolute (must be within kGoldenRelTol)
  double worst = 0;
  std::string worst_key;
  for (const auto& [key, entry] : golden["codebooks"].items()) {
    if (key.rfind("crd", 0) != 0) continue;
    const GoldenKey parsed = ParseGoldenKey(key);
    if (!parsed.ok) {
      ADD_FAILURE() << "unparsed golden key " << key;
      continue;
    }
    const std::vector<double> want = entry.at("values").get<std::vector<double>>();
    const Result<std::vector<double>> got = CrdCodebook(parsed.design);
    if (!got.ok()) {
      ADD_FAILURE() << key << ": " << got.status().ToString();
      continue;
    }
    if (got->size() != want.size()) {
      ADD_FAILURE() << key << ": " << got->size() << " values, golden has " << want.size();
      continue;
    }
    double max_err = 0;
    size_t max_at = 0;
    bool within = true;
    for (size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs((*got)[i] - want[i]);
      if (!(err <= max_err)) {
        max_err = err;
        max_at = i;
      }
      if (std::fabs(want[i]) < kGoldenRelFrom) worst_small = std::max(worst_small, err);
      if (!(err <= kTol)) {
        ++relative_only;
        const double magnitude = std::fabs(want[i]);
        if (!(magnitude >= kGoldenRelFrom && err <= kGoldenRelTol * magnitude)) within = false;
      }
    }
    if (!within) {
      std::ostringstream msg;
      msg.precision(17);
      msg << key << " (" << entry.value("ref_name", "") << "): |diff| " << max_err << " at index "
          << max_at << ": got " << (*got)[max_at] << ", golden " << want[max_at];
      ADD_FAILURE() << msg.str();
    }
    if (max_err > worst) {
      worst = max_err;
      worst_key = key;
    }
    ++compared;
  }
  EXPECT_GT(compared, 600) << "too few crd codebooks compared";
  std::printf(
      "compared %d crd codebooks; worst |diff| %.3g (%s), %.3g for |values| < %.0f; %d "
      "values beyond 1e-6 absolute (all >= %.0f in magnitude, within %.0e relative)\n",
      compared, worst, worst_key.c_str(), worst_small, kGoldenRelFrom, relative_only,
      kGoldenRelFrom, kGoldenRelTol);
}

TEST(CrdGolden, HeavyTailQuantilesMatchHighPrecision) {
  // The three golden codebooks with centroids off by more than 1e-6 (all t_3, 8 bits, rms):
  // owf's values against mpmath (50 digits) at the same fp32 grid probabilities.
  struct Case {
    CrdMode mode;
    size_t index;
    double want;
  };
  const Case cases[] = {
      {CrdMode::kRepeatZero, 0, -1171182.981050306456375349},   // golden -1171182.9808969833
      {CrdMode::kSymmetric, 1, -148120.1830915151027510758},    // golden -148120.18321104679
      {CrdMode::kAsymmetric, 254, 149855.7344577965354749966},  // golden 149855.73461310301
  };
  for (const Case& c : cases) {
    const Result<std::vector<double>> got =
        CrdCodebook(Design(Distribution::kStudentT, 8, c.mode, CrdRange::kRms, 64, /*df=*/3));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_NEAR((*got)[c.index], c.want, 1e-13 * std::fabs(c.want)) << c.index;
  }
}

// ---- invalid designs ----

void ExpectInvalid(const CrdDesign& d, const std::string& what) {
  const Result<std::vector<double>> got = CrdCodebook(d);
  ASSERT_FALSE(got.ok()) << what;
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << what;
  EXPECT_FALSE(got.status().message().empty()) << what;
}

TEST(CrdErrors, InvalidDesignsAreRejected) {
  const auto n = Distribution::kNormal;
  ExpectInvalid(Design(n, 3, CrdMode::kSymmetric, CrdRange::kSignmax), "symmetric+signmax");
  ExpectInvalid(Design(n, 3, CrdMode::kRepeatZero, CrdRange::kSignmax), "repeat_zero+signmax");
  CrdDesign d = Design(Distribution::kStudentT, 3, CrdMode::kSymmetric, CrdRange::kRms, 64, 2);
  ExpectInvalid(d, "df=2");
  d.df = 1.5;
  ExpectInvalid(d, "df=1.5");
  d.df = std::nan("");
  ExpectInvalid(d, "df=nan");
  d.df = 3;
  d.power = 0.2;  // df' = 0.2 * 4 - 1 < 0
  ExpectInvalid(d, "df'<0");
  d = Design(n, 3, CrdMode::kAsymmetric);
  d.levels = 7;
  ExpectInvalid(d, "odd levels asym");
  d.mode = CrdMode::kRepeatZero;
  ExpectInvalid(d, "odd levels zero");
  d = Design(n, 3);
  d.power = 0;
  ExpectInvalid(d, "power 0 with rms");
  d.power = -1;
  ExpectInvalid(d, "negative power");
  d.power = std::nan("");
  ExpectInvalid(d, "nan power");
  d = Design(n, 3);
  d.levels = 1;
  ExpectInvalid(d, "levels 1");
  d = Design(n, 1, CrdMode::kRepeatZero);
  ExpectInvalid(d, "repeat_zero with 2 levels");
  d = Design(n, 3, CrdMode::kSymmetric, CrdRange::kAbsmax, 1);
  ExpectInvalid(d, "block_size 1");
  d.block_size = 3;
  ExpectInvalid(d, "normal block_size 3 < pi");
  // df' = (2.01 - 2) / 3: the extreme quantiles grow like p^-300 and overflow double.
  d = Design(Distribution::kStudentT, 8, CrdMode::kSymmetric, CrdRange::kRms, 64, 2.01);
  ExpectInvalid(d, "non-finite centroids");
}

TEST(CrdErrors, ExtremeDesignsNeverCrash) {
  // Every combination gives either a sorted, finite codebook (within [-1, 1] for block designs)
  // or an InvalidArgument status.
  int ok = 0;
  for (Distribution dist :
       {Distribution::kNormal, Distribution::kLaplace, Distribution::kStudentT}) {
    for (CrdMode mode : {CrdMode::kSymmetric, CrdMode::kAsymmetric, CrdMode::kRepeatZero}) {
      for (CrdRange range : {CrdRange::kRms, CrdRange::kAbsmax, CrdRange::kSignmax}) {
        for (double power : {0.0, 1e-9, 1e-3, 0.1, 1.0 / 3, 1.0, 10.0, 1e3}) {
          for (int64_t block : {2, 4, 64, 1 << 20}) {
            for (double df : {2.5, 3.0, 100.0, 1e6}) {
              for (int levels : {2, 3, 16, 256}) {
                CrdDesign d;
                d.dist = dist;
                d.mode = mode;
                d.range = range;
                d.power = power;
                d.block_size = block;
                d.df = df;
                d.levels = levels;
                const Result<std::vector<double>> got = CrdCodebook(d);
                if (!got.ok()) {
                  ASSERT_EQ(got.status().code(), StatusCode::kInvalidArgument);
                  continue;
                }
                ++ok;
                ASSERT_EQ(got->size(), static_cast<size_t>(levels));
                ASSERT_TRUE(std::is_sorted(got->begin(), got->end()));
                int ties = 0;
                for (size_t i = 0; i < got->size(); ++i) {
                  ASSERT_TRUE(std::isfinite((*got)[i]));
                  if (i > 0 && (*got)[i] == (*got)[i - 1]) ++ties;
                }
                // Only repeat-zero has a repeated value (0); block designs end exactly at +1.
                ASSERT_LE(ties, mode == CrdMode::kRepeatZero ? 1 : 0);
                if (range != CrdRange::kRms) {
                  ASSERT_GE(got->front(), -1.0);
                  ASSERT_EQ(got->back(), 1.0);
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(ok, 1000);
}

// ---- properties ----

// MSE of nearest-centroid quantisation of N(0, 1) data, integrated in closed form per cell:
// int_a^b (x - c)^2 phi = [Phi - x phi]_a^b + 2c [phi]_a^b + c^2 [Phi]_a^b.
double NormalMse(const std::vector<double>& c) {
  const auto phi = [](double x) {
    return std::isinf(x) ? 0.0 : std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
  };
  const auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); };
  const auto xphi = [&](double x) { return std::isinf(x) ? 0.0 : x * phi(x); };
  double mse = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const double lo = i == 0 ? -INFINITY : 0.5 * (c[i - 1] + c[i]);
    const double hi = i + 1 == c.size() ? INFINITY : 0.5 * (c[i] + c[i + 1]);
    const double mass = cdf(hi) - cdf(lo);
    mse += mass - (xphi(hi) - xphi(lo)) + 2 * c[i] * (phi(hi) - phi(lo)) + c[i] * c[i] * mass;
  }
  return mse;
}

double NormalMseFor(int bits, double power) {
  CrdDesign d = Design(Distribution::kNormal, bits);
  d.power = power;
  const Result<std::vector<double>> cb = CrdCodebook(d);
  EXPECT_TRUE(cb.ok()) << cb.status().ToString();
  return cb.ok() ? NormalMse(*cb) : INFINITY;
}

TEST(CrdProperties, NormalCubeRootMatchesPanterDite) {
  // (int phi^(1/3))^3 / 12 = sqrt(3) pi / 2 = 2.7207 for a unit normal.
  const double panter_dite = std::sqrt(3.0) * std::numbers::pi / 2;
  EXPECT_NEAR(panter_dite, 2.721, 1e-3);
  const int bits = 6;
  const double scaled_mse = NormalMseFor(bits, 1.0 / 3.0) * std::pow(4.0, bits);
  // Panter-Dite is the high-resolution limit, approached from below (2.639 at 6 bits).
  EXPECT_NEAR(scaled_mse / panter_dite, 1.0, 0.05) << "scaled MSE " << scaled_mse;
  EXPECT_LT(scaled_mse, panter_dite);
  const double scaled_mse_8 = NormalMseFor(8, 1.0 / 3.0) * std::pow(4.0, 8);
  EXPECT_LT(std::fabs(scaled_mse_8 - panter_dite), std::fabs(scaled_mse - panter_dite));
}

TEST(CrdProperties, CubeRootBeatsOtherPowersOnNormalData) {
  const double crd = NormalMseFor(4, 1.0 / 3.0);
  EXPECT_LT(crd, NormalMseFor(4, 1.0));
  EXPECT_LT(crd, NormalMseFor(4, 0.5));
  EXPECT_LT(crd, NormalMseFor(4, 0.25));
}

TEST(CrdProperties, MseCheckedAgainstSampling) {
  // Cross-check the closed-form integral with a fine Riemann sum over [-12, 12].
  const Result<std::vector<double>> cb = CrdCodebook(Design(Distribution::kNormal, 3));
  ASSERT_TRUE(cb.ok());
  const int steps = 2000000;
  const double lo = -12, h = 24.0 / steps;
  double sum = 0;
  for (int i = 0; i < steps; ++i) {
    const double x = lo + (i + 0.5) * h;
    double best = INFINITY;
    for (double c : *cb) best = std::min(best, (x - c) * (x - c));
    sum += best * std::exp(-0.5 * x * x);
  }
  sum *= h / std::sqrt(2 * std::numbers::pi);
  EXPECT_NEAR(sum, NormalMse(*cb), 1e-9);
}

}  // namespace
}  // namespace owf
