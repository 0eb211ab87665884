// The tensor quantiser: design or fit the element format, scale, snap, outliers, bits.
#include "owf/formats/quantise.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>

#include "fit.h"
#include "owf/core/numeric.h"
#include "owf/core/parallel.h"
#include "owf/entropy/coder.h"
#include "owf/formats/rotation.h"
#include "owf/stats/crd.h"
#include "opt_scale.h"
#include "scaling.h"

namespace owf {
namespace {

constexpr int64_t kMaxSample = int64_t{1} << 22;  // fitting uses at most this many elements

float CastOutlier(float v, ElementFamily f) {
  switch (f) {
    case ElementFamily::kBf16: return RoundBf16(std::clamp(v, -kBf16Max, kBf16Max));
    case ElementFamily::kFp16: return RoundFp16(std::clamp(v, -kFp16Max, kFp16Max));
    default: return v;
  }
}
int CastBits(ElementFamily f) { return f == ElementFamily::kFp32 ? 32 : 16; }

CrdRange CrdRangeFor(const std::optional<ScalingSpec>& scaling) {
  // The block designs need a block; per-channel / per-tensor absmax use the rms design with the
  // format's own range (the reference's behaviour, reference-spec.md section 6).
  if (!scaling || scaling->kind == ScaleKind::kRms || scaling->block != BlockKind::kBlock)
    return CrdRange::kRms;
  return scaling->kind == ScaleKind::kSignmax ? CrdRange::kSignmax : CrdRange::kAbsmax;  // opt: absmax design
}

Result<ElementFormat> DesignCrd(const FormatSpec& spec, double df) {
  const ElementSpec& e = spec.element;
  CrdDesign d;
  d.dist = e.dist;
  d.df = df;
  d.mode = e.mode;
  d.range = CrdRangeFor(spec.scaling);
  d.power = e.power;
  d.levels = static_cast<int>(std::llround(std::exp2(e.bits)));
  d.block_size = !spec.scaling ? 0
                 : spec.scaling->two_level() ? spec.scaling->sub_block
                                             : spec.scaling->block_rows * spec.scaling->block_cols;
  auto values = CrdCodebook(d);
  if (!values.ok()) return values.status().WithContext(ToString(spec.element));
  std::vector<float> c(values->begin(), values->end());
  return ElementFormat::Lut(std::move(c), e.bits);
}

// The reference's df grid for crd(t) without df: 2^linspace(log2 3, log2 100, 12).
std::vector<double> DfGrid() {
  std::vector<double> g;
  for (int i = 0; i < 12; ++i) g.push_back(std::exp2(std::log2(3.0) + (std::log2(100.0) - std::log2(3.0)) * i / 11.0));
  return g;
}

struct Prepared {
  std::vector<float> scales;  // empty when unscaled
  std::unique_ptr<SortedSample> sample;
  float max_abs_y = 0;
  double sample_fraction = 1;  // sample size / numel
};

// Scales for the given element range, and a sorted sample of the normalised values.
Prepared Prepare(const FormatSpec& spec, const float* x, const BlockGeometry& g, float lo, float hi,
                 const QuantiseOptions& opt, bool want_sample) {
  Prepared p;
  if (spec.scaling) {
    p.scales = ComputeScales(x, g, spec.scaling->kind, lo, hi, spec.scaling->format, opt.threads);
  }
  if (!want_sample) return p;
  const int64_t n = g.rows * g.cols;
  const int64_t m = std::min(n, kMaxSample);
  const int64_t stride = (n + m - 1) / m;  // every stride-th element (all when n <= kMaxSample)
  std::vector<float> y, w;
  y.reserve(static_cast<size_t>(n / stride + 1));
  w.reserve(y.capacity());
  const int64_t across = g.blocks_across();
  int64_t idx = 0;
  for (int64_t r = 0; r < g.rows; ++r) {
    for (int64_t b = 0; b < across; ++b) {
      const float s = p.scales.empty() ? 1.0f : p.scales[static_cast<size_t>((r / g.block_rows) * across + b)];
      const float ws = s * s;
      const int64_t c1 = std::min(g.cols, (b + 1) * g.block_cols);
      for (int64_t c = b * g.block_cols; c < c1; ++c, ++idx) {
        const float yi = s != 0.0f ? x[idx] / s : x[idx];
        p.max_abs_y = std::max(p.max_abs_y, std::fabs(yi));
        if (idx % stride != 0) continue;
        y.push_back(yi);
        w.push_back(opt.importance ? ws * (*opt.importance)[static_cast<size_t>(idx)] : ws);
      }
    }
  }
  const int64_t taken = static_cast<int64_t>(y.size());
  p.sample_fraction = static_cast<double>(taken) / static_cast<double>(n);
  p.sample = std::make_unique<SortedSample>(std::move(y), std::move(w));
  return p;
}

double SampleError(const SortedSample& s, const ElementFormat& f) {
  if (f.is_nearest()) return s.Error(f.centroids());
  double e = 0;
  std::span<const float> y = s.values();
  for (float v : y) {
    const double d = static_cast<double>(f.Quantise(v)) - v;
    e += d * d;  // rz/ri search is unweighted: a rare path
  }
  return e;
}

// Golden-section search of f(t) over [a, b]; returns the best t seen (including `best`).
template <typename F>
double GoldenMin(F f, double a, double b, double best_t, double best_v, int iters) {
  const double r = (std::sqrt(5.0) - 1) / 2;
  double c = b - r * (b - a), d = a + r * (b - a);
  double fc = f(c), fd = f(d);
  for (int i = 0; i < iters; ++i) {
    if (fc < best_v) best_v = fc, best_t = c;
    if (fd < best_v) best_v = fd, best_t = d;
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - r * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd, d = a + r * (b - a), fd = f(d);
    }
  }
  if (fc < best_v) best_v = fc, best_t = c;
  if (fd < best_v) best_t = d;
  return best_t;
}

struct Choice {
  ElementFormat element;
  std::vector<float> scales;
  std::string fitted;
};

// Chooses df (crd(t) without df) and, with +search, the format scale, minimising the error.
Result<Choice> SearchElement(const FormatSpec& spec, const float* x, const BlockGeometry& g,
                             const QuantiseOptions& opt) {
  const bool search_df = spec.element.family == ElementFamily::kCrd &&
                         spec.element.dist == Distribution::kStudentT && !spec.element.df;
  std::vector<double> dfs = search_df ? DfGrid() : std::vector<double>{spec.element.df.value_or(0)};
  double base = 1;
  std::vector<double> exps = {0};
  if (spec.search) {
    exps.clear();
    for (int k = -8; k <= 8; ++k) exps.push_back(k / 4.0);
  }
  std::map<std::pair<float, float>, Prepared> by_range;
  auto design = [&](double df) -> Result<ElementFormat> {
    if (spec.element.family == ElementFamily::kCrd) return DesignCrd(spec, df);
    return DesignElement(spec);
  };
  // Normalised values depend on the element's range only through absmax/signmax scaling.
  const bool range_matters = spec.scaling && spec.scaling->kind != ScaleKind::kRms;
  auto prepared_for = [&](const ElementFormat& f) -> Prepared& {
    auto key = range_matters ? std::make_pair(f.lo(), f.hi()) : std::make_pair(0.0f, 0.0f);
    auto it = by_range.find(key);
    if (it == by_range.end()) it = by_range.emplace(key, Prepare(spec, x, g, f.lo(), f.hi(), opt, true)).first;
    return it->second;
  };
  double best_err = INFINITY, best_df = dfs[0], best_exp = 0;
  for (double df : dfs) {
    OWF_ASSIGN_OR_RETURN(ElementFormat f, design(df));
    if (f.kind() == ElementFormat::Kind::kInt && spec.scaling && spec.scaling->kind == ScaleKind::kRms)
      base = std::sqrt(3.0) / f.hi();  // a unit-RMS uniform spans +-sqrt(3)
    Prepared& p = prepared_for(f);
    for (double e : exps) {
      const double err = SampleError(*p.sample, f.WithScale(static_cast<float>(base * std::exp2(e))));
      if (err < best_err) best_err = err, best_df = df, best_exp = e;
    }
  }
  // Refine continuously around the best grid point (never worse than the grid).
  if (search_df) {
    auto err_df = [&](double log_df) {
      auto f = design(std::exp2(log_df));
      if (!f.ok()) return static_cast<double>(INFINITY);
      Prepared& p = prepared_for(*f);
      return SampleError(*p.sample, f->WithScale(static_cast<float>(base * std::exp2(best_exp))));
    };
    const double step = (std::log2(100.0) - std::log2(3.0)) / 11.0;
    const double l = std::log2(best_df);
    best_df = std::exp2(GoldenMin(err_df, std::max(std::log2(2.5), l - step), l + step, l, best_err, 20));
  }
  OWF_ASSIGN_OR_RETURN(ElementFormat best, design(best_df));
  Prepared& p = prepared_for(best);
  if (spec.search) {
    auto err_scale = [&](double e) {
      return SampleError(*p.sample, best.WithScale(static_cast<float>(base * std::exp2(e))));
    };
    const double cur = err_scale(best_exp);
    best_exp = GoldenMin(err_scale, best_exp - 0.25, best_exp + 0.25, best_exp, cur, 30);
  }
  Choice choice;
  const float scale = static_cast<float>(base * std::exp2(best_exp));
  choice.element = scale == 1.0f ? best : best.WithScale(scale);
  choice.scales = std::move(p.scales);
  if (search_df) choice.fitted += "df=" + FormatNumber(std::round(best_df * 1000) / 1000);
  if (spec.search) choice.fitted += std::string(choice.fitted.empty() ? "" : " ") + "scale=" + FormatNumber(scale);
  return choice;
}

Result<Choice> FitLloydElement(const FormatSpec& spec, const float* x, const BlockGeometry& g,
                               const QuantiseOptions& opt) {
  Prepared p = Prepare(spec, x, g, -1.0f, 1.0f, opt, true);
  const int levels = static_cast<int>(std::llround(std::exp2(spec.element.bits)));
  std::vector<float> c = FitLloyd(*p.sample, levels);
  Choice choice{ElementFormat::Lut(std::move(c), std::log2(static_cast<double>(levels))),
                std::move(p.scales), "lloyd"};
  return choice;
}

Result<Choice> FitGrid(const FormatSpec& spec, const float* x, const BlockGeometry& g,
                       const QuantiseOptions& opt, double target) {
  Prepared p = Prepare(spec, x, g, -1.0f, 1.0f, opt, true);
  const bool bounded = spec.scaling && spec.scaling->kind != ScaleKind::kRms;
  const double extent = bounded ? 1.0 : std::max(p.max_abs_y, kFp32MinNormal);
  const double n = static_cast<double>(g.rows * g.cols);
  const double scale_bits = spec.scaling ? static_cast<double>(p.scales.size()) * ScaleFormatBits(spec.scaling->format) : 0.0;
  auto bits_at = [&](double log_res) {
    const std::vector<float> grid = UniformGrid(std::exp2(log_res), extent);
    if (grid.size() > 65535) return static_cast<double>(INFINITY);
    const std::vector<int64_t> counts = p.sample->Counts(grid);
    return (IdealCodeBits(counts) / p.sample_fraction + scale_bits) / n;
  };
  double lo = std::log2(extent) - 16, hi = std::log2(extent) + 1;  // bits(lo) high, bits(hi) ~0
  if (!(bits_at(lo) >= target)) {
    return InvalidArgument("grid(" + FormatNumber(target) + "): the bit budget needs more than 65535 grid points");
  }
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (bits_at(mid) >= target ? lo : hi) = mid;
  }
  const double log_res = std::fabs(bits_at(lo) - target) < std::fabs(bits_at(hi) - target) ? lo : hi;
  std::vector<float> grid = UniformGrid(std::exp2(log_res), extent);
  const double levels = static_cast<double>(grid.size());
  Choice choice{ElementFormat::Lut(std::move(grid), std::log2(levels)), std::move(p.scales),
                "resolution=" + FormatNumber(static_cast<float>(std::exp2(log_res))) +
                    " levels=" + FormatNumber(levels)};
  return choice;
}

// Top-k |x|, or with importance w the top-k w x^2 (the weighted error an element would cause;
// ties: lower index first), ascending indices.
std::vector<int64_t> SelectOutliers(const Tensor& x, int64_t k, const std::vector<float>* importance) {
  const int64_t n = x.numel();
  if (k <= 0) return {};
  std::vector<float> key(x.data.size());
  for (int64_t i = 0; i < n; ++i)
    key[i] = importance ? (*importance)[i] * x.data[i] * x.data[i] : std::fabs(x.data[i]);
  std::vector<float> mag = key;
  std::nth_element(mag.begin(), mag.begin() + (k - 1), mag.end(), std::greater<float>());
  const float threshold = mag[static_cast<size_t>(k - 1)];
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i)
    if (key[i] > threshold) idx.push_back(i);
  for (int64_t i = 0; i < n && static_cast<int64_t>(idx.size()) < k; ++i)
    if (key[i] == threshold) idx.push_back(i);
  std::sort(idx.begin(), idx.end());
  return idx;
}

void SnapAll(const ElementFormat& element, const std::vector<float>& scales, const float* xd, const BlockGeometry& g,
             int threads, float* values, uint16_t* codes) {
  const int64_t rpc = RowsPerChunk(g.cols);
  const int64_t chunks = (g.rows + rpc - 1) / rpc;
  const int64_t across = g.blocks_across();
  ParallelFor(static_cast<size_t>(chunks), threads, [&](size_t chunk) {
    const int64_t r0 = static_cast<int64_t>(chunk) * rpc, r1 = std::min(g.rows, r0 + rpc);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t b = 0; b < across; ++b) {
        const int64_t c0 = b * g.block_cols, c1 = std::min(g.cols, c0 + g.block_cols);
        const float s = scales.empty() ? 1.0f : scales[static_cast<size_t>((r / g.block_rows) * across + b)];
        const int64_t off = r * g.cols + c0;
        element.QuantiseScaled(std::span<const float>(xd + off, static_cast<size_t>(c1 - c0)), s, values + off,
                               codes ? codes + off : nullptr);
      }
    }
  });
}

// opt/optmin scaling: every block's scale (and min) fitted for the codebook, which is the
// element's own or, for lloyd<b>, fitted jointly with the scales. Fills the element, scales,
// codes and values.
Status QuantiseOpt(const FormatSpec& spec, const float* xd, const BlockGeometry& g, const QuantiseOptions& opt,
                   QuantisedTensor* out) {
  const ScalingSpec& sc = *spec.scaling;
  const OptLayout L = MakeOptLayout(sc, g);
  const int64_t n = g.rows * g.cols;
  const float* imp = opt.importance ? opt.importance->data() : nullptr;
  if (spec.element.family == ElementFamily::kLloyd) {
    const int levels = static_cast<int>(std::llround(std::exp2(spec.element.bits)));
    std::vector<float> init(static_cast<size_t>(levels));
    for (int i = 0; i < levels; ++i) init[i] = static_cast<float>(i) / static_cast<float>(std::max(levels - 1, 1));
    if (!sc.with_min()) {  // start from the cube-root codebook for normal data and this block size
      FormatSpec crd = spec;
      crd.element = ElementSpec{};
      crd.element.family = ElementFamily::kCrd;
      crd.element.bits = std::log2(static_cast<double>(levels));
      crd.element.dist = Distribution::kNormal;
      auto designed = DesignCrd(crd, 0);
      if (designed.ok()) {
        init = designed->centroids();
      } else {
        for (float& v : init) v = 2 * v - 1;
      }
    }
    std::vector<float> cb = FitJointCodebook(xd, imp, L, levels, std::move(init), opt.threads);
    // Carry the tensor's magnitude (3 x its rms) in the codebook, so that block scales stay near
    // 1 whatever the weights' magnitude: within the range of fp16 and e4m3 super-block scales.
    double sumsq = 0;
    for (int64_t i = 0; i < n; ++i) sumsq += static_cast<double>(xd[i]) * xd[i];
    const float magnitude = static_cast<float>(3.0 * std::sqrt(sumsq / static_cast<double>(n)));
    if (magnitude > 0 && std::isfinite(magnitude))
      for (float& v : cb) v *= magnitude;
    out->element = ElementFormat::Lut(std::move(cb), std::log2(static_cast<double>(levels)));
    out->fitted = "lloyd+opt levels=" + std::to_string(levels);
  } else {
    OWF_ASSIGN_OR_RETURN(ElementFormat e, DesignElement(spec));
    out->element = ElementFormat::Lut(e.centroids(), e.bits());
  }
  const std::vector<float>& cb = out->element.centroids();
  out->codes.resize(static_cast<size_t>(n));
  OptScales s = OptimiseScales(xd, imp, L, cb, opt.threads, out->codes.data());
  // Values from (code, scale, min) alone, exactly as a decoder computes them.
  const bool with_min = sc.with_min();
  const int64_t across = g.blocks_across();
  float* values = out->values.data.data();
  const int64_t rpc = RowsPerChunk(g.cols);
  ParallelFor(static_cast<size_t>((g.rows + rpc - 1) / rpc), opt.threads, [&](size_t chunk) {
    const int64_t r0 = static_cast<int64_t>(chunk) * rpc, r1 = std::min(g.rows, r0 + rpc);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < g.cols; ++c) {
        const size_t b = static_cast<size_t>(r * across + c / g.block_cols), i = static_cast<size_t>(r * g.cols + c);
        values[i] = OptValue(cb[out->codes[i]], s.scales[b], with_min ? s.mins[b] : 0.0f, with_min);
      }
    }
  });
  out->scales = std::move(s.scales);
  out->mins = std::move(s.mins);
  out->super_scales = std::move(s.super_scales);
  out->super_mins = std::move(s.super_mins);
  out->sub_scales = std::move(s.sub_scales);
  out->sub_mins = std::move(s.sub_mins);
  return Status::Ok();
}

double ScaleBits(const QuantisedTensor& q) {
  const ScalingSpec& s = *q.spec.scaling;
  const double per_scale = ScaleFormatBits(s.format) * (s.with_min() ? 2.0 : 1.0);
  if (!s.two_level()) return static_cast<double>(q.scales.size()) * per_scale;
  return static_cast<double>(q.super_scales.size()) * per_scale +
         static_cast<double>(q.scales.size()) * (s.sub_bits + s.min_bits);
}

}  // namespace

Result<ElementFormat> DesignElement(const FormatSpec& spec, std::optional<double> df) {
  const ElementSpec& e = spec.element;
  switch (e.family) {
    case ElementFamily::kInt: return ElementFormat::Int(e.bits, e.symmetric);
    case ElementFamily::kFloat: return ElementFormat::Float(e.exponent_bits, e.mantissa_bits, e.rounding);
    case ElementFamily::kNf4: return ElementFormat::Lut(Nf4Table(), 4);
    case ElementFamily::kSf4: return ElementFormat::Lut(Sf4Table(), 4);
    case ElementFamily::kLut: {
      std::vector<float> c(e.lut.begin(), e.lut.end());
      return ElementFormat::Lut(std::move(c), std::log2(static_cast<double>(e.lut.size())));
    }
    case ElementFamily::kCrd: {
      const std::optional<double> d = df ? df : e.df;
      if (e.dist == Distribution::kStudentT && !d)
        return InvalidArgument(ToString(e) + ": df is chosen per tensor; give df= to see a codebook");
      return DesignCrd(spec, d.value_or(0));
    }
    case ElementFamily::kLloyd:
    case ElementFamily::kGrid:
      return InvalidArgument(ToString(e) + ": this codebook is fitted to a tensor; use `owf measure`");
    case ElementFamily::kBf16:
    case ElementFamily::kFp16:
    case ElementFamily::kFp32: return ElementFormat::Cast(e.family);
  }
  return Internal("unknown element family");
}

Result<QuantisedTensor> QuantiseTensor(const FormatSpec& spec, const Tensor& x,
                                       const QuantiseOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = x.numel();
  if (n <= 0) return InvalidArgument("tensor " + x.ShapeString() + " has no elements");
  if (static_cast<int64_t>(x.data.size()) != n) return Internal("tensor data does not match its shape");
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x.data[i])) {
      return InvalidData("weight at flat index " + std::to_string(i) + " (row " +
                         std::to_string(i / x.cols()) + ", column " + std::to_string(i % x.cols()) +
                         ") is " + (std::isnan(x.data[i]) ? "NaN" : "infinite") +
                         "; owf quantises finite weights only");
    }
  }
  if (opt.importance) {
    if (static_cast<int64_t>(opt.importance->size()) != n)
      return InvalidArgument("importance weights have " + std::to_string(opt.importance->size()) +
                             " elements, the tensor " + std::to_string(n));
    for (size_t i = 0; i < opt.importance->size(); ++i) {
      const float w = (*opt.importance)[i];
      if (!(w >= 0) || !std::isfinite(w))
        return InvalidData("importance weight at flat index " + std::to_string(i) + " is " + std::to_string(w) +
                           "; weights must be finite and >= 0");
    }
  }
  QuantisedTensor out;
  out.spec = spec;
  if (spec.scaling) {
    OWF_ASSIGN_OR_RETURN(out.geometry, MakeGeometry(*spec.scaling, x.rows(), x.cols()));
  } else {
    out.geometry = BlockGeometry{x.rows(), x.cols(), x.rows(), x.cols()};
  }
  const BlockGeometry& g = out.geometry;

  // Outliers are removed before anything is fitted or scaled.
  const Tensor* dense = &x;
  Tensor zeroed;
  if (spec.outliers) {
    const int64_t k = static_cast<int64_t>(std::floor(spec.outliers->fraction * static_cast<double>(n)));
    out.outlier_indices = SelectOutliers(x, k, opt.importance);
    zeroed = x;
    for (int64_t i : out.outlier_indices) zeroed.data[static_cast<size_t>(i)] = 0.0f;
    dense = &zeroed;
  }
  Tensor rotated;
  if (spec.rotate_seed) {
    rotated = *dense;
    HadamardRotate(rotated, *spec.rotate_seed, /*inverse=*/false, opt.threads);
    dense = &rotated;
    out.rotation_seed = spec.rotate_seed;
  }
  const float* xd = dense->data.data();

  const ElementSpec& e = spec.element;
  const bool crd_t_fit = e.family == ElementFamily::kCrd && e.dist == Distribution::kStudentT && !e.df;
  const bool opt_scaled = spec.scaling && spec.scaling->optimised();
  out.values.shape = x.shape;
  out.values.data.resize(static_cast<size_t>(n));
  Choice choice;
  if (opt_scaled) {
    OWF_RETURN_IF_ERROR(QuantiseOpt(spec, xd, g, opt, &out));
  } else if (e.family == ElementFamily::kLloyd) {
    OWF_ASSIGN_OR_RETURN(choice, FitLloydElement(spec, xd, g, opt));
  } else if (e.family == ElementFamily::kGrid) {
    OWF_ASSIGN_OR_RETURN(choice, FitGrid(spec, xd, g, opt, e.bits));
  } else if (spec.search || crd_t_fit) {
    OWF_ASSIGN_OR_RETURN(choice, SearchElement(spec, xd, g, opt));
  } else {
    OWF_ASSIGN_OR_RETURN(choice.element, DesignElement(spec));
    if (spec.scaling) {
      choice.scales = ComputeScales(xd, g, spec.scaling->kind, choice.element.lo(), choice.element.hi(),
                                    spec.scaling->format, opt.threads);
    }
  }
  if (!opt_scaled) {
    out.element = std::move(choice.element);
    out.scales = std::move(choice.scales);
    out.fitted = std::move(choice.fitted);
  }

  // Snap every element; a grid sized for a real coder is refitted until the coded size hits
  // the budget (the coder's overhead over the ideal length is measured, then budgeted for).
  const bool real_coder = spec.entropy == EntropyCoding::kHuffman || spec.entropy == EntropyCoding::kRans;
  double grid_target = e.bits;
  for (int attempt = 0; !opt_scaled; ++attempt) {
    if (out.element.has_codes()) out.codes.resize(static_cast<size_t>(n));
    SnapAll(out.element, out.scales, xd, g, opt.threads, out.values.data.data(),
            out.codes.empty() ? nullptr : out.codes.data());
    if (!real_coder) break;
    const int levels = static_cast<int>(out.element.centroids().size());
    // One rANS slice per 64K codes (up to 32): enough to decode in parallel, and the slices'
    // final states (16 bytes each) stay negligible next to the payload.
    const int slices = static_cast<int>(std::clamp<int64_t>(n >> 16, 1, 32));
    auto stream = spec.entropy == EntropyCoding::kRans ? EncodeRans(out.codes, levels, slices, 0, opt.threads)
                                                      : EncodeHuffman(out.codes, levels);
    if (!stream.ok()) return stream.status().WithContext("entropy coding");
    out.entropy_stream = std::move(*stream);
    if (e.family != ElementFamily::kGrid || attempt == 4) break;
    const double scale_bits = spec.scaling ? static_cast<double>(out.scales.size()) * ScaleFormatBits(spec.scaling->format) : 0;
    const double real = (static_cast<double>(out.entropy_stream.size()) * 8 + scale_bits) / static_cast<double>(n);
    if (std::fabs(real - e.bits) <= 0.005) break;
    grid_target -= real - e.bits;
    OWF_ASSIGN_OR_RETURN(choice, FitGrid(spec, xd, g, opt, grid_target));
    out.element = std::move(choice.element);
    out.scales = std::move(choice.scales);
    out.fitted = std::move(choice.fitted);
  }
  if (spec.rotate_seed) HadamardRotate(out.values, *spec.rotate_seed, /*inverse=*/true, opt.threads);
  for (int64_t i : out.outlier_indices) {
    const float v = CastOutlier(x.data[static_cast<size_t>(i)], spec.outliers->format);
    out.outlier_values.push_back(v);
    out.values.data[static_cast<size_t>(i)] = v;
  }

  // Bits, as the reference counts them (real coders: the stream's size, tables included).
  if (spec.entropy != EntropyCoding::kNone) {
    std::vector<int64_t> counts(out.element.centroids().size(), 0);
    for (uint16_t c : out.codes) ++counts[c];
    out.ideal_element_bits = IdealCodeBits(counts);
    out.element_bits = real_coder ? static_cast<double>(out.entropy_stream.size()) * 8 : out.ideal_element_bits;
  } else {
    out.element_bits = std::ceil(out.element.bits() * static_cast<double>(n) - 1e-9);
  }
  if (spec.scaling) out.scale_bits = ScaleBits(out);
  if (spec.outliers) {
    out.outlier_bits = static_cast<double>(out.outlier_indices.size()) * (CastBits(spec.outliers->format) + 32);
  }
  // Error against the input, in fixed chunks (deterministic sums).
  const int64_t rpc = RowsPerChunk(g.cols);
  const int64_t chunks = (g.rows + rpc - 1) / rpc;
  std::vector<ErrorSums> partial(static_cast<size_t>(chunks));
  ParallelFor(static_cast<size_t>(chunks), opt.threads, [&](size_t chunk) {
    const int64_t r0 = static_cast<int64_t>(chunk) * rpc, r1 = std::min(g.rows, r0 + rpc);
    const size_t off = static_cast<size_t>(r0 * g.cols), len = static_cast<size_t>((r1 - r0) * g.cols);
    partial[chunk] = ComputeErrorSums(std::span<const float>(x.data.data() + off, len),
                                      std::span<const float>(out.values.data.data() + off, len));
  });
  for (const auto& p : partial) out.error.Add(p);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace owf
