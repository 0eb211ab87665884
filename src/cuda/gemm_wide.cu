// The fused dequantise-GEMM for 17-64 activation rows (tiles as the small-batch kernels take them:
// lane runs of 4 k-steps, one scale per row per 64-column tile; or, with 2- to 6-bit codes,
// scaling blocks of 32 or 16 columns, lane runs of 2 or 1 k-steps).
//
// At 32-64 rows the small-batch kernels' design stops working: a warp that loads its own B
// fragments reads 8-16 times more activation bytes than code bytes, and running 16-row chunks reads
// the weights once per chunk. Here a block of 8 warps takes a step of 16 row tiles (2 per warp; at
// 32 rows 32, 4 per warp) by one column tile, and stages the step's codes, scales and activations
// into shared memory with cp.async, 4 steps deep (3 where 4 do not fit), so that each column tile's
// activations are read from global memory once per block and shared by its 8 warps. A lane then
// turns a pair of its codes into the hi and lo bf16 terms of the pair's mma A-fragment registers
// with one byte permute and two shared-memory loads from its own copy of the tensor-core pair table
// (lookup.cuh; 5-6 bit codes: two loads from a per-code table and two byte permutes, PairTerms),
// and both go through m16n8k16 mmas against 4 or 8 n-tiles of activations, loaded 16 or 8 bytes at
// a time from rows padded per lane-run width (XStride: no bank conflicts). Codebooks that are
// exactly bf16 skip the lo terms. At 64 rows the kernel is bound by mma issue with 8 warps per SM
// (docs/gpu-performance.md), not by bytes.
//
// Work split as in gemv.cu, by blocks: the steps (row blocks of 16 row tiles x column tiles, row
// block major) are cut into equal contiguous ranges, one per block of a one-block-per-SM grid.
// Where a row block spans several ranges, each writes its partial sums and the last to finish (a
// ticket per row block) adds them in range order: results never depend on timing.
#include <algorithm>

#include "lookup.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// Row tiles per warp in a step (a warp's B fragments serve them all), and per block (a row block).
constexpr int RowTilesPerWarp(int nt) { return nt <= 4 ? 4 : 2; }
constexpr int BlockTiles(int nt) { return kWarps * RowTilesPerWarp(nt); }
constexpr int kMinStepsPerBlock = 8;
constexpr int kBf16 = static_cast<int>(GpuScale::kBf16), kFp32 = static_cast<int>(GpuScale::kFp32);
// bf16 per staged activation row, so that a lane's B-fragment loads never conflict on banks:
// 144 bytes for lane runs of 16 columns (16-byte loads), 192 for runs of 8 (16-byte loads: rows g
// and g + 1 in different halves of the banks), 160 for runs of 4 (8-byte loads: 4 rows, 4 quarters).
constexpr int XStride(int spt) { return spt == 1 ? kTileCols + 8 : spt == 2 ? kTileCols + 32 : kTileCols + 16; }

// One stage in shared memory: the row block's codes (tile k at k * TileCodeBytes, in the GPU
// layout: lane l's words at l * 4 * BITS), their scales (tile k's at k * TileScaleBytes: per
// scaling block of the tile (spt of them), 16 in ScaleSlot order), then the column tile's
// activations for 8 nt rows (zeros past the batch and the matrix).
constexpr int TileCodeBytes(int bits) { return 32 * bits * 4; }
constexpr int BlockScaleBytes(int st) { return st == kBf16 ? 32 : st == kFp32 ? 64 : 0; }
constexpr int TileScaleBytes(int st, int spt) { return spt * BlockScaleBytes(st); }
constexpr int StageBytes(int bits, int nt, int st, int spt) {
  return BlockTiles(nt) * (TileCodeBytes(bits) + TileScaleBytes(st, spt)) + nt * 8 * XStride(spt) * 2;
}
// Steps staged ahead: 4, or 3 where 4 stages do not fit in the 227 KB of shared memory a block of
// an H100 or H200 may have (the 32-row kernel with blocks of 16 columns, or of 32 with fp32 scales).
constexpr int kSharedLimit = 227 * 1024 - kStaticSharedBytes;
constexpr int Stages(int bits, int nt, int st, int spt) {
  return kTableAlign + LookupBytes(bits, true) + 4 * StageBytes(bits, nt, st, spt) <= kSharedLimit ? 4 : 3;
}
// The table (at the first 64 KB-aligned shared address, which may be up to 64 KB in), then the
// stages.
constexpr int SharedBytes(int bits, int nt, int st, int spt) {
  return kTableAlign + LookupBytes(bits, true) + Stages(bits, nt, st, spt) * StageBytes(bits, nt, st, spt);
}
constexpr int RowBlockOutputs(int nt) { return BlockTiles(nt) * kTileRows * nt * 8; }

// LO: the lo terms go through their own mmas; without (codebooks that are exactly bf16, such as
// int4 or e2m1, whose lo terms are all zero) the same sums come from half the mmas. SPT: scaling
// blocks per tile (1; 2 or 4 for blocks of 32 or 16 columns, in lane runs of 4 / SPT k-steps).
template <int BITS, int NT, int ST, bool LO, int SPT>
__global__ void __launch_bounds__(kThreads, 1)
    GemmWideKernel(const __grid_constant__ MatrixArgs a, GemvWorkspace ws, const uint16_t* __restrict__ x,
                   int64_t ldx, bool x_aligned16, int batch, float* __restrict__ y, int64_t ldy) {
  static_assert(BITS <= kMaxTensorBits || LO, "5-6 bit codes: per-code tables, lo terms");
  using L = Lookup<BITS, true>;
  constexpr int kRowTiles = RowTilesPerWarp(NT), kBlockTiles = BlockTiles(NT);
  constexpr int kTileCode = TileCodeBytes(BITS), kTileScale = TileScaleBytes(ST, SPT);
  constexpr int kBlockScale = BlockScaleBytes(ST), kRunSteps = 4 / SPT, kXStride = XStride(SPT);
  constexpr int kCodeBytes = kBlockTiles * kTileCode, kScaleBytes = kBlockTiles * kTileScale;
  constexpr int kStage = StageBytes(BITS, NT, ST, SPT), kOut = RowBlockOutputs(NT);
  constexpr int kStages = Stages(BITS, NT, ST, SPT);
  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t table_address = AlignedTableAddress(smem);
  unsigned char* table = smem + (table_address - static_cast<uint32_t>(__cvta_generic_to_shared(smem)));
  const unsigned char* stages = table + L::kBytes;
  const uint32_t stages_address = table_address + L::kBytes;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int C = static_cast<int>(a.col_tiles), M = static_cast<int>(ws.steps);
  const int R = static_cast<int>(gridDim.x);
  const int m0 = RangeStart(static_cast<int>(blockIdx.x), M, R), m1 = RangeStart(static_cast<int>(blockIdx.x) + 1, M, R);
  const int last_tile_row = static_cast<int>(a.row_tiles) - 1;
  LaunchDependents();

  // Staging: stage_weights() copies the codes and scales of the step at the weight cursor (row
  // block wrb, column tile wj), which need nothing from the previous kernel, and stage_x() the
  // activations of the step at the activation cursor's column tile xj, which do; each into slot
  // `slot` and each moves its cursor on. A thread's chunks are fixed: c = threadIdx.x + u kThreads
  // (code chunk c: 16 bytes of tile c / kChunks of the row block; scale chunk c likewise), and its
  // sources for the cursor's row block are kept (code_src, scale_src), so that a step costs a
  // thread a few adds per copy.
  constexpr int kChunks = kTileCode / 16, kCodeChunks = kBlockTiles * kChunks;
  constexpr int kCodePer = (kCodeChunks + kThreads - 1) / kThreads;
  constexpr int kScalePerTile = kTileScale / 16, kScaleChunks = kBlockTiles * kScalePerTile;
  constexpr int kScalePer = (kScaleChunks + kThreads - 1) / kThreads;
  const int tid = static_cast<int>(threadIdx.x);
  int wrb = m0 / C, wj = m0 - wrb * C, xj = wj;
  const uint32_t* code_src[kCodePer];
  const uint8_t* scale_src[kScalePer > 0 ? kScalePer : 1];
  auto set_weight_row = [&]() {
#pragma unroll
    for (int u = 0; u < kCodePer; ++u) {
      const int c = tid + u * kThreads, i = min(wrb * kBlockTiles + c / kChunks, last_tile_row);
      code_src[u] = a.codes + (static_cast<int64_t>(i) * C * 32 * BITS + (c % kChunks) * 4);
    }
    if constexpr (kScalePerTile > 0) {
#pragma unroll
      for (int u = 0; u < kScalePer; ++u) {
        const int c = tid + u * kThreads, i = min(wrb * kBlockTiles + c / kScalePerTile, last_tile_row);
        scale_src[u] = a.scales + ScaleSlot(static_cast<int64_t>(i) * kTileRows, 0, a.blocks_across) * (kBlockScale / 16) +
                       (c % kScalePerTile) * 16;
      }
    }
  };
  set_weight_row();
  auto stage_weights = [&](int slot) {
    const uint32_t base = stages_address + slot * kStage;
#pragma unroll
    for (int u = 0; u < kCodePer; ++u)
      if (kCodeChunks % kThreads == 0 || tid + u * kThreads < kCodeChunks)
        CopyAsync16(base + (tid + u * kThreads) * 16, code_src[u] + wj * 32 * BITS, 16);
    // One block per tile: block column wj >> col_shift. SPT blocks: columns SPT wj .., those past
    // the last one zeros (their activations are zeros too).
#pragma unroll
    for (int u = 0; u < kScalePer; ++u) {
      const int c = tid + u * kThreads;
      if constexpr (kScalePerTile > 0) {
        if (kScaleChunks % kThreads != 0 && c >= kScaleChunks) continue;
        if constexpr (SPT == 1) {
          CopyAsync16(base + kCodeBytes + c * 16, scale_src[u] + (wj >> ws.col_shift) * kTileScale, 16);
        } else {
          const bool inside = wj * SPT + c % kScalePerTile * 16 / kBlockScale < a.blocks_across;
          CopyAsync16(base + kCodeBytes + c * 16, scale_src[u] + (inside ? wj * kTileScale : 0), inside ? 16 : 0);
        }
      }
    }
    if (++wj == C) {
      wj = 0;
      ++wrb;
      set_weight_row();
    }
  };
  auto stage_x = [&](int slot) {
    const int col0 = xj * kTileCols;
    const uint32_t base = stages_address + slot * kStage + kCodeBytes + kScaleBytes;
    if (x_aligned16) {  // 16 bytes (8 columns) at a time
#pragma unroll
      for (int c = tid; c < NT * 8 * 8; c += kThreads) {
        const int n = c >> 3, col = col0 + 8 * (c & 7);
        const int64_t left = n < batch ? (a.cols - col) * 2 : 0;  // bytes of the row from col on
        const int bytes = left <= 0 ? 0 : left >= 16 ? 16 : static_cast<int>(left);
        CopyAsync16(base + (n * kXStride + 8 * (c & 7)) * 2, bytes ? x + n * ldx + col : x, bytes);
      }
    } else {  // rows only 4-byte aligned: pairs
#pragma unroll 4
      for (int c = tid; c < NT * 8 * 32; c += kThreads) {
        const int n = c >> 5, col = col0 + 2 * (c & 31);
        const int bytes = n < batch && col < a.cols ? 4 : 0;
        CopyAsync4(base + (n * kXStride + 2 * (c & 31)) * 2, bytes ? x + n * ldx + col : x, bytes);
      }
    }
    if (++xj == C) xj = 0;
  };

  // The pair table from the codebook's splits; the first stages' weights go out first.
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k)
    if (m0 + k < m1) stage_weights((m0 + k) % kStages);
  __shared__ uint32_t book[kMaxCodebook];
  if (threadIdx.x < kMaxCodebook) book[threadIdx.x] = SplitBf16(a.book[threadIdx.x]);
  __syncthreads();
  BuildTable<BITS, true, false>(table, book, threadIdx.x, kThreads);
  GridDependencyWait();  // activations, outputs and scratch: after the previous kernel
#pragma unroll
  for (int k = 0; k < kStages - 1; ++k) {
    if (m0 + k < m1) stage_x((m0 + k) % kStages);
    CopyAsyncCommit();  // group k: stage k's activations (and, in group 0, every prologue weight)
  }

  float acc[kRowTiles][NT][4];
  auto clear = [&](float (&v)[kRowTiles][NT][4]) {
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) v[r][nt][i] = 0.0f;
  };
  clear(acc);
  // Output row and activation row of sum (r, nt, i) of warp w, lane l (mma C-fragment order).
  auto output_row = [](int rb, int w, int r, int l, int i) {
    return (static_cast<int64_t>(rb) * kBlockTiles + w * kRowTiles + r) * kTileRows + (l >> 2) + 8 * (i >> 1);
  };
  auto batch_row = [](int nt, int l, int i) { return nt * 8 + 2 * (l & 3) + (i & 1); };
  __shared__ unsigned ticket;

  // Ends this block's part of row block rb: the outputs, or a partial sum.
  auto flush = [&](int rb) {
    const int first = WarpOf(rb * C, M, R), last = WarpOf(rb * C + C - 1, M, R);
    if (first == last) {
#pragma unroll
      for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const int64_t row = output_row(rb, warp, r, lane, i);
            const int n = batch_row(nt, lane, i);
            if (row < a.rows && n < batch) y[n * ldy + row] = WithOutliers(a, x, ldx, n, row, acc[r][nt][i]);
          }
    } else {
      float* mine = ws.partials + (static_cast<int64_t>(rb) * ws.segments + (static_cast<int>(blockIdx.x) - first)) * kOut;
#pragma unroll
      for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          reinterpret_cast<float4*>(mine)[((warp * kRowTiles + r) * NT + nt) * 32 + lane] =
              make_float4(acc[r][nt][0], acc[r][nt][1], acc[r][nt][2], acc[r][nt][3]);
      __syncthreads();
      if (threadIdx.x == 0) ticket = TicketAcqRel(ws.tickets + rb);
      __syncthreads();
      if (ticket == static_cast<unsigned>(last - first)) {  // the last range of this row block
        // A thread adds kPer float4s over the ranges in order, kChunk of them at a time with all
        // their loads of a range in flight together (the loads' latency, not their bytes, is the cost).
        constexpr int kPer = kOut / 4 / kThreads, kChunk = 8;
        static_assert(kOut % (4 * kThreads) == 0 && kPer % kChunk == 0);
        const float4* parts = reinterpret_cast<const float4*>(ws.partials) + static_cast<int64_t>(rb) * ws.segments * (kOut / 4);
        for (int k0 = 0; k0 < kPer; k0 += kChunk) {
          float4 sum[kChunk];
#pragma unroll
          for (int k = 0; k < kChunk; ++k) sum[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          for (int sg = 0; sg <= last - first; ++sg) {
            float4 v[kChunk];
#pragma unroll
            for (int k = 0; k < kChunk; ++k)
              v[k] = __ldcg(parts + static_cast<int64_t>(sg) * (kOut / 4) + (k0 + k) * kThreads + threadIdx.x);
#pragma unroll
            for (int k = 0; k < kChunk; ++k) sum[k].x += v[k].x, sum[k].y += v[k].y, sum[k].z += v[k].z, sum[k].w += v[k].w;
          }
#pragma unroll
          for (int k = 0; k < kChunk; ++k) {
            const int q = (k0 + k) * kThreads + static_cast<int>(threadIdx.x);  // float4 q: (warp, r, nt, lane) as stored
            const int l = q & 31, nt = (q >> 5) % NT, wr = q / (32 * NT);
            const float v4[4] = {sum[k].x, sum[k].y, sum[k].z, sum[k].w};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const int64_t row = output_row(rb, wr / kRowTiles, wr % kRowTiles, l, i);
              const int n = batch_row(nt, l, i);
              if (row < a.rows && n < batch) y[n * ldy + row] = WithOutliers(a, x, ldx, n, row, v4[i]);
            }
          }
        }
        if (threadIdx.x == 0) ws.tickets[rb] = 0;
      }
    }
    clear(acc);
  };

  const uint32_t terms_base = table_address | static_cast<uint32_t>(lane * L::kEntryBytes);
  int rb = m0 / C, j = m0 - rb * C;
  for (int m = m0; m < m1; ++m) {
    CopyAsyncWait<kStages - 2>();  // step m's stage has landed (this thread's copies) ...
    __syncthreads();               // ... everyone's, and step m - 1's slot is free again
    if (m + kStages - 1 < m1) {
      stage_weights((m + kStages - 1) % kStages);
      stage_x((m + kStages - 1) % kStages);
    }
    CopyAsyncCommit();
    const unsigned char* st = stages + (m % kStages) * kStage;
    uint32_t w[kRowTiles][BITS], raw[kRowTiles][SPT][2];
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r) {
      const int k = warp * kRowTiles + r;
      const uint32_t* words = reinterpret_cast<const uint32_t*>(st + k * kTileCode) + lane * BITS;
      if constexpr (BITS == 4) {
        const uint4 v = *reinterpret_cast<const uint4*>(words);
        w[r][0] = v.x, w[r][1] = v.y, w[r][2] = v.z, w[r][3] = v.w;
      } else if constexpr (BITS == 2) {
        const uint2 v = *reinterpret_cast<const uint2*>(words);
        w[r][0] = v.x, w[r][1] = v.y;
      } else {
#pragma unroll
        for (int b = 0; b < BITS; ++b) w[r][b] = words[b];
      }
#pragma unroll
      for (int q = 0; q < SPT; ++q) {
        const unsigned char* sc = st + kCodeBytes + k * kTileScale + q * kBlockScale;
        if constexpr (ST == kBf16) {
          raw[r][q][0] = reinterpret_cast<const uint32_t*>(sc)[g];
        } else if constexpr (ST == kFp32) {
          const uint2 v = reinterpret_cast<const uint2*>(sc)[g];
          raw[r][q][0] = v.x, raw[r][q][1] = v.y;
        }
      }
    }
    float part[kRowTiles][NT][4];
    clear(part);
    // Adds the sums of scaling block q (all k-steps for SPT = 1) times their scales, and clears them.
    auto add_block = [&](int q) {
#pragma unroll
      for (int r = 0; r < kRowTiles; ++r) {
        const float s0 = ScaleValue<ST>(raw[r][q], 0), s1 = ScaleValue<ST>(raw[r][q], 1);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[r][nt][i] = fmaf(i < 2 ? s0 : s1, part[r][nt][i], acc[r][nt][i]);
      }
      clear(part);
    };
    const uint16_t* xs = reinterpret_cast<const uint16_t*>(st + kCodeBytes + kScaleBytes) + g * kXStride;
#pragma unroll
    for (int sp = 0; sp < 2; ++sp) {  // k-steps 2 sp and 2 sp + 1: 8 columns of each activation row
      uint4 xb[NT];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint16_t* xr = xs + nt * 8 * kXStride;
        if constexpr (kRunSteps == 1) {  // runs of 4 columns: k-step 2 sp, then 2 sp + 1
          const uint2 u = *reinterpret_cast<const uint2*>(xr + TileColumn(1, t, 16 * sp));
          const uint2 v = *reinterpret_cast<const uint2*>(xr + TileColumn(1, t, 16 * sp + 8));
          xb[nt] = make_uint4(u.x, u.y, v.x, v.y);
        } else {
          xb[nt] = *reinterpret_cast<const uint4*>(xr + TileColumn(kRunSteps, t, 16 * sp));
        }
      }
#pragma unroll
      for (int ss = 0; ss < 2; ++ss) {
        const int s = 2 * sp + ss;
        uint32_t hi[kRowTiles][4], lo[kRowTiles][4];
#pragma unroll
        for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
          for (int i = 0; i < 4; ++i) PairTerms<BITS, LO>(w[r], 4 * s + i, terms_base, hi[r][i], lo[r][i]);
        // All hi-term mmas, then all lo-term ones: an accumulator's two mmas are far apart.
#pragma unroll
        for (int h = 0; h < (LO ? 2 : 1); ++h)
#pragma unroll
          for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
              Mma(part[r][nt], h ? lo[r] : hi[r], ss ? xb[nt].z : xb[nt].x, ss ? xb[nt].w : xb[nt].y);
        if constexpr (SPT == 4) add_block(s);
      }
      if constexpr (SPT == 2) add_block(sp);
    }
    if constexpr (SPT == 1) add_block(0);
    if (++j == C || m + 1 == m1) {
      flush(rb);
      if (j == C) j = 0, ++rb;
    }
  }
  CopyAsyncWait<0>();
}

template <int BITS, int NT, int ST, bool LO, int SPT>
Status Launch(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
              int64_t ldy, cudaStream_t stream) {
  const auto kernel = GemmWideKernel<BITS, NT, ST, LO, SPT>;
  static const Status allowed = AllowAllSharedMemory(kernel);
  OWF_RETURN_IF_ERROR(allowed);
  const bool x_aligned16 = reinterpret_cast<uintptr_t>(x) % 16 == 0 && ldx % 8 == 0;
  return LaunchAfterPrevious(kernel, ws.blocks, kThreads, SharedBytes(BITS, NT, ST, SPT), stream, a, ws, x, ldx,
                             x_aligned16, batch, y, ldy);
}

template <int BITS, int NT, bool LO, int SPT>
Status LaunchScale(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                   int64_t ldy, cudaStream_t stream) {
  switch (static_cast<GpuScale>(a.scale_type)) {
    case GpuScale::kBf16: return Launch<BITS, NT, kBf16, LO, SPT>(a, ws, x, ldx, batch, y, ldy, stream);
    case GpuScale::kFp32: return Launch<BITS, NT, kFp32, LO, SPT>(a, ws, x, ldx, batch, y, ldy, stream);
    case GpuScale::kNone: break;
  }
  if constexpr (SPT == 1) return Launch<BITS, NT, static_cast<int>(GpuScale::kNone), LO, 1>(a, ws, x, ldx, batch, y, ldy, stream);
  return InvalidArgument("scaling blocks narrower than a tile need scales");
}

template <int BITS, int NT, int SPT>
Status LaunchTerms(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                   int64_t ldy, cudaStream_t stream) {
  if constexpr (BITS >= 3 && BITS <= kMaxTensorBits) {  // hi terms only: 3- and 4-bit grids (int3, int4, e2m1, e3m0)
    if (a.book_bf16) return LaunchScale<BITS, NT, false, SPT>(a, ws, x, ldx, batch, y, ldy, stream);
  }
  return LaunchScale<BITS, NT, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream);
}

template <int BITS, int NT>
Status LaunchBlocks(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                    int64_t ldy, cudaStream_t stream) {
  const int spt = ScalesPerTile(a);  // 1, 2 or 4: GemmWideRows took the matrix
  if (spt == 1) return LaunchTerms<BITS, NT, 1>(a, ws, x, ldx, batch, y, ldy, stream);
  if constexpr (BITS >= 2) {  // blocks of 32 or 16 columns: 2- to 6-bit codes (GemvKernelRows)
    if (spt == 2) return LaunchTerms<BITS, NT, 2>(a, ws, x, ldx, batch, y, ldy, stream);
    if (spt == 4) return LaunchTerms<BITS, NT, 4>(a, ws, x, ldx, batch, y, ldy, stream);
  }
  return InvalidArgument("the wide GEMM takes blocks of 32 or 16 columns with 2- to 6-bit codes");
}

}  // namespace

int GemmWideRows(const MatrixArgs& a, int batch) {
  if (batch <= kGemvMaxBatch || batch > 64) return 0;
  // The tile geometries the GEMVs take: one scale per row per tile, or blocks of 32 or 16 columns.
  if (GemvKernelRows(a, kGemvMaxBatch) != kGemvMaxBatch) return 0;
  const int rows = batch <= 32 ? 32 : 64;
  // At 17-32 rows two 16-row GEMVs (weights read twice) beat this kernel on matrices of fewer than
  // 8192 rows (4096x4096: 26 against 30 us; 4096x14336: 47 against 48 us; docs/gpu-performance.md).
  if (rows == 32 && a.rows < 8192) return 0;
  const auto max_bytes = MaxSharedBytes();
  if (!max_bytes.ok() ||
      SharedBytes(a.code_bits, rows / 8, a.scale_type, ScalesPerTile(a)) > *max_bytes - kStaticSharedBytes)
    return 0;
  return rows;
}

GemvWorkspace PlanGemmWide(const MatrixArgs& a, int sms, int kernel_rows) {
  GemvWorkspace p;
  const int64_t row_blocks = (a.row_tiles + BlockTiles(kernel_rows / 8) - 1) / BlockTiles(kernel_rows / 8);
  p.steps = row_blocks * a.col_tiles;
  // At least kMinStepsPerBlock steps per block: the last range of a row block adds every range's
  // partial sums (64 KB each at 64 rows), so small matrices take fewer blocks.
  p.blocks = static_cast<int>(std::clamp<int64_t>(p.steps / kMinStepsPerBlock, 1, sms));
  p.warps = p.blocks;  // ranges
  p.col_shift = ScaleColumnShift(a);
  const auto range_of = [&](int64_t n) { return ((n + 1) * p.blocks - 1) / p.steps; };
  p.segments = 1;
  for (int64_t rb = 0; rb < row_blocks; ++rb)
    p.segments = std::max(p.segments, range_of(rb * a.col_tiles + a.col_tiles - 1) - range_of(rb * a.col_tiles) + 1);
  p.partial_floats = row_blocks * p.segments * RowBlockOutputs(kernel_rows / 8);
  return p;
}

Status LaunchGemmWide(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch,
                      int kernel_rows, float* y, int64_t ldy, cudaStream_t stream) {
  return WithCodeBits(a.code_bits, [&](auto bits) -> Status {
    constexpr int kBits = decltype(bits)::value;
    if (kernel_rows == 32) return LaunchBlocks<kBits, 4>(a, ws, x, ldx, batch, y, ldy, stream);
    return LaunchBlocks<kBits, 8>(a, ws, x, ldx, batch, y, ldy, stream);
  });
}

}  // namespace owf::cuda::detail
