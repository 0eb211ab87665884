// Dequantisation to bf16: one warp per 16x64 tile, each lane writing the 32 elements whose codes
// it holds as bf16(codebook[code] * scale) -- the CPU's fp32 product, rounded to nearest even --
// then outliers written over by a second kernel. In lane runs (TileColumn) a lane holds, in each
// of its two rows, 4 / RS runs of 4 * RS adjacent columns (RS = run_steps: 16, 8 or 4 columns),
// each inside one scaling block where the blocks allow (one scale per run): where the output rows
// are 16-byte aligned and the tile is whole, a run goes out as 16-byte stores (8-byte for runs of
// 4); otherwise adjacent columns go out as one 32-bit store where rows are 4-byte aligned, or
// element by element, with a scale per element. The fp32 variant (rotated matrices: DeviceMatrix
// un-rotates the rows before rounding them to bf16) stores the same way, unrounded (runs of 4
// columns as one 16-byte store).
#include <type_traits>

#include "device_common.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
enum Stores { kElements, kPairs, kRuns };  // how the kernel writes (see the top)

// An output element: bf16 bits (round to nearest even) or fp32.
template <typename OUT>
__device__ __forceinline__ OUT OutputOf(float v) {
  if constexpr (std::is_same_v<OUT, float>) return v;
  else return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

template <int BITS, int RS, typename OUT>
__global__ void __launch_bounds__(kThreads) DequantiseKernel(const __grid_constant__ MatrixArgs a, OUT* __restrict__ out,
                                                             int64_t ld, int stores) {
  constexpr bool kBf16 = std::is_same_v<OUT, uint16_t>;
  __shared__ float book[kMaxCodebook];
  for (int i = threadIdx.x; i < kMaxCodebook; i += blockDim.x) book[i] = a.book[i];
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (tile >= a.row_tiles * a.col_tiles) return;
  const int64_t ti = tile / a.col_tiles, tj = tile % a.col_tiles;
  uint32_t w_codes[BITS];
  LoadLaneWords<BITS>(a.codes + (tile * 32 + lane) * BITS, w_codes);
  const int64_t rows[2] = {ti * kTileRows + g, ti * kTileRows + g + 8};
  const bool scaled = a.scale_type != static_cast<int>(GpuScale::kNone);
  int64_t base[2] = {0, 0};
  if (scaled)
    for (int h = 0; h < 2; ++h) base[h] = RowBase(a, min(rows[h], a.rows - 1));
  if (stores == kRuns && (tj + 1) * kTileCols <= a.cols) {  // a whole tile, as runs
    constexpr int kRunsPerRow = 4 / RS, kRunCols = 4 * RS;   // per row: runs of adjacent columns
    constexpr int kWordCols = kBf16 ? 2 : 1, kRunWords = kRunCols / kWordCols;  // 32-bit words
    auto run_column = [&](int run) { return tj * kTileCols + 16 * RS * run + kRunCols * t; };
    float scale[2][kRunsPerRow];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int run = 0; run < kRunsPerRow; ++run) scale[h][run] = scaled ? ScaleAt(a, base[h], run_column(run)) : 1.0f;
    uint32_t words[2][16 / kWordCols];  // row g + 8 h: run by run, bf16 pairs or fp32 values
#pragma unroll
    for (int p = 0; p < 16; ++p) {  // codes 2p, 2p + 1: one row (g + 8 h), adjacent columns
      const int h = p & 1, s = p >> 2, run = s / RS;
      const int c = TileColumn(RS, t, 2 * p) - (16 * RS * run + kRunCols * t);  // the pair's place in its run
      float v0 = book[FieldAt<BITS, BITS>(w_codes, 2 * p)], v1 = book[FieldAt<BITS, BITS>(w_codes, 2 * p + 1)];
      if (scaled) v0 = __fmul_rn(v0, scale[h][run]), v1 = __fmul_rn(v1, scale[h][run]);
      if constexpr (kBf16) {
        words[h][(run * kRunCols + c) / 2] = static_cast<uint32_t>(OutputOf<OUT>(v0)) | static_cast<uint32_t>(OutputOf<OUT>(v1)) << 16;
      } else {
        words[h][run * kRunCols + c] = __float_as_uint(v0);
        words[h][run * kRunCols + c + 1] = __float_as_uint(v1);
      }
    }
    for (int h = 0; h < 2; ++h) {
      if (rows[h] >= a.rows) continue;
#pragma unroll
      for (int run = 0; run < kRunsPerRow; ++run) {
        OUT* dst = out + rows[h] * ld + run_column(run);
        const uint32_t* v = words[h] + run * kRunWords;
        if constexpr (kRunWords == 2) {
          *reinterpret_cast<uint2*>(dst) = make_uint2(v[0], v[1]);
        } else {
#pragma unroll
          for (int k = 0; k < kRunWords / 4; ++k)
            reinterpret_cast<uint4*>(dst)[k] = make_uint4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
        }
      }
    }
    return;
  }
#pragma unroll
  for (int p = 0; p < 16; ++p) {  // pairs of adjacent columns: codes 2p, 2p + 1
    const int s = p >> 2, e = 2 * (p & 3);
    const int h = (e >> 1) & 1;
    const int64_t row = rows[h];
    const int64_t col = tj * kTileCols + TileColumn(RS, t, 8 * s + e);
    if (row >= a.rows || col >= a.cols) continue;
    float v0 = book[FieldAt<BITS, BITS>(w_codes, 2 * p)], v1 = book[FieldAt<BITS, BITS>(w_codes, 2 * p + 1)];
    if (scaled) {
      v0 = __fmul_rn(v0, ScaleAt(a, base[h], col));
      v1 = __fmul_rn(v1, ScaleAt(a, base[h], col + 1));
    }
    const OUT b0 = OutputOf<OUT>(v0), b1 = OutputOf<OUT>(v1);
    OUT* dst = out + row * ld + col;
    if (kBf16 && stores != kElements && col + 1 < a.cols) {
      *reinterpret_cast<uint32_t*>(dst) = static_cast<uint32_t>(b0) | static_cast<uint32_t>(b1) << 16;
    } else {
      dst[0] = b0;
      if (col + 1 < a.cols) dst[1] = b1;
    }
  }
}

// Outliers written over (bf16).
__global__ void WriteOutliersKernel(MatrixArgs a, uint16_t* __restrict__ out, int64_t ld) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= a.outliers) return;
  const int64_t flat = a.outlier_index[o];
  out[(flat / a.cols) * ld + flat % a.cols] = OutputOf<uint16_t>(a.outlier_value[o]);
}

// y[b * ldy + r] += row r's outlier corrections times activation row b: one thread per output.
__global__ void AddOutlierCorrectionsKernel(MatrixArgs a, const uint16_t* __restrict__ x, int64_t ldx, int64_t rows,
                                            float* __restrict__ y, int64_t ldy) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * a.rows) return;
  const int64_t b = i / a.rows, r = i % a.rows;
  float* out = y + b * ldy + r;
  *out = AddOutliers(a.outlier_row_start, a.outlier_col, a.outlier_delta, x + b * ldx, r, *out);
}

template <int BITS, int RS, typename OUT>
void Launch(const MatrixArgs& a, OUT* out, int64_t ld, int stores, cudaStream_t stream) {
  const int64_t tiles = a.row_tiles * a.col_tiles;
  DequantiseKernel<BITS, RS, OUT>
      <<<static_cast<unsigned>((tiles + kWarps - 1) / kWarps), kThreads, 0, stream>>>(a, out, ld, stores);
}

// The codes' values (no outliers).
template <typename OUT>
Status DequantiseCodes(const MatrixArgs& a, OUT* out, int64_t ld, cudaStream_t stream) {
  // Run stores need every row start 16-byte aligned (a lane's run starts at a multiple of 4 * RS
  // columns, and runs of 8 or 16 columns go out as 16-byte stores; fp32 runs of 4 too), 32-bit
  // ones 4-byte aligned (columns of a pair start even).
  const auto aligned = [&](int bytes) {
    return (ld * static_cast<int64_t>(sizeof(OUT))) % bytes == 0 && reinterpret_cast<uintptr_t>(out) % bytes == 0;
  };
  // A run has one scale where the blocks are a multiple of its width (TileForGpu's runs always
  // are, except for blocks that are not a multiple of 16 columns).
  const bool run_scales = a.scale_type == static_cast<int>(GpuScale::kNone) || a.blocks_across == 1 ||
                          a.block_cols % (4 * a.run_steps) == 0;
  const int stores = run_scales && aligned(16) ? kRuns : aligned(4) ? kPairs : kElements;
  OWF_RETURN_IF_ERROR(WithCodeBits(a.code_bits, [&](auto bits) -> Status {
    constexpr int kBits = decltype(bits)::value;
    switch (a.run_steps) {
      case 4: Launch<kBits, 4>(a, out, ld, stores, stream); return Status::Ok();
      case 2: Launch<kBits, 2>(a, out, ld, stores, stream); return Status::Ok();
      case 1: Launch<kBits, 1>(a, out, ld, stores, stream); return Status::Ok();
    }
    return Internal("lane runs of 1, 2 or 4 k-steps");
  }));
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status LaunchDequantise(const MatrixArgs& a, uint16_t* out, int64_t ld, cudaStream_t stream) {
  OWF_RETURN_IF_ERROR(DequantiseCodes(a, out, ld, stream));
  return LaunchWriteOutliers(a, out, ld, stream);
}

Status LaunchWriteOutliers(const MatrixArgs& a, uint16_t* out, int64_t ld, cudaStream_t stream) {
  if (a.outliers == 0) return Status::Ok();
  WriteOutliersKernel<<<static_cast<unsigned>((a.outliers + 255) / 256), 256, 0, stream>>>(a, out, ld);
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

Status LaunchAddOutlierCorrections(const MatrixArgs& a, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                                   int64_t ldy, cudaStream_t stream) {
  if (a.outliers == 0 || !a.outlier_row_start) return Status::Ok();
  const int64_t outputs = rows * a.rows;
  AddOutlierCorrectionsKernel<<<static_cast<unsigned>((outputs + 255) / 256), 256, 0, stream>>>(a, x, ldx, rows, y, ldy);
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

Status LaunchDequantiseRows(const MatrixArgs& a, int64_t first_tile_row, int64_t tile_rows, float* out,
                            cudaStream_t stream) {
  if (first_tile_row < 0 || tile_rows < 1 || first_tile_row + tile_rows > a.row_tiles)
    return InvalidArgument("tile rows outside the matrix");
  // The tile rows as a matrix of their own: codes and scales from their first tile row.
  MatrixArgs part = a;
  const int64_t first_row = first_tile_row * kTileRows;
  part.codes = a.codes + first_tile_row * a.col_tiles * 32 * a.code_bits;
  if (a.scale_type != static_cast<int>(GpuScale::kNone)) {
    const int64_t width = a.scale_type == static_cast<int>(GpuScale::kBf16) ? 2 : 4;
    part.scales = a.scales + ScaleSlot(first_row, 0, a.blocks_across) * width;
  }
  part.row_tiles = tile_rows;
  part.rows = std::min(a.rows - first_row, tile_rows * kTileRows);
  return DequantiseCodes(part, out, a.cols, stream);
}

}  // namespace owf::cuda::detail
