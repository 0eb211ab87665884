// Data-aware importance ("imatrix"): for every linear weight, the mean square of each input
// column's activation over some data, as `owf imatrix` collects it (what llama.cpp's --imatrix
// uses). The error of a weight w (out, in) on an input x is sum_r (sum_c dw_rc x_c)^2; its
// expectation with independent zero-mean columns is sum_rc dw_rc^2 E[x_c^2], so E[x_c^2]
// broadcast over the rows is the weight of each element's squared error.
//
// File: safetensors, one F32 1-D tensor per weight, named as the weight is in the model file,
// of length the weight's input columns (its last dimension); "__metadata__" holds
// "format" = "owf.imatrix", "tokens" (positions seen), "sequences" and "model".
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "owf/core/status.h"

namespace owf {

inline constexpr char kImatrixFormat[] = "owf.imatrix";

struct Imatrix {
  std::map<std::string, std::vector<float>> columns;  // weight name -> mean square per input column
  int64_t tokens = 0;
  int64_t sequences = 0;
  std::string model;
};

// Written atomically (temporary file, then rename).
Status WriteImatrix(const std::string& path, const Imatrix& imatrix);

// Errors name the file and tensor: not an owf imatrix file, a tensor that is not F32 1-D, or a
// value that is negative, NaN or infinite.
Result<Imatrix> ReadImatrix(const std::string& path);

// Per-element weights of a weight of `shape` (C order, input columns last) from its per-column
// ones: w[r * cols + c] = columns[c]. InvalidArgument naming `name` when the lengths differ.
Result<std::vector<float>> BroadcastColumns(const std::vector<float>& columns, const std::vector<int64_t>& shape,
                                            const std::string& name);

}  // namespace owf
