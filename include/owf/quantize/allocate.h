// Bit allocation across tensors (reference-spec.md 7.2): keep each tensor's spec but choose its
// element bits so that KL ~ sum_t n_t F_t (eps sigma_t 2^-b_t)^2 is minimal for the budget:
//   b_t = b + delta_t - mean_n(delta),  delta_t = log2 rms_t + 0.5 log2 Fisher_t
// (rms alone without sensitivities). Unlike the reference, rounding and clamping are corrected
// so that the model's all-in bits per parameter (scales, outliers and kept tensors included)
// hits the budget: continuous-bit families (grid) within 0.01, integer-bit families (crd) as
// close as whole-bit steps allow (greedy by the continuous optimum).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/io/model.h"
#include "owf/quantize/plan.h"

namespace owf {

struct AllocationOptions {
  double bits_per_param = 4.0;               // all-in budget over every parameter
  const std::map<std::string, double>* fisher = nullptr;  // mean diagonal Fisher per tensor
  double min_bits = 2, max_bits = 8;
  int threads = 0;
};

struct Allocation {
  std::vector<PlanEntry> plan;   // specs with the chosen element bits
  double predicted_bits_per_param = 0;
};

// Element families whose bits can be chosen: int, crd, lloyd, grid (others: error naming the
// tensor). Reads every selected tensor once to measure its rms.
Result<Allocation> AllocateBits(const ModelReader& model, std::vector<PlanEntry> plan, const AllocationOptions& options);

// Reads {"tensors": {name: {"fisher_mean": F, ...}}} (owf sensitivity's output), or a
// .safetensors of per-element diagonal Fisher (the reference's files; each tensor's mean).
Result<std::map<std::string, double>> ReadSensitivity(const std::string& path);

}  // namespace owf
