#include "owf/cuda/layout.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "test_matrices.h"

namespace owf::cuda {
namespace {

using testing::AwkwardMatrices;
using testing::Quantise;
using testing::ViewOf;

// The tiled layout decodes to exactly the quantiser's values, element by element, bit for bit.
TEST(GpuLayout, DecodesToTheQuantisersValues) {
  for (const auto& tm : AwkwardMatrices()) {
    SCOPED_TRACE(tm.spec);
    auto q = Quantise(tm);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto m = TileForGpu(ViewOf(*q));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->row_tiles, (tm.rows + 15) / 16);
    EXPECT_EQ(m->col_tiles, (tm.cols + 63) / 64);
    EXPECT_EQ(1 << m->code_bits >= static_cast<int>(q->element.centroids().size()), true);
    EXPECT_LT(1 << (m->code_bits - 1), static_cast<int>(q->element.centroids().size()) + (m->code_bits == 1));
    for (int64_t r = 0; r < tm.rows; ++r)
      for (int64_t c = 0; c < tm.cols; ++c)
        ASSERT_EQ(std::bit_cast<uint32_t>(TiledValue(*m, r, c)),
                  std::bit_cast<uint32_t>(q->values.data[static_cast<size_t>(r * tm.cols + c)]))
            << "at (" << r << ", " << c << ")";
  }
}

// Outlier corrections: codes-only value + delta == the stored outlier value.
TEST(GpuLayout, OutlierDeltasRestoreTheValues) {
  auto q = Quantise({"int3@32:absmax+outliers(0.05)", 21, 128});
  ASSERT_TRUE(q.ok());
  auto m = TileForGpu(ViewOf(*q));
  ASSERT_TRUE(m.ok());
  ASSERT_FALSE(m->outlier_index.empty());
  ASSERT_EQ(m->outlier_row_start.size(), 22u);
  EXPECT_EQ(m->outlier_row_start.back(), static_cast<int32_t>(m->outlier_index.size()));
  for (int64_t r = 0; r < 21; ++r) {
    for (int32_t o = m->outlier_row_start[r]; o < m->outlier_row_start[r + 1]; ++o) {
      const int64_t flat = m->outlier_index[o];
      EXPECT_EQ(flat / 128, r);
      const uint16_t code = q->codes[static_cast<size_t>(flat)];
      const float coded = m->codebook[code] * TiledScale(*m, r, m->outlier_col[o]);
      EXPECT_NEAR(coded + m->outlier_delta[o], m->outlier_value[o], 1e-6f * std::abs(m->outlier_value[o]) + 1e-12f);
    }
  }
}

// 4-bit codes of one tile: lane l's word s holds the 8 codes of its mma A fragment in order, with
// the tile's columns in lane runs as long as a scaling block allows: lane t holds columns
// 16 t .. 16 t + 15 where a tile lies inside one block, 8 adjacent columns per half tile with
// blocks of 32 (k-steps 0-1: 8 t .., 2-3: 32 + 8 t ..), and 4 per k-step with blocks of 16
// (k-step s: 16 s + 4 t ..).
TEST(GpuLayout, FourBitLaneWordsFollowTheMmaFragment) {
  for (const int block : {64, 32, 16}) {
    SCOPED_TRACE(block);
    auto q = Quantise({"int4@" + std::to_string(block) + ":absmax", 16, 64});
    ASSERT_TRUE(q.ok());
    auto m = TileForGpu(ViewOf(*q));
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->run_steps, block / 16);
    ASSERT_EQ(m->codes.size(), 32u * 4u);
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4;
      for (int s = 0; s < 4; ++s) {
        const uint32_t w = m->codes[static_cast<size_t>(lane * 4 + s)];
        const int rows[8] = {g, g, g + 8, g + 8, g, g, g + 8, g + 8};
        const int runs[8] = {0, 1, 0, 1, 2, 3, 2, 3};  // the column in the lane's 4 of k-step s
        const int run_start = block == 64 ? 16 * t + 4 * s : block == 32 ? 32 * (s / 2) + 8 * t + 4 * (s % 2) : 16 * s + 4 * t;
        for (int e = 0; e < 8; ++e) {
          const int col = run_start + runs[e];
          EXPECT_EQ((w >> (4 * e)) & 15u, q->codes[static_cast<size_t>(rows[e] * 64 + col)]);
        }
      }
    }
  }
}

// Scales that the stated format cannot hold exactly (two-level scales multiplied out) are kept
// exactly, as fp32.
TEST(GpuLayout, InexactScalesAreStoredAsFp32) {
  auto q = Quantise({"crd4(normal)@64:absmax:bf16", 16, 128});
  ASSERT_TRUE(q.ok());
  std::vector<float> scales = q->scales;
  scales[1] = scales[1] * 1.00001f;  // no longer a bf16 value
  QuantisedMatrixView v = ViewOf(*q);
  v.scales = scales;
  auto m = TileForGpu(v);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->scale_type, GpuScale::kFp32);
  EXPECT_EQ(std::bit_cast<uint32_t>(TiledScale(*m, 0, 64)), std::bit_cast<uint32_t>(scales[1]));
  auto exact = TileForGpu(ViewOf(*q));
  ASSERT_TRUE(exact.ok());
  EXPECT_EQ(exact->scale_type, GpuScale::kBf16);
}

// A hand-built TiledMatrix with lane runs that are not 1, 2 or 4 k-steps long (DeviceMatrix::Upload
// rejects it) reads as runs of 4 in the CPU reference instead of dividing by zero.
TEST(GpuLayout, TiledValueReadsOddLaneRunsAsRunsOfFour) {
  auto q = Quantise({"int4@64:absmax", 16, 64});
  ASSERT_TRUE(q.ok());
  auto m = TileForGpu(ViewOf(*q));
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->run_steps, 4);
  TiledMatrix odd = *m;
  for (const int steps : {0, 3, -2}) {
    odd.run_steps = steps;
    for (int64_t c = 0; c < 64; ++c) EXPECT_EQ(TiledValue(odd, 5, c), TiledValue(*m, 5, c)) << steps << " " << c;
  }
}

TEST(GpuLayout, RejectsWhatTheKernelsCannotRun) {
  auto q = Quantise({"crd4(normal)@64:absmax", 16, 64});
  ASSERT_TRUE(q.ok());
  QuantisedMatrixView v = ViewOf(*q);
  std::vector<float> big(65, 0.0f);
  v.codebook = big;
  EXPECT_EQ(TileForGpu(v).status().code(), StatusCode::kUnsupported);
  v = ViewOf(*q);
  v.rotation_seed = 3;  // runs: DeviceMatrix rotates the activations
  auto rotated = TileForGpu(v);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  EXPECT_EQ(rotated->rotation_seed, std::optional<uint64_t>(3));
  auto with_outliers = Quantise({"int4@64:absmax+outliers(0.05)+rotate(hadamard,3)", 16, 64});
  ASSERT_TRUE(with_outliers.ok());
  auto tiled = TileForGpu(ViewOf(*with_outliers));
  ASSERT_TRUE(tiled.ok()) << tiled.status().ToString();
  EXPECT_EQ(tiled->outlier_index.size(), with_outliers->outlier_indices.size());
  // TiledValue gives V, the rotated codes' values: no outlier written over.
  for (size_t o = 0; o < tiled->outlier_index.size(); ++o) {
    const int64_t flat = tiled->outlier_index[o];
    EXPECT_NE(TiledValue(*tiled, flat / 64, flat % 64), tiled->outlier_value[o]) << flat;
  }
  v = ViewOf(*q);
  std::vector<float> mins(q->scales.size(), 0.0f);
  v.mins = mins;
  EXPECT_EQ(TileForGpu(v).status().code(), StatusCode::kUnsupported);
  v = ViewOf(*q);
  v.codes = v.codes.subspan(1);
  EXPECT_EQ(TileForGpu(v).status().code(), StatusCode::kInvalidArgument);
  v = ViewOf(*q);
  std::vector<float> few(3, 1.0f);
  v.scales = few;
  EXPECT_EQ(TileForGpu(v).status().code(), StatusCode::kInvalidArgument);
  v = ViewOf(*q);
  std::vector<float> tiny = {-1.0f, 1.0f};  // codes up to 15 are past a 2-entry codebook
  v.codebook = tiny;
  EXPECT_EQ(TileForGpu(v).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace owf::cuda
