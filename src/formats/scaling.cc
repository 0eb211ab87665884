// Block geometry, block scales and their storage formats (reference-spec.md section 3.1).
#include <algorithm>
#include <cmath>
#include <limits>

#include "owf/core/numeric.h"
#include "owf/core/parallel.h"
#include "owf/formats/quantise.h"
#include "scaling.h"

namespace owf {

Result<BlockGeometry> MakeGeometry(const ScalingSpec& s, int64_t rows, int64_t cols) {
  BlockGeometry g{rows, cols, rows, cols};
  switch (s.block) {
    case BlockKind::kTensor: break;
    case BlockKind::kChannel: g.block_rows = 1; break;
    case BlockKind::kBlock:
      if (s.optimised()) {  // opt scaling: blocks (or sub-blocks) of 1 x n, partial where n > cols
        g.block_rows = 1;
        g.block_cols = s.two_level() ? s.sub_block : s.block_cols;
        break;
      }
      if (s.block_cols > cols) {
        return InvalidArgument("block of " + std::to_string(s.block_cols) +
                               " columns is larger than the tensor's last dimension (" +
                               std::to_string(cols) + "); use 'channel' for one scale per row");
      }
      if (s.block_rows > rows) {
        return InvalidArgument("block of " + std::to_string(s.block_rows) +
                               " rows is larger than the tensor's " + std::to_string(rows) + " rows");
      }
      g.block_rows = s.block_rows;
      g.block_cols = s.block_cols;
      break;
  }
  return g;
}

float QuantiseScale(float s, ScaleFormat format) {
  switch (format) {
    case ScaleFormat::kBf16: return RoundBf16(std::clamp(s, -kBf16Max, kBf16Max));
    case ScaleFormat::kFp16: return RoundFp16(std::clamp(s, -kFp16Max, kFp16Max));
    case ScaleFormat::kFp32: return s;
    case ScaleFormat::kE8m0: {
      // Power of two rounded up (never under-covers the block): 2^clip(ceil(log2 s), -127, 127).
      if (!(s > 0)) return std::ldexp(1.0f, -127);
      int e = 0;
      const float m = std::frexp(s, &e);  // s = m * 2^e, m in [0.5, 1)
      const int ceil_log2 = m == 0.5f ? e - 1 : e;
      return std::ldexp(1.0f, std::clamp(ceil_log2, -127, 127));
    }
    case ScaleFormat::kE4m3: {
      static const ElementFormat kE4m3 = ElementFormat::Float(4, 3, Rounding::kNearest);
      return kE4m3.Quantise(s);
    }
  }
  return s;
}

namespace {

struct BlockStats {
  float amax = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  double sumsq = 0;
  int64_t count = 0;
  void Merge(const BlockStats& o) {
    amax = std::max(amax, o.amax);
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    sumsq += o.sumsq;
    count += o.count;
  }
};

}  // namespace

int64_t RowsPerChunk(int64_t cols) { return std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(cols, 1)); }

std::vector<float> ComputeScales(const float* x, const BlockGeometry& g, ScaleKind kind, float lo,
                                 float hi, ScaleFormat format, int threads) {
  const int64_t across = g.blocks_across();
  // Pass 1: statistics per (row, block column), in parallel over row chunks.
  std::vector<BlockStats> row_stats(static_cast<size_t>(g.rows * across));
  const int64_t rpc = RowsPerChunk(g.cols);
  const int64_t chunks = (g.rows + rpc - 1) / rpc;
  ParallelFor(static_cast<size_t>(chunks), threads, [&](size_t chunk) {
    const int64_t r0 = static_cast<int64_t>(chunk) * rpc, r1 = std::min(g.rows, r0 + rpc);
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = x + r * g.cols;
      for (int64_t b = 0; b < across; ++b) {
        BlockStats s;
        const int64_t c0 = b * g.block_cols, c1 = std::min(g.cols, c0 + g.block_cols);
        for (int64_t c = c0; c < c1; ++c) {
          const float v = row[c];
          s.amax = std::max(s.amax, std::fabs(v));
          s.min = std::min(s.min, v);
          s.max = std::max(s.max, v);
          s.sumsq += static_cast<double>(v) * v;
        }
        s.count = c1 - c0;
        row_stats[static_cast<size_t>(r * across + b)] = s;
      }
    }
  });
  // Pass 2: merge rows into blocks in row order (deterministic), then the scale.
  const float eps = kFp32MinNormal;
  const float range = std::min(-lo, hi);
  const float signed_max = -lo > hi ? lo : hi;
  std::vector<float> scales(static_cast<size_t>(g.num_blocks()));
  for (int64_t bd = 0; bd < g.blocks_down(); ++bd) {
    for (int64_t b = 0; b < across; ++b) {
      BlockStats s;
      const int64_t r1 = std::min(g.rows, (bd + 1) * g.block_rows);
      for (int64_t r = bd * g.block_rows; r < r1; ++r) s.Merge(row_stats[static_cast<size_t>(r * across + b)]);
      float scale = 0;
      switch (kind) {
        case ScaleKind::kAbsmax:
        case ScaleKind::kOpt:  // (opt scales are fitted in opt_scale.cc; absmax is their start)
        case ScaleKind::kOptMin: scale = std::max(s.amax / range, eps); break;
        case ScaleKind::kSignmax: {
          const float bmin = std::min(s.min, -eps), bmax = std::max(s.max, eps);
          scale = (-bmin > bmax ? bmin : bmax) / signed_max;
          break;
        }
        case ScaleKind::kRms: {
          const float mean_sq = static_cast<float>(s.sumsq / static_cast<double>(s.count));
          scale = std::sqrt(std::max(mean_sq, eps));
          break;
        }
      }
      scales[static_cast<size_t>(bd * across + b)] = QuantiseScale(scale, format);
    }
  }
  return scales;
}

}  // namespace owf
