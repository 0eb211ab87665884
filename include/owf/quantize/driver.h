// Whole-model quantisation: stream a model tensor by tensor through the plan, write the packed
// container (or a dequantised copy in the source's own format), and report what it cost.
#pragma once

#include <functional>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/quantize/plan.h"

namespace owf {

enum class Emit { kPacked, kFake };

struct QuantiseModelOptions {
  std::string output;
  Emit emit = Emit::kPacked;
  int threads = 0;
  // Bit allocation (owf/quantize/allocate.h): an all-in bits-per-parameter budget, and
  // optionally per-tensor Fisher information from `owf sensitivity`.
  std::optional<double> bits_per_param;
  std::string sensitivity;
  // An imatrix (owf/quantize/importance.h): each quantised tensor with an entry is quantised to
  // minimise its importance-weighted error (+search, lloyd, crd(t) df, outlier choice). A
  // tensor without one gets the plain error and a warning; a length mismatch is an error. Not
  // used (with a warning) under rotate(hadamard), which spreads every column over the row.
  std::string importance;
  // Called before each tensor: (index, count, name).
  std::function<void(size_t, size_t, const std::string&)> progress;
};

struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;
  std::string spec;  // canonical spec, or "keep"
  std::string why;   // which rule chose it
  std::string fitted;
  int64_t elements = 0;
  double bits = 0;  // all-in bits of this tensor (kept tensors at their width)
  double rmse_norm = 0;
  double seconds = 0;
  bool importance = false;  // quantised with imatrix weights
};

struct ModelReport {
  std::string input, output;
  std::vector<TensorReport> tensors;
  int64_t elements = 0;
  int64_t quantised_elements = 0;
  double bits = 0;
  double bits_per_param() const { return elements ? bits / static_cast<double>(elements) : 0; }
  int64_t payload_bytes = 0;  // packed: codes + scales + outliers + kept tensors
  int64_t output_bytes = 0;   // size of everything written
  double seconds = 0;
  std::vector<std::string> warnings;
};

Result<ModelReport> QuantiseModel(const std::string& input, const Rules& rules, const QuantiseModelOptions& options);

// Rebuilds the `--emit fake` output of the run that wrote `packed`, bit for bit.
Status DequantiseModel(const std::string& packed, const std::string& output);

nlohmann::json ToJson(const ModelReport& report);

}  // namespace owf
