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

// Whether column `col`'s seeded sign is -1 (constexpr: the GPU kernels, which rotate activations
// and un-rotate weights, use the same signs).
constexpr bool HadamardNegative(uint64_t seed, int64_t col) {
  uint64_t x = seed * 0x100000001B3ull + static_cast<uint64_t>(col) + 0x9E3779B97F4A7C15ull;  // SplitMix64
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return ((x ^ (x >> 31)) >> 63) != 0;
}

// The seeded sign of column `col` (+1 or -1).
inline float HadamardSign(uint64_t seed, int64_t col) { return HadamardNegative(seed, col) ? -1.0f : 1.0f; }

// Rotates (or, with inverse, un-rotates) one row in place.
void HadamardRotateRow(std::span<float> row, uint64_t seed, bool inverse);

// Every row of t (viewed as rows x cols), in parallel; deterministic for any thread count.
void HadamardRotate(Tensor& t, uint64_t seed, bool inverse, int threads);

}  // namespace owf
