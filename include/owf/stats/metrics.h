// Error metrics and the rate-distortion bounds that formats are judged against.
#pragma once

#include <cstdint>
#include <span>

namespace owf {

// Sums needed for every metric, accumulated in double.
struct ErrorSums {
  double sum_x = 0;      // sum x
  double sum_x2 = 0;     // sum x^2
  double sum_err2 = 0;   // sum (q - x)^2
  int64_t count = 0;

  void Add(const ErrorSums& o) {
    sum_x += o.sum_x;
    sum_x2 += o.sum_x2;
    sum_err2 += o.sum_err2;
    count += o.count;
  }
};

ErrorSums ComputeErrorSums(std::span<const float> x, std::span<const float> q);

struct ErrorMetrics {
  double rmse_norm = 0;   // sqrt(sum (q-x)^2 / sum x^2)   (the reference's metric)
  double snr_db = 0;      // 10 log10(sum x^2 / sum (q-x)^2)
  double efficiency = 0;  // rmse_norm * 2^bits (1 = Shannon bound for Gaussian data)
  // bits - R(D) of a Gaussian with the tensor's variance: R(D) = 0.5 log2(variance / MSE).
  // How many bits per element this format spends above the Shannon bound.
  double shannon_gap_bits = 0;
};

ErrorMetrics ComputeMetrics(const ErrorSums& sums, double bits_per_element);

}  // namespace owf

namespace owf {

// Differential entropy in bits of the distribution the samples come from, by Vasicek's
// m-spacing estimator on a sorted copy (m = round(sqrt(n))); at most `max_samples` evenly strided
// samples are used. Returns -inf for fewer than 4 samples or a degenerate sample.
double DifferentialEntropyBits(std::span<const float> x, int64_t max_samples = int64_t{1} << 20);

// rmse_norm that the Shannon bound allows at `bits` per element: for a Gaussian of the samples'
// variance, sigma / rms * 2^-bits; the Shannon lower bound from differential entropy h (bits):
// sqrt(2^(2h) / (2 pi e)) / rms * 2^-bits.
double GaussianBoundRmseNorm(double variance, double mean_square, double bits);
double ShannonLowerBoundRmseNorm(double entropy_bits, double mean_square, double bits);

}  // namespace owf
