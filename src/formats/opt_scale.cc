// Per-block optimal scales, two-level scale quantisation and the joint codebook fit (opt_scale.h).
// Compiled with -ffp-contract=off: the fast and reference paths must round identically.
#include "opt_scale.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "fit.h"
#include "owf/core/parallel.h"

namespace owf {
namespace {

// Candidate scales, as multiples of the one that maps the block's range onto the codebook's.
// Codebooks of 16+ levels: smaller ones never won on normal, Laplace or Student-t data (the
// fixed4..fixed8 rmse were identical without them); fewer levels, and optmin's range-centred
// start, keep the wide set.
constexpr float kNarrowCandidates[] = {0.9f, 1.0f, 1.1f};
constexpr float kWideCandidates[] = {0.7f, 0.8f, 0.9f, 1.0f, 1.1f};
constexpr size_t kNarrowFromLevels = 16;
// Super-block scale candidates (h<b> sub-scales with some sub-block below the grid's range).
constexpr float kSuperShrink[] = {1.0f, 0.85f, 0.7f};
constexpr int kRefine = 2;            // extra assign + refit rounds from the best candidate
constexpr int kJointRounds = 3;       // (opt scales, Lloyd-Max) rounds of the joint codebook fit
constexpr int kLloydIterations = 12;  // per round
constexpr int64_t kJointSample = int64_t{1} << 15;  // elements the joint fit looks at

// The plain assignment: number of midpoints below y (ElementFormat's rule).
class ReferenceCode {
 public:
  explicit ReferenceCode(std::span<const float> c) {
    for (size_t i = 0; i + 1 < c.size(); ++i) mids_.push_back((c[i] + c[i + 1]) / 2.0f);
  }
  int operator()(float y) const {
    return static_cast<int>(std::lower_bound(mids_.begin(), mids_.end(), y) - mids_.begin());
  }

 private:
  std::vector<float> mids_;
};

// Codes of y_j = (x_j + m) * inv (m = 0 without a min) for j < len.
template <bool kMin, class Code>
inline void AssignCodes(const Code& code, const float* x, int64_t len, float m, float inv, int32_t* k) {
  if constexpr (std::is_same_v<Code, NearestCode>) {
    if (code.bucketed()) {
      for (int64_t j = 0; j < len; ++j) k[j] = code.Bucket(kMin ? (x[j] + m) * inv : x[j] * inv);
      return;
    }
  }
  for (int64_t j = 0; j < len; ++j) k[j] = code(kMin ? (x[j] + m) * inv : x[j] * inv);
}

struct Fit {
  float s = 0, m = 0;
  double err = INFINITY;
};

// Per-block sums for the closed-form refit.
struct Sums {
  double sw = 0, swx = 0, swxx = 0;     // of the block (fixed)
  double swc = 0, swcc = 0, swxc = 0;  // of the assigned codebook values
};

template <bool kWeighted, bool kMin, class Code>
class BlockFitter {
 public:
  BlockFitter(std::span<const float> cb, const Code& code, const OptLayout& layout)
      : cb_(cb), code_(code), layout_(layout) {
    range_ = std::max(-cb.front(), cb.back());
    width_ = cb.back() - cb.front();
    mid_c_ = (cb.front() + cb.back()) / 2.0f;
    zero_code_ = code_(0.0f);
    if (cb.size() >= kNarrowFromLevels) cands_ = kNarrowCandidates;
  }

  // The unquantised least-squares scale (and min) of one block.
  Fit FitBlock(const float* x, const float* w, int64_t n) const {
    Sums base;
    float amax = 0, xmin = x[0], xmax = x[0];
    for (int64_t i = 0; i < n; ++i) {
      const double wi = kWeighted ? w[i] : 1.0;
      base.sw += wi;
      base.swx += wi * x[i];
      base.swxx += wi * x[i] * x[i];
      amax = std::max(amax, std::fabs(x[i]));
      xmin = std::min(xmin, x[i]);
      xmax = std::max(xmax, x[i]);
    }
    Fit best;
    if (amax == 0 || !(base.sw > 0)) {
      best.err = base.swxx;
      return best;  // s = 0: every value is -m = 0
    }
    float s0 = amax / range_;
    float x_mid = 0;
    if constexpr (kMin) {
      if (xmax > xmin && width_ > 0) s0 = (xmax - xmin) / width_;
      x_mid = (xmax + xmin) / 2.0f;
    }
    for (float t : kMin ? std::span<const float>(kWideCandidates) : cands_) {
      const float s = s0 * t;
      const float m = kMin ? mid_c_ * s - x_mid : 0.0f;
      Consider(x, w, n, s, m, base, &best);
    }
    if constexpr (kMin) {
      // The plain absmax scale without a min (never worse than it), and each block end mapped
      // onto its codebook end (heavy tails: one outlier should not centre the range).
      Consider(x, w, n, amax / range_, 0.0f, base, &best);
      for (float t : cands_) {
        const float s = amax / range_ * t;
        Consider(x, w, n, s, cb_.front() * s - xmin, base, &best);
        Consider(x, w, n, s, cb_.back() * s - xmax, base, &best);
      }
    }
    for (int it = 0; it < kRefine; ++it) {
      const double before = best.err;
      Consider(x, w, n, best.s, best.m, base, &best);
      if (!(best.err < before)) break;
    }
    return best;
  }

  // Codes and squared error of the block at exactly (s, m).
  double Evaluate(const float* x, const float* w, int64_t n, float s, float m, uint16_t* codes) const {
    double err = 0;
    if (s == 0) {
      const float v = kMin ? -m : 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        codes[i] = static_cast<uint16_t>(zero_code_);
        const double d = static_cast<double>(v) - x[i];
        err += (kWeighted ? w[i] : 1.0) * d * d;
      }
      return err;
    }
    const float inv = 1.0f / s;
    double acc[4] = {0, 0, 0, 0};
    constexpr int64_t kChunk = 64;
    int32_t k[kChunk];
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t len = std::min(kChunk, n - i0);
      const float* xi = x + i0;
      AssignCodes<kMin>(code_, xi, len, m, inv, k);
      const float* c_of = cb_.data();
      for (int64_t j = 0; j < len; ++j) codes[i0 + j] = static_cast<uint16_t>(k[j]);
      int64_t j = 0;
      for (; j + 4 <= len; j += 4) {
        for (int l = 0; l < 4; ++l) {
          const double d = static_cast<double>(OptValue(c_of[k[j + l]], s, m, kMin)) - xi[j + l];
          acc[l] += (kWeighted ? static_cast<double>(w[i0 + j + l]) : 1.0) * d * d;
        }
      }
      for (; j < len; ++j) {
        const double d = static_cast<double>(OptValue(c_of[k[j]], s, m, kMin)) - xi[j];
        acc[j & 3] += (kWeighted ? static_cast<double>(w[i0 + j]) : 1.0) * d * d;
      }
    }
    err = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    return err;
  }

  int zero_code() const { return zero_code_; }

 private:
  // Assign at (s, m), refit in closed form, keep the refit if it is the best so far.
  void Consider(const float* x, const float* w, int64_t n, float s, float m, const Sums& base, Fit* best) const {
    if (!(s > 0) || !std::isfinite(s)) return;
    Sums sums = base;
    const float inv = 1.0f / s;
    // Codes in chunks (vectorisable), then the sums in 4 interleaved lanes (a fixed order).
    double a_wc[4] = {0, 0, 0, 0}, a_wcc[4] = {0, 0, 0, 0}, a_wxc[4] = {0, 0, 0, 0};
    constexpr int64_t kChunk = 64;
    int32_t k[kChunk];
    for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
      const int64_t len = std::min(kChunk, n - i0);
      const float* xi = x + i0;
      AssignCodes<kMin>(code_, xi, len, m, inv, k);
      const float* c_of = cb_.data();
      int64_t j = 0;
      for (; j + 4 <= len; j += 4) {
        for (int l = 0; l < 4; ++l) {
          const double c = c_of[k[j + l]];
          const double wc = kWeighted ? static_cast<double>(w[i0 + j + l]) * c : c;
          a_wc[l] += wc;
          a_wcc[l] += wc * c;
          a_wxc[l] += wc * static_cast<double>(xi[j + l]);
        }
      }
      for (; j < len; ++j) {
        const double c = c_of[k[j]];
        const double wc = kWeighted ? static_cast<double>(w[i0 + j]) * c : c;
        a_wc[j & 3] += wc;
        a_wcc[j & 3] += wc * c;
        a_wxc[j & 3] += wc * static_cast<double>(xi[j]);
      }
    }
    sums.swc += (a_wc[0] + a_wc[1]) + (a_wc[2] + a_wc[3]);
    sums.swcc += (a_wcc[0] + a_wcc[1]) + (a_wcc[2] + a_wcc[3]);
    sums.swxc += (a_wxc[0] + a_wxc[1]) + (a_wxc[2] + a_wxc[3]);
    double fs = 0, fu = 0;  // value = c * fs + fu (fu = -m)
    if constexpr (kMin) {
      const double det = sums.swcc * sums.sw - sums.swc * sums.swc;
      if (det > 1e-12 * sums.swcc * sums.sw) {
        fs = (sums.swxc * sums.sw - sums.swc * sums.swx) / det;
        fu = (sums.swcc * sums.swx - sums.swc * sums.swxc) / det;
      } else {
        fs = s;
        fu = (sums.swx - fs * sums.swc) / sums.sw;
      }
    } else {
      if (!(sums.swcc > 0)) return;
      fs = sums.swxc / sums.swcc;
    }
    if (!(fs > 0) || !std::isfinite(fs) || !std::isfinite(fu)) return;
    const double err = fs * fs * sums.swcc + 2 * fs * fu * sums.swc + fu * fu * sums.sw - 2 * fs * sums.swxc -
                       2 * fu * sums.swx + sums.swxx;
    if (err < best->err) {
      best->err = err;
      best->s = static_cast<float>(fs);
      best->m = static_cast<float>(-fu);
    }
  }

  std::span<const float> cb_;
  const Code& code_;
  const OptLayout& layout_;
  float range_ = 1, width_ = 1, mid_c_ = 0;
  int zero_code_ = 0;
  std::span<const float> cands_ = kWideCandidates;
};

// Stored multipliers q in [0, qmax] whose value q + offset is just below and above v / d.
int Candidates(float v, float d, int qmax, int offset, int out[2]) {
  if (!(d > 0)) {
    out[0] = 0;
    return 1;
  }
  const double k = std::clamp(static_cast<double>(v) / d - offset, 0.0, static_cast<double>(qmax));
  out[0] = static_cast<int>(std::floor(k));
  out[1] = std::min(out[0] + 1, qmax);
  return out[1] == out[0] ? 1 : 2;
}

struct Scratch {
  std::vector<uint16_t> codes, trial;
  std::vector<Fit> fits;
  std::vector<int> q;
};

// One unit (a super-block, or a block when single level) of n elements starting at column col0
// of its row: fits, quantises the scales and writes the codes. Outputs indexed from `block0`
// (blocks) and `super` (super-blocks).
template <bool kWeighted, bool kMin, class Code>
void FitUnit(const BlockFitter<kWeighted, kMin, Code>& fitter, const float* x, const float* w, int64_t n,
             const OptLayout& L, uint16_t* codes, int64_t block0, int64_t super, OptScales* out,
             Scratch& scratch) {
  const int64_t nb = (n + L.block - 1) / L.block;
  scratch.codes.resize(static_cast<size_t>(2 * L.block));
  scratch.fits.resize(static_cast<size_t>(nb));
  if (!L.super) {
    const Fit f = fitter.FitBlock(x, kWeighted ? w : nullptr, n);
    const float s = QuantiseScale(f.s, L.format);
    const float m = kMin ? QuantiseScale(f.m, L.format) : 0.0f;
    fitter.Evaluate(x, w, n, s, m, codes);
    out->scales[static_cast<size_t>(block0)] = s;
    if (kMin) out->mins[static_cast<size_t>(block0)] = m;
    return;
  }
  Fit* fits = scratch.fits.data();
  float smax = 0, mmax = 0;
  for (int64_t j = 0; j < nb; ++j) {
    const int64_t c0 = j * L.block, len = std::min(n - c0, L.block);
    fits[j] = fitter.FitBlock(x + c0, kWeighted ? w + c0 : nullptr, len);
    smax = std::max(smax, fits[j].s);
    if (kMin) mmax = std::max(mmax, fits[j].m);
  }
  const int qs_max = (1 << L.sub_bits) - 1, qm_max = kMin ? (1 << L.min_bits) - 1 : 0;
  const int off = L.sub_offset;  // h<b>: multipliers 2^b .. 2^(b+1) - 1; m<b>: 2^(b-1) ..
  const float dm = kMin && mmax > 0 ? QuantiseScale(mmax / static_cast<float>(qm_max), L.format) : 0.0f;
  // The super-block scale: the one that represents the largest sub-block scale exactly, or, when
  // some sub-block scale is below the grid's range (h<b>), smaller ones that trade clipping the
  // largest for finer steps elsewhere, keeping the lowest total error.
  float smin = smax;
  for (int64_t j = 0; j < nb; ++j) smin = std::min(smin, fits[j].s);
  const bool below_range = off > 0 && smin < smax * static_cast<float>(off) / static_cast<float>(qs_max + off);
  const int tries = below_range ? static_cast<int>(std::size(kSuperShrink)) : 1;
  scratch.trial.resize(static_cast<size_t>(2 * n));
  scratch.q.resize(static_cast<size_t>(4 * nb));
  uint16_t* best_codes = scratch.trial.data();
  uint16_t* try_codes = scratch.trial.data() + n;
  int* best_q = scratch.q.data();
  int* try_q = scratch.q.data() + 2 * nb;  // (q, p) per sub-block
  double best_total = INFINITY;
  float best_d = 0;
  for (int t = 0; t < tries; ++t) {
    const float d = smax > 0 ? QuantiseScale(smax * kSuperShrink[t] / static_cast<float>(qs_max + off), L.format) : 0.0f;
    double total = 0;
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t c0 = j * L.block, len = std::min(n - c0, L.block);
      int qs[2], qm[2] = {0, 0};
      const int ns = Candidates(fits[j].s, d, qs_max, off, qs);
      const int nm = kMin ? Candidates(std::max(fits[j].m, 0.0f), dm, qm_max, 0, qm) : 1;
      double best = INFINITY;
      uint16_t* trial = scratch.codes.data();
      uint16_t* kept = scratch.codes.data() + L.block;
      for (int a = 0; a < ns; ++a) {
        for (int b = 0; b < nm; ++b) {
          const float s = d * static_cast<float>(qs[a] + off);
          const float m = kMin ? dm * static_cast<float>(qm[b]) : 0.0f;
          const double e = fitter.Evaluate(x + c0, kWeighted ? w + c0 : nullptr, len, s, m, trial);
          if (e < best) {
            best = e, try_q[2 * j] = qs[a], try_q[2 * j + 1] = qm[b];
            std::swap(trial, kept);
          }
        }
      }
      std::copy(kept, kept + len, try_codes + c0);
      total += best;
    }
    if (total < best_total) {
      best_total = total, best_d = d;
      std::swap(best_codes, try_codes);
      std::swap(best_q, try_q);
    }
  }
  std::copy(best_codes, best_codes + n, codes);
  out->super_scales[static_cast<size_t>(super)] = best_d;
  if (kMin) out->super_mins[static_cast<size_t>(super)] = dm;
  for (int64_t j = 0; j < nb; ++j) {
    const size_t bi = static_cast<size_t>(block0 + j);
    out->sub_scales[bi] = static_cast<uint16_t>(best_q[2 * j]);
    out->scales[bi] = best_d * static_cast<float>(best_q[2 * j] + off);
    if (kMin) {
      out->sub_mins[bi] = static_cast<uint16_t>(best_q[2 * j + 1]);
      out->mins[bi] = dm * static_cast<float>(best_q[2 * j + 1]);
    }
  }
}

void Resize(const OptLayout& L, int64_t blocks, int64_t supers, OptScales* out) {
  out->scales.assign(static_cast<size_t>(blocks), 0.0f);
  if (L.with_min) out->mins.assign(static_cast<size_t>(blocks), 0.0f);
  if (L.super) {
    out->super_scales.assign(static_cast<size_t>(supers), 0.0f);
    out->sub_scales.assign(static_cast<size_t>(blocks), 0);
    if (L.with_min) {
      out->super_mins.assign(static_cast<size_t>(supers), 0.0f);
      out->sub_mins.assign(static_cast<size_t>(blocks), 0);
    }
  }
}

template <bool kWeighted, bool kMin, class Code>
OptScales RunTensor(const float* x, const float* w, const OptLayout& L, std::span<const float> cb, const Code& code,
                    int threads, uint16_t* codes) {
  const BlockFitter<kWeighted, kMin, Code> fitter(cb, code, L);
  const int64_t unit = L.super ? L.super : L.block;
  const int64_t units = (L.cols + unit - 1) / unit;
  const int64_t per_unit = unit / L.block;
  OptScales out;
  Resize(L, L.rows * L.blocks_across(), L.rows * units, &out);
  auto row = [&](int64_t r, Scratch& scratch) {
    for (int64_t u = 0; u < units; ++u) {
      const int64_t c0 = u * unit, len = std::min(L.cols - c0, unit);
      const int64_t off = r * L.cols + c0;
      FitUnit(fitter, x + off, kWeighted ? w + off : nullptr, len, L, codes + off, r * L.blocks_across() + u * per_unit,
              r * units + u, &out, scratch);
    }
  };
  if (threads == -1) {  // the reference: one thread, in order
    Scratch scratch;
    for (int64_t r = 0; r < L.rows; ++r) row(r, scratch);
    return out;
  }
  const int64_t rpc = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(L.cols, 1));
  const int64_t chunks = (L.rows + rpc - 1) / rpc;
  ParallelFor(static_cast<size_t>(chunks), threads, [&](size_t chunk) {
    Scratch scratch;
    const int64_t r0 = static_cast<int64_t>(chunk) * rpc, r1 = std::min(L.rows, r0 + rpc);
    for (int64_t r = r0; r < r1; ++r) row(r, scratch);
  });
  return out;
}

template <class Code>
OptScales Dispatch(const float* x, const float* w, const OptLayout& L, std::span<const float> cb, const Code& code,
                   int threads, uint16_t* codes, bool force_weighted) {
  const bool weighted = w != nullptr || force_weighted;
  std::vector<float> ones;
  if (weighted && !w) {
    ones.assign(static_cast<size_t>(L.rows * L.cols), 1.0f);
    w = ones.data();
  }
  if (weighted) {
    return L.with_min ? RunTensor<true, true>(x, w, L, cb, code, threads, codes)
                      : RunTensor<true, false>(x, w, L, cb, code, threads, codes);
  }
  return L.with_min ? RunTensor<false, true>(x, w, L, cb, code, threads, codes)
                    : RunTensor<false, false>(x, w, L, cb, code, threads, codes);
}

}  // namespace

NearestCode::NearestCode(std::span<const float> c) {
  int size = 1;
  while (size < static_cast<int>(c.size())) size *= 2;
  half_ = size / 2;
  mids_.assign(static_cast<size_t>(std::max<size_t>(size, c.size()) + 1), INFINITY);
  for (size_t i = 0; i + 1 < c.size(); ++i) mids_[i] = (c[i] + c[i + 1]) / 2.0f;
  const size_t nm = c.size() >= 2 ? c.size() - 1 : 0;
  if (nm == 0) return;
  double gap = INFINITY;
  for (size_t i = 0; i + 1 < nm; ++i) gap = std::min(gap, static_cast<double>(mids_[i + 1]) - mids_[i]);
  const double lo = c.front(), width = static_cast<double>(c.back()) - lo;
  if (!(width > 0) || !std::isfinite(width) || !(gap > 0)) return;
  // Bucket width <= gap / 2.5 and <= width / (4 x levels); at most 2^15 buckets.
  const double w = std::min(gap / 2.5, width / (4.0 * static_cast<double>(c.size())));
  const double buckets = std::ceil(width / w) + 3;
  if (!(buckets <= 32768)) return;
  const int nb = static_cast<int>(buckets);
  lo_ = static_cast<float>(lo);
  inv_width_ = static_cast<float>(1.0 / w);
  // Buckets as the lookup computes them: b = floor((y - lo) * inv_width); y in bucket b is at
  // least lo + (b - 0.01) / inv_width. The table counts midpoints below lo + (b - 0.5) / inv_width.
  const double step = 1.0 / static_cast<double>(inv_width_);
  if (!(static_cast<double>(nb - 1) * step >= width + step)) return;  // last bucket must reach past hi
  top_ = static_cast<float>(nb - 1);
  table_.resize(static_cast<size_t>(nb));
  size_t k = 0;
  for (int b = 0; b < nb; ++b) {
    const double start = lo + (static_cast<double>(b) - 0.5) * step;
    while (k < nm && static_cast<double>(mids_[k]) < start) ++k;
    table_[static_cast<size_t>(b)] = static_cast<int32_t>(k);
  }
}

OptLayout MakeOptLayout(const ScalingSpec& s, const BlockGeometry& g) {
  OptLayout L;
  L.rows = g.rows;
  L.cols = g.cols;
  L.with_min = s.with_min();
  L.format = s.format;
  if (s.two_level()) {
    L.block = s.sub_block;
    L.super = s.block_cols;
    L.sub_bits = s.sub_bits;
    L.min_bits = s.min_bits;
    L.sub_offset = s.sub_offset();
  } else {
    L.block = g.block_cols;
  }
  return L;
}

OptScales OptimiseScales(const float* x, const float* importance, const OptLayout& L, std::span<const float> cb,
                         int threads, uint16_t* codes, bool reference) {
  if (reference) return Dispatch(x, importance, L, cb, ReferenceCode(cb), -1, codes, /*force_weighted=*/true);
  return Dispatch(x, importance, L, cb, NearestCode(cb), threads, codes, false);
}

std::vector<float> FitJointCodebook(const float* x, const float* importance, const OptLayout& L, int levels,
                                    std::vector<float> cb, int threads) {
  // A sample of whole units (super-blocks, or blocks), evenly strided, as rows of one unit each.
  const int64_t unit = std::min(L.super ? L.super : L.block, L.cols);
  const int64_t units_across = (L.cols + unit - 1) / unit;
  const int64_t total = L.rows * units_across;
  // Enough samples per level for a stable codebook: 2^15 elements, or 512 per level (up to 2^18).
  const int64_t sample = std::min<int64_t>(std::max<int64_t>(kJointSample, 512 * int64_t{levels}), int64_t{1} << 18);
  const int64_t want = std::max<int64_t>(1, sample / unit);
  const int64_t stride = std::max<int64_t>(1, total / want);
  std::vector<float> xs, ws;
  std::vector<int64_t> lengths;
  for (int64_t k = 0; k < total; k += stride) {
    const int64_t r = k / units_across, c0 = (k % units_across) * unit, len = std::min(unit, L.cols - c0);
    if (len != unit) continue;  // partial units would need their own row length
    xs.insert(xs.end(), x + r * L.cols + c0, x + r * L.cols + c0 + len);
    if (importance) ws.insert(ws.end(), importance + r * L.cols + c0, importance + r * L.cols + c0 + len);
    lengths.push_back(len);
  }
  if (lengths.empty()) {  // rows shorter than a unit: sample whole rows instead
    const int64_t rstride = std::max<int64_t>(1, L.rows * L.cols / sample);
    for (int64_t r = 0; r < L.rows; r += rstride) {
      xs.insert(xs.end(), x + r * L.cols, x + (r + 1) * L.cols);
      if (importance) ws.insert(ws.end(), importance + r * L.cols, importance + (r + 1) * L.cols);
    }
  }
  OptLayout S = L;
  S.cols = lengths.empty() ? L.cols : unit;
  S.rows = static_cast<int64_t>(xs.size()) / S.cols;
  std::vector<uint16_t> codes(xs.size());
  auto normalise = [](std::vector<float>& c) {
    float a = 0;
    for (float v : c) a = std::max(a, std::fabs(v));
    if (a > 0)
      for (float& v : c) v /= a;
    std::sort(c.begin(), c.end());
  };
  normalise(cb);
  for (int round = 0; round < kJointRounds; ++round) {
    const OptScales sc = OptimiseScales(xs.data(), importance ? ws.data() : nullptr, S, cb, threads, codes.data());
    std::vector<float> y, wy;
    y.reserve(xs.size());
    wy.reserve(xs.size());
    const int64_t across = S.blocks_across();
    for (int64_t r = 0; r < S.rows; ++r) {
      for (int64_t c = 0; c < S.cols; ++c) {
        const size_t b = static_cast<size_t>(r * across + c / S.block), i = static_cast<size_t>(r * S.cols + c);
        const float s = sc.scales[b];
        if (!(s > 0)) continue;
        const float m = S.with_min ? sc.mins[b] : 0.0f;
        y.push_back((xs[i] + m) / s);
        wy.push_back(s * s * (importance ? ws[i] : 1.0f));
      }
    }
    if (y.empty()) break;
    const SortedSample sample(std::move(y), std::move(wy));
    cb = sample.Lloyd(std::move(cb), kLloydIterations);
    normalise(cb);
  }
  return cb;
}

}  // namespace owf
