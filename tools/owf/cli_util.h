// Helpers shared by the subcommands.
#pragma once

#include <string>

#include "owf/core/status.h"
#include "owf/core/tensor.h"

namespace owf::cli {

// Prints "owf: error: <message>" to stderr; returns the exit code 1.
int Fail(const Status& s);

// A tensor from a .npy file, or (with a tensor name) from any model file owf reads.
Result<Tensor> LoadInputTensor(const std::string& input, const std::string& tensor);

}  // namespace owf::cli
