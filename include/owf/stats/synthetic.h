// Reproducible synthetic weight tensors (same bytes on every platform: a 64-bit Mersenne
// Twister, whose output sequence the C++ standard fixes, and explicit transforms).
#pragma once

#include <cstdint>

#include "owf/core/tensor.h"
#include "owf/stats/crd.h"

namespace owf {

// iid samples of `dist` (Student-t: integer df >= 3), unit variance, times `scale`.
Tensor SyntheticTensor(Distribution dist, int df, int64_t rows, int64_t cols, uint64_t seed,
                       float scale = 0.02f);

}  // namespace owf
