// The GPU layout of a quantised matrix (docs/gpu-layout.md): owf's packed codes re-tiled at load
// time so that each lane of a warp reads, in one 16-byte load for 4-bit codes, exactly the
// elements it needs for a tensor-core (mma m16n8k16) A fragment. Pure C++: built and tested
// without CUDA; owf/cuda/kernels.h uploads a TiledMatrix and runs kernels on it.
//
// Tiling. The (rows x cols) matrix is cut into tiles of 16 rows x 64 columns (the last ones
// padded with code 0 and zero activations). Tile (i, j) is stored at word offset
// ((i * col_tiles) + j) * 32 * code_bits: 32 lanes, lane-major, code_bits 32-bit words each.
// Lane l = 4 g + t holds 32 codes q = 8 s + e (k-step s = 0..3, mma A-fragment element e = 0..7)
// of rows g + 8 ((e >> 1) & 1) and the columns TileColumn gives -- the mma A-fragment order, with
// the tile's columns assigned to the fragments' k positions in lane runs. Code q occupies
// bits [q * code_bits, (q + 1) * code_bits) of the lane's words read as one little-endian bit
// string.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "owf/core/status.h"
#include "owf/formats/quantise.h"
#include "owf/formats/spec.h"

namespace owf::cuda {

inline constexpr int kTileRows = 16;
inline constexpr int kTileCols = 64;
inline constexpr int kMaxCodebook = 64;

// Column inside its tile of lane 4 g + t's code q (k-step s = q / 8, A-fragment element e = q % 8).
// An mma sums over k in any order, so the tile's columns may sit at the fragments' k positions in
// any order that keeps a scaling block's k-steps together. owf uses lane runs: the k-steps are
// taken run_steps at a time (4, 2 or 1: 64, 32 or 16 columns), and inside such a span lane t
// holds the 4 * run_steps adjacent columns starting at 4 * run_steps * t (k-step s: 4 of them).
// With run_steps = 4 lane t holds columns 16 t .. 16 t + 15 of the tile, so the activations of
// its B fragments for a whole tile are one 32-byte run per activation row; with 2 they are two
// 16-byte runs, with 1 four 8-byte runs. TileForGpu takes the longest runs that keep every span
// inside one scaling block (4 where a tile never straddles two block columns, 2 for blocks a
// multiple of 32 columns wide, else 1).
// (run_steps is 1, 2 or 4: s / run_steps is s >> (run_steps >> 1), cheap where it is not a
// compile-time constant.)
constexpr int TileColumn(int run_steps, int t, int q) {
  const int s = q >> 3, e = q & 7;
  return 16 * run_steps * (s >> (run_steps >> 1)) + 4 * run_steps * t + 4 * (s & (run_steps - 1)) + (e & 1) + 2 * (e >> 2);
}

// Where the scale of (row, block column bc) sits in TiledMatrix::scales (in scales, not bytes):
// per tile row, block column by block column, the 16 rows' scales in the order
// (g, g + 8) for g = 0..7 -- the two rows an mma lane works on are adjacent. Rows of 2-D scaling
// blocks get their own copy; padding rows of the last tile row copy the last row's.
constexpr int64_t ScaleSlot(int64_t row, int64_t bc, int64_t blocks_across) {
  return ((row / 16) * blocks_across + bc) * 16 + 2 * (row % 8) + (row / 8) % 2;
}

// Scale storage on the GPU. TileForGpu stores bf16 (bf16, e8m0 and e4m3 scales, exactly) or fp32
// (fp16 scales and scales bf16 cannot hold, e.g. two-level ones), so that the kernels' inner
// loops decode a scale with one shift.
enum class GpuScale : uint8_t { kNone, kBf16, kFp32 };

// A quantised matrix as owf stores it (owf/io/packed.h PackedCodes, or a QuantisedTensor).
struct QuantisedMatrixView {
  std::span<const float> codebook;           // K <= 64 entries
  BlockGeometry geometry;                    // rows, cols and the scaling block
  std::optional<ScaleFormat> scale_format;   // absent: unscaled
  std::span<const float> scales;             // one per block (decoded)
  std::span<const float> mins;               // optmin scaling: Unsupported for now
  std::span<const uint16_t> codes;           // rows * cols, row-major
  std::span<const int64_t> outlier_indices;  // flat, ascending
  std::span<const float> outlier_values;
  std::optional<uint64_t> rotation_seed;     // set: the codes are of W rotated along its rows
};

struct TiledMatrix {
  int64_t rows = 0, cols = 0;
  int code_bits = 0;             // ceil(log2 K), 1..6
  std::vector<float> codebook;   // K entries
  int64_t row_tiles = 0, col_tiles = 0;
  int run_steps = 4;             // k-steps per lane run: the column order inside tiles (TileColumn)
  std::vector<uint32_t> codes;   // row_tiles * col_tiles * 32 * code_bits words
  GpuScale scale_type = GpuScale::kNone;
  int64_t block_rows = 0, block_cols = 0, blocks_across = 0;
  std::vector<uint8_t> scales;   // bf16 or fp32 bytes at ScaleSlot(row, block column)
  // Outliers: exact values for dequantisation, and per-row corrections for products:
  // delta = value - codebook[code] * scale, so that W x = (codes x) + sum delta * x[col]. For a
  // rotated tensor (below) outliers replace values of W: delta = value - (the row of V
  // un-rotated)[col], and W x = V rotate(x) + sum delta * x[col].
  std::vector<int64_t> outlier_index;
  std::vector<float> outlier_value;
  std::vector<int32_t> outlier_row_start;  // rows + 1 entries (empty without outliers)
  std::vector<int32_t> outlier_col;
  std::vector<float> outlier_delta;
  // Set for a Hadamard-rotated tensor (owf/formats/rotation.h): codes and scales hold V = W
  // (less its outliers) rotated along its rows, so W x = V (rotate(x)) plus the outliers'
  // corrections, and W = un-rotate(V) row by row with the outliers written over.
  // TiledValue gives V (no outliers); DeviceMatrix rotates activations and un-rotates dequantised rows.
  std::optional<uint64_t> rotation_seed;

  int64_t code_bytes() const { return static_cast<int64_t>(codes.size()) * 4; }
  // Bytes a matrix-vector product reads from GPU memory for the weights.
  int64_t weight_bytes() const;
};

// Errors: Unsupported for codebooks over 64 entries and per-block minima (optmin); InvalidArgument
// for inconsistent sizes or codes past the codebook.
Result<TiledMatrix> TileForGpu(const QuantisedMatrixView& m);

// CPU reference of the GPU arithmetic, reading only the tiled layout: the dequantised value at
// (row, col), fp32 codebook[code] * scale (outliers written over, except in a rotated tensor's V)
// -- what DequantiseInto gives.
float TiledValue(const TiledMatrix& m, int64_t row, int64_t col);
// Decodes one stored scale (GpuScale storage) to fp32.
float TiledScale(const TiledMatrix& m, int64_t row, int64_t col);

}  // namespace owf::cuda
