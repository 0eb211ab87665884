// Descriptive statistics of a weight tensor: population moments and a zero-mean Student-t
// maximum-likelihood fit (reference-spec.md section 6, "Distribution MLE fits"). Analysis only:
// the quantisers do not use these.
#pragma once

#include <cstdint>
#include <span>

namespace owf {

// Population moments, accumulated in double.
struct TensorStats {
  int64_t count = 0;
  double mean = 0;
  double std = 0;              // sqrt(E[(x - mean)^2])
  double rms = 0;              // sqrt(E[x^2])
  double absmax = 0;           // max |x|
  double excess_kurtosis = 0;  // E[(x - mean)^4] / var^2 - 3
};

// Two passes (mean, then central moments) over fixed chunks whose boundaries depend only on
// x.size(); chunk results are combined in chunk order, so the result is bit-identical for any
// `threads` (0 = all cores).
//  - empty x: count 0, every other field NaN;
//  - constant x (e.g. all zero): std 0 and excess_kurtosis NaN (0 / 0);
//  - any NaN in x: every field but count is NaN; +-inf: absmax inf, the moments inf or NaN.
TensorStats ComputeStats(std::span<const float> x, int threads = 0);

struct StudentTFit {
  double df = 0;                   // degrees of freedom, from the grid below
  double scale = 0;                // s: x / s ~ t_df
  double mean_log_likelihood = 0;  // (1/n) sum log pdf(x_i; df, s), in nats
};

// Zero-mean Student-t MLE over the df grid {1, 1.5, ..., 9.5, 10, 12, ..., 18, 20, 30, ..., 100}.
// For each df the scale comes from the EM / IRLS iteration
//   w_i = (df + 1) s^2 / (x_i^2 + df s^2),   s^2 = mean(w_i x_i^2),
// started from w = 1 (s^2 = mean(x^2)) and stopped once s changes by less than 1e-3 relative
// (at most 200 iterations); the df with the largest mean log-likelihood wins (ties: the smaller
// df). Inputs longer than max_samples are subsampled deterministically: elements
// floor(i * n / max_samples) for i < max_samples. The df grid is searched on up to `threads`
// threads (0 = all cores); the result does not depend on the thread count.
//  - empty x: every field NaN;
//  - all-zero x: df NaN, scale 0, mean_log_likelihood NaN (no scale to fit);
//  - any NaN or +-inf among the samples used: every field NaN.
StudentTFit FitStudentT(std::span<const float> x, int64_t max_samples = int64_t{1} << 20,
                        int threads = 0);

}  // namespace owf
