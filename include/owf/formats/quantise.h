// Quantising a tensor with a format spec: design (or fit) the element format, compute and
// quantise block scales, snap every element, write back outliers, and count the bits exactly as
// the reference counts them (elements + scales + outliers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/core/tensor.h"
#include "owf/formats/element.h"
#include "owf/formats/spec.h"
#include "owf/stats/metrics.h"

namespace owf {

// How a tensor, viewed as (rows, cols), is cut into scaling blocks of block_rows x block_cols.
// The last block along a dimension is partial where the block size does not divide it.
struct BlockGeometry {
  int64_t rows = 0, cols = 0;
  int64_t block_rows = 0, block_cols = 0;
  int64_t blocks_down() const { return (rows + block_rows - 1) / block_rows; }
  int64_t blocks_across() const { return (cols + block_cols - 1) / block_cols; }
  int64_t num_blocks() const { return blocks_down() * blocks_across(); }
};

// Geometry of `scaling` on a (rows, cols) tensor; errors when a block is larger than the tensor.
Result<BlockGeometry> MakeGeometry(const ScalingSpec& scaling, int64_t rows, int64_t cols);

// Quantises one block scale to its storage format (bf16/fp16 round to nearest even, e8m0 rounds
// up to a power of two, e4m3 is the reference's E4M3 (max 240) rounding to nearest).
float QuantiseScale(float s, ScaleFormat format);

struct QuantiseOptions {
  int threads = 0;                                // 0 = all cores; output is identical for any
  // Per-element weights of the squared error: lloyd, +search and crd(t) df minimise the weighted
  // error, outliers are the largest w x^2. Fixed specs (nothing to choose) ignore them.
  const std::vector<float>* importance = nullptr;
};

struct QuantisedTensor {
  FormatSpec spec;
  std::string fitted;      // parameters chosen from the data, e.g. "df=27.94 scale=0.841"
  ElementFormat element;   // the element format used (including any format scale)
  BlockGeometry geometry;  // rows x cols covered by one block (whole tensor if unscaled)
  std::vector<float> scales;      // one per block, row-major over blocks; empty if unscaled
  // opt/optmin scaling (docs/container.md): value = centroid * scale (- min). With two-level
  // scales, `geometry` is that of the sub-blocks, scales[j] = super_scales[its super-block] *
  // sub_scales[j] (fp32) and mins[j] = super_mins[...] * sub_mins[j].
  std::vector<float> mins;                      // optmin: one per block
  std::vector<float> super_scales, super_mins;  // two-level: per super-block (row-major)
  std::vector<uint16_t> sub_scales, sub_mins;   // two-level: per block, the integer multipliers
  LargeVector<uint16_t> codes;    // index into element.centroids() per element; empty for casts
  std::optional<uint64_t> rotation_seed;  // codes/scales are of the Hadamard-rotated tensor
  std::vector<int64_t> outlier_indices;  // flat indices, ascending
  std::vector<float> outlier_values;     // stored (quantised) outlier values
  Tensor values;                  // the dequantised tensor, same shape as the input

  std::vector<uint8_t> entropy_stream;  // +entropy(huffman|rans): the coded codes (owf/entropy)
  double element_bits = 0;  // ceil(bits * numel), the ideal entropy-coded length, or the stream
  double ideal_element_bits = 0;  // with +entropy: the ideal static code length, for comparison
  double scale_bits = 0;
  double outlier_bits = 0;  // outliers x (value bits + 32-bit index)
  double total_bits() const { return element_bits + scale_bits + outlier_bits; }
  double bits_per_element() const {
    return values.numel() ? total_bits() / static_cast<double>(values.numel()) : 0.0;
  }
  ErrorSums error;          // against the input
  double seconds = 0;       // time spent quantising (design, search and snapping)
};

// Errors: InvalidArgument for a spec that cannot apply to this tensor (block larger than the
// tensor, crd design impossible), InvalidData for NaN/Inf weights (message names the index).
Result<QuantisedTensor> QuantiseTensor(const FormatSpec& spec, const Tensor& x,
                                       const QuantiseOptions& options = {});

// The element format a spec designs without looking at data (everything but lloyd, grid and
// crd(t) without df). For `owf format`.
Result<ElementFormat> DesignElement(const FormatSpec& spec, std::optional<double> df = {});

}  // namespace owf
