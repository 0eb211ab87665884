#include "owf/stats/crd.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <string>

#include "owf/stats/distributions.h"

namespace owf {
namespace {

// Largest codebook accepted (2^20 levels = 20 bits per element).
constexpr int kMaxLevels = 1 << 20;
// The reference's truncated Euler-Mascheroni constant in m_L = gamma + ln B.
constexpr double kRefEulerGamma = 0.57721566;

// Which probability-grid end points are included, for p in [0, 1/2] and [1/2, 1]
// (reference-spec.md section 2.3, "flags").
struct GridFlags {
  bool neg_min;  // p = 0   (value -1 on a block design)
  bool neg_max;  // p = 1/2 on the negative side (value 0)
  bool pos_min;  // p = 1/2 on the positive side (value 0)
  bool pos_max;  // p = 1   (value +1 on a block design)
};

const char* ModeName(CrdMode mode) {
  switch (mode) {
    case CrdMode::kSymmetric:
      return "symmetric";
    case CrdMode::kAsymmetric:
      return "asymmetric";
    case CrdMode::kRepeatZero:
      return "repeat_zero";
  }
  return "?";
}

const char* RangeName(CrdRange range) {
  switch (range) {
    case CrdRange::kRms:
      return "rms";
    case CrdRange::kAbsmax:
      return "absmax";
    case CrdRange::kSignmax:
      return "signmax";
  }
  return "?";
}

Result<GridFlags> FlagsFor(CrdMode mode, CrdRange range) {
  switch (mode) {
    case CrdMode::kSymmetric:
      if (range == CrdRange::kRms) return GridFlags{false, false, false, false};
      if (range == CrdRange::kAbsmax) return GridFlags{true, false, false, true};
      break;
    case CrdMode::kRepeatZero:
      if (range == CrdRange::kRms) return GridFlags{false, true, true, false};
      if (range == CrdRange::kAbsmax) return GridFlags{true, true, true, true};
      break;
    case CrdMode::kAsymmetric:
      if (range == CrdRange::kRms) return GridFlags{false, true, false, false};
      if (range == CrdRange::kAbsmax) return GridFlags{true, true, false, true};
      if (range == CrdRange::kSignmax) return GridFlags{false, true, false, true};
      break;
  }
  return InvalidArgument(std::string("CRD mode '") + ModeName(mode) + "' does not support '" +
                         RangeName(range) + "' scaling (only asymmetric supports signmax)");
}

// The reference builds its probability grid with fp32 torch.linspace(start, end, steps), and
// golden.json pins down the exact fp32 values it produced (PyTorch's AVX2 CPU kernel, compiled
// with FMA contraction):
//  - step = (end - start) / (steps - 1) in fp32;
//  - a scalar element i is fma(step, i, start) below steps / 2 and fma(-step, steps - 1 - i, end)
//    from there on;
//  - the kernel fills 16 elements per iteration as two 8-lane vectors; each vector starts from the
//    scalar formula at its first index j and counts up from there: fma(k, step, base_j), k < 8;
//    the last steps % 16 elements use the scalar formula.
// The grid values are the exact inputs of the reference's fp64 quantile functions, and
// heavy-tailed designs (Student-t with small df) are sensitive to their last bit (one fp32 ulp of
// p moves a 2^8-level t_3 centroid by up to ~1e-3), so the grid is reproduced bit for bit.
std::vector<double> LinspaceF32(float start, float end, int64_t steps) {
  if (steps <= 0) return {};
  if (steps == 1) return {static_cast<double>(start)};
  const float step = (end - start) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  // All indices are < 2^21 (kMaxLevels), so their conversions to float are exact.
  const auto scalar = [&](int64_t i) {
    return i < halfway ? std::fma(step, static_cast<float>(i), start)
                       : std::fma(-step, static_cast<float>(steps - 1 - i), end);
  };
  constexpr int64_t kLanes = 8;
  std::vector<double> out(static_cast<size_t>(steps));
  const int64_t vectorised = steps / (2 * kLanes) * (2 * kLanes);  // whole pairs of vectors
  for (int64_t j = 0; j < vectorised; j += kLanes) {
    const float base = scalar(j);
    for (int64_t k = 0; k < kLanes; ++k) {
      out[static_cast<size_t>(j + k)] = std::fma(static_cast<float>(k), step, base);
    }
  }
  for (int64_t i = vectorised; i < steps; ++i) out[static_cast<size_t>(i)] = scalar(i);
  return out;
}

// Appends `count` entries of `grid` starting at `first`.
void AppendSlice(const std::vector<double>& grid, int64_t first, int64_t count,
                 std::vector<double>& out) {
  for (int64_t i = first; i < first + count && i < static_cast<int64_t>(grid.size()); ++i) {
    out.push_back(grid[static_cast<size_t>(i)]);
  }
}

std::vector<double> ProbabilityGrid(const GridFlags& f, int n) {
  std::vector<double> p;
  const int64_t neg_min = f.neg_min, neg_max = f.neg_max;
  const int64_t pos_min = f.pos_min, pos_max = f.pos_max;
  if (!f.neg_max && !f.pos_min) {
    // One grid across [0, 1], so there is no double gap around zero.
    AppendSlice(LinspaceF32(0.0f, 1.0f, n + 2 - neg_min - pos_max), 1 - neg_min, n, p);
  } else {
    const int64_t half = n / 2;
    AppendSlice(LinspaceF32(0.0f, 0.5f, half + 2 - neg_min - neg_max), 1 - neg_min, half, p);
    AppendSlice(LinspaceF32(0.5f, 1.0f, half + 2 - pos_min - pos_max), 1 - pos_min, half, p);
  }
  return p;
}

bool IsStudentT(const CrdDesign& d) { return d.dist == Distribution::kStudentT; }

// Degrees of freedom of the density t_df^power (itself a scaled t): (df + 1 - 1/power) * power.
double PowerDf(double df, double power) { return (df + 1 - 1 / power) * power; }

Status Validate(const CrdDesign& d) {
  if (d.levels < 2) {
    return InvalidArgument("CRD codebook needs levels >= 2, got " + std::to_string(d.levels));
  }
  if (d.levels > kMaxLevels) {
    return InvalidArgument("CRD codebook levels " + std::to_string(d.levels) +
                           " exceeds the maximum " + std::to_string(kMaxLevels));
  }
  if (d.mode != CrdMode::kSymmetric && d.levels % 2 != 0) {
    return InvalidArgument(std::string("CRD mode '") + ModeName(d.mode) +
                           "' needs an even number of levels, got " + std::to_string(d.levels));
  }
  if (d.mode == CrdMode::kRepeatZero && d.levels < 4) {
    // With 2 levels the reference's grid degenerates to {0, 0} (rms) or {-1, 0} (absmax).
    return InvalidArgument("CRD mode 'repeat_zero' needs levels >= 4, got " +
                           std::to_string(d.levels));
  }
  if (!std::isfinite(d.power) || d.power < 0) {
    return InvalidArgument("CRD power must be finite and >= 0, got " + std::to_string(d.power));
  }
  if (d.power == 0 && d.range == CrdRange::kRms) {
    return InvalidArgument(
        "CRD power=0 (uniform) cannot be used with rms scaling: pdf^0 does "
        "not normalise on an unbounded range");
  }
  const bool block = d.range != CrdRange::kRms;
  if (block && d.block_size < 2) {
    return InvalidArgument("CRD block design needs block_size >= 2, got " +
                           std::to_string(d.block_size));
  }
  if (block && d.power > 0 && d.dist != Distribution::kLaplace && d.block_size < 4) {
    // m = sqrt(2 ln(B / pi)) (normal) and the t equivalent need B > pi.
    return InvalidArgument(
        "CRD normal / Student-t block design needs block_size >= 4 (expected "
        "block absmax uses ln(B/pi)), got " +
        std::to_string(d.block_size));
  }
  if (IsStudentT(d)) {
    if (!std::isfinite(d.df) || !(d.df > 2)) {
      return InvalidArgument("CRD Student-t needs finite df > 2, got df=" + std::to_string(d.df));
    }
    if (d.power > 0 && !(PowerDf(d.df, d.power) > 0)) {
      return InvalidArgument("CRD Student-t with df=" + std::to_string(d.df) +
                             " and power=" + std::to_string(d.power) +
                             " gives df' = power*(df+1) - 1 <= 0 (pdf^power does not normalise)");
    }
  }
  return Status::Ok();
}

// The quantile function of the (normalised) density pdf^power for the design, defined on
// (0, 1); rms designs give unit-RMS data units, block designs give values in [-1, 1].
std::function<double(double)> DesignIcdf(const CrdDesign& d) {
  const double alpha = d.power;
  if (d.range == CrdRange::kRms) {
    switch (d.dist) {
      case Distribution::kNormal: {
        const double scale = std::pow(alpha, -0.5);
        return [scale](double p) { return NormalPpf(p, scale); };
      }
      case Distribution::kLaplace: {
        const double scale = 1 / (alpha * std::sqrt(2.0));
        return [scale](double p) { return LaplacePpf(p, scale); };
      }
      case Distribution::kStudentT: {
        const double df_power = PowerDf(d.df, alpha);
        const double scale = std::sqrt((d.df - 2) / df_power);
        return [df_power, scale](double p) { return StudentTPpf(p, df_power, scale); };
      }
    }
  }
  const double block = static_cast<double>(d.block_size);
  switch (d.dist) {
    case Distribution::kNormal: {
      // Expected block absmax in sigma units, then the pdf^power scale relative to it.
      const double m = std::sqrt(2 * std::log(block / std::numbers::pi));
      const double s = std::pow(alpha, -0.5) / m;
      return [s](double p) { return TruncNormalPpf(p, -1 / s, 1 / s, s); };
    }
    case Distribution::kLaplace: {
      const double m = kRefEulerGamma + std::log(block);
      const double s = (1 / alpha) / m;
      return [s](double p) { return TruncLaplacePpf(p, 1 / s, s); };
    }
    case Distribution::kStudentT: {
      // Expected block absmax m = [(2 ln(B/pi))^((df-3)/2) B]^(1/df) sqrt(df/(df-2)), evaluated
      // in log space: the inner power overflows double for large df (e.g. df = 1000).
      const double df = d.df;
      const double m = std::exp(
          ((df - 3) / 2 * std::log(2 * std::log(block / std::numbers::pi)) + std::log(block)) / df +
          0.5 * std::log(df / (df - 2)));
      const double df_power = PowerDf(df, alpha);
      const double scale = std::sqrt(df / df_power);
      return [m, df_power, scale](double p) {
        return TruncStudentTPpf(p, df_power, -m, m, scale) / m;
      };
    }
  }
  return [](double) { return std::nan(""); };
}

}  // namespace

Result<std::vector<double>> CrdCodebook(const CrdDesign& design) {
  OWF_RETURN_IF_ERROR(Validate(design));
  OWF_ASSIGN_OR_RETURN(const GridFlags flags, FlagsFor(design.mode, design.range));
  const std::vector<double> grid = ProbabilityGrid(flags, design.levels);
  if (static_cast<int>(grid.size()) != design.levels) {
    return Internal("CRD probability grid has " + std::to_string(grid.size()) + " points, want " +
                    std::to_string(design.levels));
  }
  std::vector<double> values;
  values.reserve(grid.size());
  if (design.power == 0) {
    for (double p : grid) values.push_back(2 * p - 1);  // exact: p is an fp32 value
  } else {
    const std::function<double(double)> icdf = DesignIcdf(design);
    for (double p : grid) {
      // All densities are symmetric about 0, and block designs span exactly [-1, 1]: the grid's
      // end points and its centre map to exact values.
      double v;
      if (p == 0.5) {
        v = 0.0;
      } else if (design.range != CrdRange::kRms && (p == 0 || p == 1)) {
        v = p == 0 ? -1.0 : 1.0;
      } else {
        v = icdf(p);
      }
      if (!std::isfinite(v)) {
        return InvalidArgument("CRD design gives a non-finite centroid at probability " +
                               std::to_string(p) + " (levels=" + std::to_string(design.levels) +
                               ", power=" + std::to_string(design.power) + ")");
      }
      values.push_back(v);
    }
  }
  std::sort(values.begin(), values.end());
  return values;
}

}  // namespace owf
