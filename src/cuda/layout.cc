#include "owf/cuda/layout.h"

#include <algorithm>
#include <bit>
#include <string>

#include "owf/formats/packing.h"
#include "owf/formats/rotation.h"

namespace owf::cuda {
namespace {

std::optional<ScaleFormat> FromGpuScale(GpuScale s) {
  if (s == GpuScale::kBf16) return ScaleFormat::kBf16;
  if (s == GpuScale::kFp32) return ScaleFormat::kFp32;
  return std::nullopt;
}

// Position inside the tiled layout of element (row, col): word offset of its lane and its
// code index q within the lane's 32 codes.
struct Slot {
  int64_t lane_word = 0;
  int q = 0;
};

Slot Locate(const TiledMatrix& m, int64_t row, int64_t col) {
  const int64_t tile = (row / kTileRows) * m.col_tiles + col / kTileCols;
  const int rr = static_cast<int>(row % kTileRows), cc = static_cast<int>(col % kTileCols);
  // The inverse of TileColumn: k-step s, lane t and the column's place w among the lane's 4
  // columns of k-step s. (run_steps is 1, 2 or 4, as TileForGpu makes it and DeviceMatrix::Upload
  // requires; other values read as 4 rather than divide by zero.)
  const int rs = m.run_steps == 1 || m.run_steps == 2 ? m.run_steps : 4, within = cc % (16 * rs);
  const int s = cc / (16 * rs) * rs + within % (4 * rs) / 4;
  const int t = within / (4 * rs);
  const int w = cc % 4;
  const int e = (w & 1) + 2 * (rr / 8) + 4 * (w >> 1);
  return {(tile * 32 + 4 * (rr % 8) + t) * m.code_bits, 8 * s + e};
}

}  // namespace

int64_t TiledMatrix::weight_bytes() const {
  return code_bytes() + static_cast<int64_t>(scales.size()) +
         static_cast<int64_t>(outlier_row_start.size() + outlier_col.size() + outlier_delta.size()) * 4;
}

float TiledScale(const TiledMatrix& m, int64_t row, int64_t col) {
  const auto format = FromGpuScale(m.scale_type);
  if (!format) return 1.0f;
  const int64_t width = ScaleFormatBits(*format) / 8;
  const int64_t b = ScaleSlot(row, col / m.block_cols, m.blocks_across);
  auto s = DecodeScales(std::span<const uint8_t>(m.scales).subspan(static_cast<size_t>(b * width), width), *format, 1);
  return s.ok() ? (*s)[0] : 0.0f;
}

float TiledValue(const TiledMatrix& m, int64_t row, int64_t col) {
  const int64_t flat = row * m.cols + col;
  const auto it = std::lower_bound(m.outlier_index.begin(), m.outlier_index.end(), flat);
  if (!m.rotation_seed && it != m.outlier_index.end() && *it == flat)
    return m.outlier_value[static_cast<size_t>(it - m.outlier_index.begin())];
  const Slot slot = Locate(m, row, col);
  const int bit = slot.q * m.code_bits;
  const uint64_t lo = m.codes[static_cast<size_t>(slot.lane_word + bit / 32)];
  const uint64_t hi = bit % 32 + m.code_bits > 32 ? m.codes[static_cast<size_t>(slot.lane_word + bit / 32 + 1)] : 0;
  const uint32_t code = static_cast<uint32_t>(((hi << 32 | lo) >> (bit % 32)) & ((1u << m.code_bits) - 1));
  const float c = m.codebook[code];
  return m.scale_type == GpuScale::kNone ? c : c * TiledScale(m, row, col);
}

Result<TiledMatrix> TileForGpu(const QuantisedMatrixView& v) {
  const BlockGeometry& g = v.geometry;
  const int64_t k = static_cast<int64_t>(v.codebook.size());
  if (k < 1 || k > kMaxCodebook)
    return Unsupported("the GPU kernels take codebooks of 1 to " + std::to_string(kMaxCodebook) + " entries, not " +
                       std::to_string(k));
  if (g.rows < 1 || g.cols < 1 || g.rows > (int64_t{1} << 31) || g.cols > (int64_t{1} << 31))
    return InvalidArgument("bad matrix shape " + std::to_string(g.rows) + "x" + std::to_string(g.cols));
  if (static_cast<int64_t>(v.codes.size()) != g.rows * g.cols)
    return InvalidArgument(std::to_string(v.codes.size()) + " codes for a " + std::to_string(g.rows) + "x" +
                           std::to_string(g.cols) + " matrix");
  if (!v.mins.empty()) return Unsupported("the GPU kernels do not apply per-block minima (optmin scaling)");
  if (v.outlier_indices.size() != v.outlier_values.size())
    return InvalidArgument("outlier indices and values differ in count");
  if (v.outlier_indices.size() > (size_t{1} << 30)) return Unsupported("more than 2^30 outliers");
  TiledMatrix m;
  m.rows = g.rows;
  m.cols = g.cols;
  m.code_bits = 1;
  while ((int64_t{1} << m.code_bits) < k) ++m.code_bits;
  m.codebook.assign(v.codebook.begin(), v.codebook.end());
  m.rotation_seed = v.rotation_seed;
  m.row_tiles = (g.rows + kTileRows - 1) / kTileRows;
  m.col_tiles = (g.cols + kTileCols - 1) / kTileCols;
  if (v.scale_format) {
    if (g.block_rows < 1 || g.block_cols < 1) return InvalidArgument("bad scaling block");
    if (static_cast<int64_t>(v.scales.size()) != g.num_blocks())
      return InvalidArgument(std::to_string(v.scales.size()) + " scales for " + std::to_string(g.num_blocks()) +
                             " blocks");
    // On the GPU scales are bf16 or fp32 (one cheap decode in the kernels' inner loops): e8m0 and
    // e4m3 widen to bf16 and fp16 to fp32, exactly. Scales derived from two levels (super-block
    // scale x sub-block multiplier) that bf16 cannot hold exactly are kept as fp32.
    const bool bf16 = *v.scale_format == ScaleFormat::kBf16 || *v.scale_format == ScaleFormat::kE8m0 ||
                      *v.scale_format == ScaleFormat::kE4m3;
    ScaleFormat format = bf16 ? ScaleFormat::kBf16 : ScaleFormat::kFp32;
    m.scales = EncodeScales(v.scales, format);
    if (bf16) {
      auto back = DecodeScales(m.scales, format, static_cast<int64_t>(v.scales.size()));
      const auto same_bits = [](float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); };
      if (!back.ok() || !std::equal(back->begin(), back->end(), v.scales.begin(), v.scales.end(), same_bits)) {
        format = ScaleFormat::kFp32;
        m.scales = EncodeScales(v.scales, format);
      }
    }
    m.scale_type = format == ScaleFormat::kBf16 ? GpuScale::kBf16 : GpuScale::kFp32;
    m.block_rows = g.block_rows;
    m.block_cols = g.block_cols;
    m.blocks_across = g.blocks_across();
    // From row-major over blocks to ScaleSlot order, one copy per (padded) row.
    const size_t width = format == ScaleFormat::kBf16 ? 2 : 4;
    const std::vector<uint8_t> flat = std::move(m.scales);
    m.scales.assign(static_cast<size_t>(m.row_tiles * kTileRows * m.blocks_across) * width, 0);
    for (int64_t row = 0; row < m.row_tiles * kTileRows; ++row) {
      const int64_t block_row = std::min(row, g.rows - 1) / g.block_rows;
      for (int64_t bc = 0; bc < m.blocks_across; ++bc)
        std::copy_n(&flat[static_cast<size_t>(block_row * m.blocks_across + bc) * width], width,
                    &m.scales[static_cast<size_t>(ScaleSlot(row, bc, m.blocks_across)) * width]);
    }
  } else {
    m.block_rows = g.rows;
    m.block_cols = g.cols;
    m.blocks_across = 1;
  }
  // The longest lane runs whose spans of 16 * run_steps columns never straddle two scaling block
  // columns (TileColumn).
  m.run_steps = m.scale_type == GpuScale::kNone || m.blocks_across == 1 || m.block_cols % kTileCols == 0 ? 4
                : m.block_cols % 32 == 0                                                                ? 2
                                                                                                        : 1;
  // Re-tile the codes: tile by tile, lane by lane, in mma A-fragment order (TileColumn).
  m.codes.assign(static_cast<size_t>(m.row_tiles * m.col_tiles * 32 * m.code_bits), 0u);
  for (int64_t i = 0; i < m.row_tiles; ++i) {
    for (int64_t j = 0; j < m.col_tiles; ++j) {
      for (int lane = 0; lane < 32; ++lane) {
        uint32_t* words = &m.codes[static_cast<size_t>(((i * m.col_tiles + j) * 32 + lane) * m.code_bits)];
        const int gr = lane / 4, t = lane % 4;
        for (int q = 0; q < 32; ++q) {
          const int64_t row = i * kTileRows + gr + 8 * ((q % 8 >> 1) & 1);
          const int64_t col = j * kTileCols + TileColumn(m.run_steps, t, q);
          if (row >= g.rows || col >= g.cols) continue;
          const uint16_t code = v.codes[static_cast<size_t>(row * g.cols + col)];
          if (code >= k)
            return InvalidArgument("code " + std::to_string(code) + " at (" + std::to_string(row) + ", " +
                                   std::to_string(col) + ") is past the " + std::to_string(k) + "-entry codebook");
          const int bit = q * m.code_bits;
          words[bit / 32] |= static_cast<uint32_t>(code) << (bit % 32);
          if (bit % 32 + m.code_bits > 32) words[bit / 32 + 1] |= static_cast<uint32_t>(code) >> (32 - bit % 32);
        }
      }
    }
  }
  // Outliers: exact values, and per-row corrections against what the codes give -- for a rotated
  // tensor, against the row of V un-rotated (its outliers replace values of W), as the CPU
  // dequantises it.
  if (!v.outlier_indices.empty()) {
    m.outlier_row_start.assign(static_cast<size_t>(g.rows + 1), 0);
    int64_t previous = -1, unrotated_row = -1;
    std::vector<float> unrotated;
    for (size_t o = 0; o < v.outlier_indices.size(); ++o) {
      const int64_t flat = v.outlier_indices[o];
      if (flat <= previous || flat >= g.rows * g.cols)
        return InvalidArgument("outlier index " + std::to_string(flat) + " is out of order or outside the matrix");
      previous = flat;
      const int64_t row = flat / g.cols, col = flat % g.cols;
      // codebook[code] * scale of (row, c), with the scale of c's block column given.
      const auto code_value = [&](int64_t c, float scale) {
        const float coded = m.codebook[v.codes[static_cast<size_t>(row * g.cols + c)]];
        return m.scale_type == GpuScale::kNone ? coded : coded * scale;
      };
      float scaled = 0.0f;
      if (v.rotation_seed) {
        if (row != unrotated_row) {  // the row's scales decoded once per block column
          unrotated.resize(static_cast<size_t>(g.cols));
          for (int64_t c0 = 0; c0 < g.cols; c0 += m.block_cols) {
            const float scale = m.scale_type == GpuScale::kNone ? 1.0f : TiledScale(m, row, c0);
            for (int64_t c = c0; c < std::min(g.cols, c0 + m.block_cols); ++c)
              unrotated[static_cast<size_t>(c)] = code_value(c, scale);
          }
          HadamardRotateRow(unrotated, *v.rotation_seed, /*inverse=*/true);
          unrotated_row = row;
        }
        scaled = unrotated[static_cast<size_t>(col)];
      } else {
        scaled = code_value(col, m.scale_type == GpuScale::kNone ? 1.0f : TiledScale(m, row, col));
      }
      m.outlier_index.push_back(flat);
      m.outlier_value.push_back(v.outlier_values[o]);
      m.outlier_col.push_back(static_cast<int32_t>(col));
      m.outlier_delta.push_back(v.outlier_values[o] - scaled);
      ++m.outlier_row_start[static_cast<size_t>(row + 1)];
    }
    for (size_t r = 1; r < m.outlier_row_start.size(); ++r) m.outlier_row_start[r] += m.outlier_row_start[r - 1];
  }
  return m;
}

}  // namespace owf::cuda
