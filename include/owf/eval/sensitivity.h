// Per-tensor sensitivity without gradients: iid Gaussian noise of std sigma = s * rms(theta_t)
// on one tensor alone changes the next-token distributions by KL ~ 0.5 sigma^2 sum_i F_ii, so
// the tensor's mean diagonal Fisher is F_t = 2 KL / (sigma^2 n_t). Measured at two noise levels
// to check the quadratic regime (the two estimates agree when it holds).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/eval/evaluate.h"

namespace owf {

struct TensorSensitivity {
  std::string name;
  int64_t elements = 0;
  double rms = 0;
  double noise[2] = {0, 0};       // s
  double kl[2] = {0, 0};          // mean KL (nats) at each level
  double fisher_mean[2] = {0, 0};
  double fisher_mean_value() const { return 0.5 * (fisher_mean[0] + fisher_mean[1]); }
  double agreement() const { return fisher_mean[1] > 0 ? fisher_mean[0] / fisher_mean[1] : 0; }
};

struct SensitivityOptions {
  EvalOptions sequences;  // which token sequences (text, tokens or generated)
  double noise_low = 0.05, noise_high = 0.1;
  uint64_t noise_seed = 7;
};

// Every 2-D float tensor of the model (the ones quantisation selects by default).
Result<std::vector<TensorSensitivity>> EstimateSensitivity(const std::string& model, const SensitivityOptions& o);

nlohmann::json SensitivityJson(const std::vector<TensorSensitivity>& s);

}  // namespace owf
