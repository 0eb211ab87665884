// The fused dequantise-GEMM: y[b, r] = sum_c W[r, c] x[b, c] for up to 64 activation rows.
//
// Work is cut into units of one 16-row tile by one of k_parts ranges of 64-column tiles; a
// persistent grid of 8-warp thread blocks walks the units, the warps of a block taking every
// 8th tile of the unit's range. For each tile a lane loads its code_bits words (one 16-byte load
// for 4-bit codes; the loads of 4 tiles are issued before any is used), and turns each pair of
// codes into the two mma A-fragment registers of its hi and lo bf16 terms with ONE shared-memory
// load from a table indexed by the pair (2^(2 bits) entries of {hi pair, lo pair}; for 3- and
// 4-bit codes each lane reads its own copy of the table, so the loads never conflict on banks;
// 5- and 6-bit codes take two loads from a lane's copy of a per-code table, PairTable, PairTerms).
// Both terms go through bf16 tensor-core mma against up to 8 tiles of 8 activations; block
// scales multiply the fp32 partial sums of each scaling block. The warps' sums are added in a
// fixed order; with k_parts > 1 the last block to finish a row tile (a ticket per row tile) adds
// the parts' sums in part order, so results never depend on timing.
#include <algorithm>

#include "lookup.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kUnroll = 2;  // tiles whose codes a warp has in flight ahead of the one it uses

// Tables indexed by a pair of codes (e = c0 + c1 * 2^BITS): the hi terms of both codes as one
// bf16x2 register, and separately the lo terms. For 3- and 4-bit codes each lane has its own copy
// (entry e of lane l at word e * 32 + l: a warp's loads never conflict on banks); the 1- and 2-bit
// tables are conflict-free as they are. 5- and 6-bit codes (kPerCode) have one table of each
// code's split (hi | lo << 16), a copy per lane, and a pair's registers come from two loads and
// two byte permutes: pair tables of 2^10 or 2^12 entries would be shared, and their random reads
// conflict on banks.
template <int BITS>
struct PairTable {
  static constexpr bool kPerCode = BITS >= 5;
  static constexpr int kEntries = 1 << (kPerCode ? BITS : 2 * BITS);
  static constexpr bool kPerLane = BITS >= 3;
  static constexpr int kTables = kPerCode ? 1 : 2;
  static constexpr int kBytes = kEntries * (kPerLane ? 32 : 1) * 4;  // one table
};

// Row tiles a warp works on together (they share activation loads and loop overhead).
template <int NT>
constexpr int kRowTilesPerWarp = NT <= 2 ? 2 : 1;

template <int BITS, int NT>
constexpr int SharedBytes() {
  return PairTable<BITS>::kTables * PairTable<BITS>::kBytes + kWarps * kRowTilesPerWarp<NT> * NT * 128 * 4 +
         16;  // tables, sums, ticket
}

// Byte offset in a pair table of pair p (codes 2p, 2p + 1) of a lane's words; lane4 = lane * 4.
template <int BITS>
__device__ __forceinline__ uint32_t PairOffset(const uint32_t (&w)[BITS], int p, uint32_t lane4) {
  if constexpr (BITS == 4) {  // pair p is byte p % 4 of word p / 4: two instructions
    const uint32_t word = w[p >> 2];
    const int k = p & 3;
    const uint32_t shifted = k == 0 ? word << 7 : word >> (8 * k - 7);
    return (shifted & 0x7F80u) | lane4;
  } else {
    const uint32_t pair = FieldAt<2 * BITS, BITS>(w, p);
    return PairTable<BITS>::kPerLane ? (pair << 7) | lane4 : pair << 2;
  }
}

// Adds the exact outlier corrections of `row` for activation row n and writes the output.
__device__ __forceinline__ void Finish(const MatrixArgs& a, const uint16_t* __restrict__ x, int64_t ldx, int batch,
                                       float* __restrict__ y, int64_t ldy, int64_t tile_row, int idx, float sum) {
  const int nt = idx >> 7, l = (idx >> 2) & 31, i = idx & 3;
  const int64_t row = tile_row * kTileRows + (l >> 2) + 8 * (i >> 1);
  const int n = nt * 8 + 2 * (l & 3) + (i & 1);
  if (row >= a.rows || n >= batch) return;
  y[n * ldy + row] = WithOutliers(a, x, ldx, n, row, sum);
}

// Column tile j of RT row tiles: acc[r][nt] += scale * (W_tile x_tile) for the lane's fragment.
template <int BITS, int NT, int RT>
__device__ __forceinline__ void ProcessTiles(const MatrixArgs& a, const unsigned char* smem, uint32_t lane4,
                                             const uint32_t (&cur)[RT][BITS], const uint32_t (&raw)[RT][2],
                                             bool ring_scales, int steps_per_scale, const int64_t (&base)[RT][2],
                                             const uint16_t* const (&xr)[NT], int64_t j, float (&acc)[RT][NT][4]) {
  constexpr int kLo = PairTable<BITS>::kBytes;
  static_assert(!PairTable<BITS>::kPerCode || Lookup<BITS, true>::kRowBytes == 32 * 4, "the same per-code rows");
  const uint32_t table_base = static_cast<uint32_t>(__cvta_generic_to_shared(smem)) + lane4;
  const bool full = j * kTileCols + kTileCols <= a.cols;
  // The activations (B fragments) of this column tile: all loads issued before any is used.
  uint32_t xb[4][NT][2];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint16_t* xj = xr[nt] ? xr[nt] + j * kTileCols : nullptr;
#pragma unroll
    for (int s = 0; s < 4; ++s)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        // In the last, partial tile each lane checks its own column pairs (cols is even).
        const int c = FragmentColumn(a.run_steps, (lane4 >> 2) & 3, s, h);
        xb[s][nt][h] = xj && (full || j * kTileCols + c < a.cols) ? __ldg(reinterpret_cast<const uint32_t*>(xj + c)) : 0u;
      }
  }
  // Separate accumulators for the hi and lo terms: independent mma chains.
  float part_hi[RT][NT][4], part_lo[RT][NT][4];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) part_hi[r][nt][i] = part_lo[r][nt][i] = 0.0f;
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    if (full || j * kTileCols + TileColumn(a.run_steps, 0, 8 * s) < a.cols) {  // k-steps past the matrix
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        uint32_t hi[4], lo[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          if constexpr (PairTable<BITS>::kPerCode) {  // the 16-row GEMV's per-code lookup (lookup.cuh)
            PairTerms<BITS, true>(cur[r], 4 * s + i, table_base, hi[i], lo[i]);
          } else {
            const uint32_t off = PairOffset<BITS>(cur[r], 4 * s + i, lane4);
            hi[i] = *reinterpret_cast<const uint32_t*>(smem + off);
            lo[i] = *reinterpret_cast<const uint32_t*>(smem + kLo + off);
          }
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          Mma(part_hi[r][nt], hi, xb[s][nt][0], xb[s][nt][1]);
          Mma(part_lo[r][nt], lo, xb[s][nt][0], xb[s][nt][1]);
        }
      }
    }
    if (((s + 1) & (steps_per_scale - 1)) == 0) {
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        float s0, s1;
        if (ring_scales) {
          s0 = DecodeRawScale(raw[r][0], a.scale_type);
          s1 = DecodeRawScale(raw[r][1], a.scale_type);
        } else {
          const int64_t col = j * kTileCols + 16 * (s + 1 - steps_per_scale);
          s0 = ScaleAt(a, base[r][0], col);
          s1 = ScaleAt(a, base[r][1], col);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          acc[r][nt][0] = fmaf(s0, part_hi[r][nt][0] + part_lo[r][nt][0], acc[r][nt][0]);
          acc[r][nt][1] = fmaf(s0, part_hi[r][nt][1] + part_lo[r][nt][1], acc[r][nt][1]);
          acc[r][nt][2] = fmaf(s1, part_hi[r][nt][2] + part_lo[r][nt][2], acc[r][nt][2]);
          acc[r][nt][3] = fmaf(s1, part_hi[r][nt][3] + part_lo[r][nt][3], acc[r][nt][3]);
#pragma unroll
          for (int i = 0; i < 4; ++i) part_hi[r][nt][i] = part_lo[r][nt][i] = 0.0f;
        }
      }
    }
  }
}

template <int BITS, int NT>
__global__ void __launch_bounds__(kThreads, NT == 1 ? 2 : 1)
    GemmKernel(const __grid_constant__ MatrixArgs a, GemmWorkspace ws, const uint16_t* __restrict__ x, int64_t ldx,
               int batch, float* __restrict__ y, int64_t ldy, int steps_per_scale) {
  using Table = PairTable<BITS>;
  constexpr int RT = kRowTilesPerWarp<NT>;
  extern __shared__ __align__(16) unsigned char smem[];
  uint32_t* hi_table = reinterpret_cast<uint32_t*>(smem);
  uint32_t* lo_table = reinterpret_cast<uint32_t*>(smem + Table::kBytes);  // pair tables only
  float* partial = reinterpret_cast<float*>(smem + Table::kTables * Table::kBytes);  // [kWarps][RT][NT * 128]
  unsigned* ticket = reinterpret_cast<unsigned*>(partial + kWarps * RT * NT * 128);

  // Each code's split (hi | lo << 16) once, then the pair tables from those (shared-memory reads:
  // the tables are rebuilt by every block, so this is on the critical path of short launches).
  __shared__ uint32_t split[kMaxCodebook];
  if (threadIdx.x < kMaxCodebook) {
    split[threadIdx.x] = SplitBf16(a.book[threadIdx.x]);
  }
  __syncthreads();
  constexpr int kCopies = Table::kPerLane ? 32 : 1;
  for (int i = threadIdx.x; i < Table::kEntries * kCopies; i += kThreads) {
    const int e = i / kCopies;
    if constexpr (Table::kPerCode) {
      hi_table[i] = split[e];
    } else {
      const uint32_t s0 = split[e & ((1 << BITS) - 1)], s1 = split[e >> BITS];
      hi_table[i] = (s0 & 0xFFFFu) | s1 << 16;
      lo_table[i] = s0 >> 16 | (s1 & 0xFFFF0000u);
    }
  }
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const uint32_t lane4 = static_cast<uint32_t>(lane) * 4;
  const int64_t groups = (a.row_tiles + RT - 1) / RT;  // groups of RT row tiles
  const int64_t units = groups * ws.k_parts;
  const int64_t tiles_per_part = (a.col_tiles + ws.k_parts - 1) / ws.k_parts;
  const bool ring_scales = steps_per_scale == 4;  // one scale per row per tile: prefetched
  // The activation row of this lane's B-fragment column in each n-tile.
  const uint16_t* xr[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int n = nt * 8 + g;
    xr[nt] = n < batch ? x + n * ldx : nullptr;
  }

  for (int64_t unit = blockIdx.x; unit < units; unit += gridDim.x) {
    const int64_t group = unit / ws.k_parts;
    const int part = static_cast<int>(unit % ws.k_parts);
    const int64_t j_begin = part * tiles_per_part, j_end = min(a.col_tiles, j_begin + tiles_per_part);
    // Row tiles past the matrix (an odd last group) read the last real one and are not written.
    int64_t base[RT][2];
    const uint32_t* lane_codes[RT];
#pragma unroll
    for (int r = 0; r < RT; ++r) {
      const int64_t tile_row = min(group * RT + r, a.row_tiles - 1);
      base[r][0] = RowBase(a, min(tile_row * kTileRows + g, a.rows - 1));
      base[r][1] = RowBase(a, min(tile_row * kTileRows + g + 8, a.rows - 1));
      lane_codes[r] = a.codes + (tile_row * a.col_tiles * 32 + lane) * BITS;
    }

    float acc[RT][NT][4];
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) acc[r][nt][0] = acc[r][nt][1] = acc[r][nt][2] = acc[r][nt][3] = 0.0f;

    // A ring of kUnroll slots holding upcoming column tiles' codes (and, when one scale covers
    // a tile row, scales): slot u holds tile j0 + u * kWarps; once read, it is refilled with the
    // tile kUnroll * kWarps further on.
    uint32_t w[kUnroll][RT][BITS];
    uint32_t sraw[kUnroll][RT][2];
    auto load_slot = [&](int u, int64_t j) {
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        LoadLaneWords<BITS>(lane_codes[r] + j * 32 * BITS, w[u][r]);
        if (ring_scales) {  // raw bits, decoded when used (not while the load is pending)
          const int64_t bc = BlockColumn(a, j * kTileCols);
          sraw[u][r][0] = RawScale(a.scales, a.scale_type, base[r][0] + 16 * bc);
          sraw[u][r][1] = RawScale(a.scales, a.scale_type, base[r][1] + 16 * bc);
        }
      }
    };
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (j_begin + warp + u * kWarps < j_end) load_slot(u, j_begin + warp + u * kWarps);
    for (int64_t j0 = j_begin + warp; j0 < j_end; j0 += kUnroll * kWarps) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t j = j0 + u * kWarps;
        if (j < j_end) {
          uint32_t cur[RT][BITS], raw[RT][2];
#pragma unroll
          for (int r = 0; r < RT; ++r) {
#pragma unroll
            for (int b = 0; b < BITS; ++b) cur[r][b] = w[u][r][b];
            raw[r][0] = sraw[u][r][0];
            raw[r][1] = sraw[u][r][1];
          }
          if (j + kUnroll * kWarps < j_end) load_slot(u, j + kUnroll * kWarps);
          ProcessTiles<BITS, NT, RT>(a, smem, lane4, cur, raw, ring_scales, steps_per_scale, base, xr, j, acc);
        }
      }
    }

#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) partial[((warp * RT + r) * NT + nt) * 128 + lane * 4 + i] = acc[r][nt][i];
    __syncthreads();
    for (int r = 0; r < RT; ++r) {
      const int64_t tile_row = group * RT + r;
      if (tile_row >= a.row_tiles) break;
      if (ws.k_parts == 1) {
        for (int idx = threadIdx.x; idx < NT * 128; idx += kThreads) {
          float sum = 0.0f;
#pragma unroll
          for (int w2 = 0; w2 < kWarps; ++w2) sum += partial[(w2 * RT + r) * NT * 128 + idx];
          Finish(a, x, ldx, batch, y, ldy, tile_row, idx, sum);
        }
        continue;
      }
      float* mine = ws.partials + (tile_row * ws.k_parts + part) * (8 * 128);
      for (int idx = threadIdx.x; idx < NT * 128; idx += kThreads) {
        float sum = 0.0f;
#pragma unroll
        for (int w2 = 0; w2 < kWarps; ++w2) sum += partial[(w2 * RT + r) * NT * 128 + idx];
        mine[idx] = sum;
      }
      __syncthreads();
      if (threadIdx.x == 0) *ticket = TicketAcqRel(&ws.tickets[tile_row]);
      __syncthreads();
      if (*ticket == static_cast<unsigned>(ws.k_parts - 1)) {  // the last part of this row tile
        const float* parts = ws.partials + tile_row * ws.k_parts * (8 * 128);
        for (int idx = threadIdx.x; idx < NT * 128; idx += kThreads) {
          float sum = 0.0f;
          for (int p = 0; p < ws.k_parts; ++p) sum += __ldcg(parts + p * (8 * 128) + idx);
          Finish(a, x, ldx, batch, y, ldy, tile_row, idx, sum);
        }
        if (threadIdx.x == 0) ws.tickets[tile_row] = 0;
      }
      __syncthreads();  // `ticket` is reused by the next row tile
    }
    __syncthreads();  // `partial` is reused by the next unit
  }
}

// Per kernel instance: the dynamic shared memory it needs and how many blocks fit on an SM.
template <int BITS, int NT>
Result<int> BlocksPerSm() {
  static int cached = 0;
  if (cached > 0) return cached;
  const int bytes = SharedBytes<BITS, NT>();
  OWF_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(GemmKernel<BITS, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  int blocks = 0;
  OWF_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, GemmKernel<BITS, NT>, kThreads, bytes));
  if (blocks < 1) return Internal("the GEMM kernel does not fit on a multiprocessor");
  cached = blocks;
  return blocks;
}

template <int BITS, int NT>
Status Launch(const MatrixArgs& a, const GemmWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
              int64_t ldy, int sps, cudaStream_t stream) {
  OWF_ASSIGN_OR_RETURN(const int per_sm, (BlocksPerSm<BITS, NT>()));
  OWF_ASSIGN_OR_RETURN(const int sms, MultiprocessorCount());
  const int64_t units = (a.row_tiles + kRowTilesPerWarp<NT> - 1) / kRowTilesPerWarp<NT> * ws.k_parts;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(units, static_cast<int64_t>(per_sm) * sms));
  const int bytes = SharedBytes<BITS, NT>();
  GemmKernel<BITS, NT><<<grid, kThreads, bytes, stream>>>(a, ws, x, ldx, batch, y, ldy, sps);
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

template <int BITS>
Status LaunchBits(const MatrixArgs& a, const GemmWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                  int64_t ldy, int sps, cudaStream_t stream) {
  if (batch <= 8) return Launch<BITS, 1>(a, ws, x, ldx, batch, y, ldy, sps, stream);
  if (batch <= 16) return Launch<BITS, 2>(a, ws, x, ldx, batch, y, ldy, sps, stream);
  if (batch <= 32) return Launch<BITS, 4>(a, ws, x, ldx, batch, y, ldy, sps, stream);
  return Launch<BITS, 8>(a, ws, x, ldx, batch, y, ldy, sps, stream);
}

}  // namespace

Result<int> GemmKParts(const MatrixArgs& a) {
  OWF_ASSIGN_OR_RETURN(const int sms, MultiprocessorCount());
  // Split K until there are about four units per multiprocessor, keeping >= 2 tiles per warp.
  const int64_t want = (4 * static_cast<int64_t>(sms) + a.row_tiles - 1) / a.row_tiles;
  const int64_t most = std::max<int64_t>(1, a.col_tiles / (2 * kWarps));
  return static_cast<int>(std::clamp<int64_t>(want, 1, std::min<int64_t>(most, 16)));
}

Status LaunchGemm(const MatrixArgs& a, const GemmWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                  int64_t ldy, cudaStream_t stream) {
  if (a.scale_type != static_cast<int>(GpuScale::kNone) && a.blocks_across > 1 && a.block_cols % 16 != 0)
    return InvalidArgument("Gemm needs scaling blocks whose width is a multiple of 16 columns");
  // k-steps of 16 columns that share one scale: a lane run's (TileForGpu makes them as long as the
  // scaling blocks allow, and DeviceMatrix::Upload rejects runs that straddle blocks).
  const int sps = a.run_steps;
  return WithCodeBits(a.code_bits, [&](auto bits) {
    return LaunchBits<decltype(bits)::value>(a, ws, x, ldx, batch, y, ldy, sps, stream);
  });
}

}  // namespace owf::cuda::detail
