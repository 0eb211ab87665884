#include "owf/stats/synthetic.h"

#include <cmath>
#include <numbers>
#include <random>

namespace owf {
namespace {

class Source {
 public:
  explicit Source(uint64_t seed) : rng_(seed) {}
  // Uniform in (0, 1): 53 random bits, never 0.
  double Uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1p-53; }
  double Normal() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(Uniform()));
    const double theta = 2.0 * std::numbers::pi * Uniform();
    spare_ = r * std::sin(theta);
    have_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool have_spare_ = false;
};

}  // namespace

Tensor SyntheticTensor(Distribution dist, int df, int64_t rows, int64_t cols, uint64_t seed, float scale) {
  Tensor t;
  t.shape = {rows, cols};
  t.data.resize(static_cast<size_t>(rows * cols));
  Source src(seed);
  for (float& v : t.data) {
    double x = 0;
    switch (dist) {
      case Distribution::kNormal: x = src.Normal(); break;
      case Distribution::kLaplace: {
        // Inverse cdf; scale 1/sqrt(2) has unit variance.
        const double u = src.Uniform() - 0.5;
        x = -std::copysign(1.0, u) * std::log(1.0 - 2.0 * std::fabs(u)) / std::numbers::sqrt2;
        break;
      }
      case Distribution::kStudentT: {
        double chi2 = 0;
        for (int i = 0; i < df; ++i) {
          const double z = src.Normal();
          chi2 += z * z;
        }
        x = src.Normal() / std::sqrt(chi2 / df) * std::sqrt((df - 2.0) / df);
        break;
      }
    }
    v = static_cast<float>(x * scale);
  }
  return t;
}

}  // namespace owf
