// Randomised Hadamard rotation along the last axis (QuaRot / QuIP# style): flip the sign of each
// column by a seeded random +-1, then apply an orthonormal fast Walsh-Hadamard transform,
// O(n log n) per row. A dimension that is not a power of two is cut into power-of-two pieces
// (largest first: 172 = 128 + 32 + 8 + 4), each transformed on its own (block-diagonal). The
// rotation is orthogonal, so the inverse (Hadamard, then the same signs) restores the input up to
// fp32 rounding, and it spreads a row's outliers over many elements before quantising.
#pragma once

#include <cstdint>
#include <span>

#include "owf/core/tensor.h"

namespace owf {

// The seeded sign of column `col` (+1 or -1).
float HadamardSign(uint64_t seed, int64_t col);

// Rotates (or, with inverse, un-rotates) one row in place.
void HadamardRotateRow(std::span<float> row, uint64_t seed, bool inverse);

// Every row of t (viewed as rows x cols), in parallel; deterministic for any thread count.
void HadamardRotate(Tensor& t, uint64_t seed, bool inverse, int threads);

}  // namespace owf
