#include "owf/formats/rotation.h"

#include <cmath>

#include "owf/core/parallel.h"

namespace owf {
namespace {

// In-place orthonormal Walsh-Hadamard transform of a power-of-two length block.
void Fwht(float* v, int64_t n) {
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  for (int64_t i = 0; i < n; ++i) v[i] *= norm;
}

void FwhtBlocks(std::span<float> row) {
  int64_t start = 0, left = static_cast<int64_t>(row.size());
  while (left > 0) {
    int64_t piece = 1;
    while (piece * 2 <= left) piece *= 2;
    Fwht(row.data() + start, piece);
    start += piece;
    left -= piece;
  }
}

}  // namespace

void HadamardRotateRow(std::span<float> row, uint64_t seed, bool inverse) {
  if (!inverse) {
    for (size_t c = 0; c < row.size(); ++c) row[c] *= HadamardSign(seed, static_cast<int64_t>(c));
    FwhtBlocks(row);
  } else {
    FwhtBlocks(row);  // each block's orthonormal Hadamard is its own inverse
    for (size_t c = 0; c < row.size(); ++c) row[c] *= HadamardSign(seed, static_cast<int64_t>(c));
  }
}

void HadamardRotate(Tensor& t, uint64_t seed, bool inverse, int threads) {
  const int64_t rows = t.rows(), cols = t.cols();
  const int64_t per_chunk = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cols, 1));
  const int64_t chunks = (rows + per_chunk - 1) / per_chunk;
  ParallelFor(static_cast<size_t>(chunks), threads, [&](size_t chunk) {
    const int64_t r1 = std::min(rows, static_cast<int64_t>(chunk + 1) * per_chunk);
    for (int64_t r = static_cast<int64_t>(chunk) * per_chunk; r < r1; ++r)
      HadamardRotateRow(std::span<float>(t.data.data() + r * cols, static_cast<size_t>(cols)), seed, inverse);
  });
}

}  // namespace owf
