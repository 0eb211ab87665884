// The small-batch (1-16 activation rows) fused dequantise-GEMV: fp32 on CUDA cores for 1-2 rows,
// bf16 tensor-core mma for 3-16 rows (5-6 bit codes: the 16-row kernel, with per-code tables,
// Lookup).
//
// At batch 1 a 4-bit product is bound by reading the codes: the H100 streams 12.8 bytes per SM
// per cycle, so a 16x64 tile (512 bytes of 4-bit codes) must cost at most ~160 warp instructions
// and ~40 shared-memory wavefronts at full bandwidth. Each lane decodes its 32 codes two at a time
// with ONE byte permute (the pair's byte, placed next to the lane's copy offset, is the
// shared-memory address) and ONE 8-byte shared-memory load from a table indexed by the pair (each
// lane reads its own copy, so the loads never conflict on banks). On CUDA cores the entry holds
// both fp32 codebook values (at batch 1, for codebooks that are exactly fp16, both as fp16: half
// the bytes), then two fp32 FMAs per activation row; the activations sit in shared
// memory as fp32, permuted so that a lane reads the 4 of a 16-column k-step with one 16-byte load,
// and a lane keeps a column tile's activations in registers for R row tiles (a step). On tensor
// cores the pair's entry is two mma A-fragment registers, the hi and lo terms of a two-term bf16
// split of each value (2^-17 relative), in the two halves of a table row at a 64 KB-aligned
// shared address (the byte permute gives the whole address; two 4-byte loads put the terms
// straight into the mma's registers), and each goes through an m16n8k16 mma against B fragments
// of 8 activation rows, which a lane loads from global memory one step ahead.
// The two scales a lane needs per tile (rows g and g + 8) are adjacent in the GPU layout and come
// with one load.
//
// Work split: the steps (groups of R row tiles x column tiles, group major) are cut into equal
// contiguous ranges, one per warp of a one-block-per-SM grid; a warp keeps the next step's codes
// and scales in flight while it works on the current one. Where a group spans several warps
// (segments), each writes its partial sums: the block's first warp in the group adds its block's
// in shared memory (after a named barrier), and where the group spans blocks the last block to
// finish (a ticket per group) adds the blocks' sums. Both add in a fixed order: results never
// depend on timing.
//
// Tuning, measured on an H100 (docs/gpu-performance.md): 16 warps of up to 128 registers beat 20,
// 24 or 32 warps with fewer registers; R = 4 beats R = 2 at batch 1, R = 2 beats 4 at batch 2 and 1
// at batch 4; on tensor cores R = 4 at 8 rows, and R = 2 at 16 (4 spills registers there and was
// slower).
#include <algorithm>

#include "lookup.cuh"
#include "rotate.cuh"

namespace owf::cuda::detail {
namespace {

#ifdef OWF_GEMV_TRACE
__device__ unsigned long long* gemv_trace = nullptr;
// Stamp k (0-7 per warp; owf_cuda_bench --trace names them): the global timer in ns.
__device__ __forceinline__ void Trace(int gw, int k) {
  if (gemv_trace && (threadIdx.x & 31) == 0) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    gemv_trace[gw * 8 + k] = t;
  }
}
#define OWF_TRACE(k) Trace(gw, k)
#else
#define OWF_TRACE(k)
#endif

// A counter read with acquire semantics at GPU scope (the other side of TicketAcqRel's release).
__device__ __forceinline__ unsigned LoadAcquire(const unsigned* counter) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(counter) : "memory");
  return v;
}

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kMinTilesPerWarp = 4;

// The activation rows a kernel is built for: batch 1 and 2 have their own, 3-8 and 9-16 share
// one each. Kernels of 8 and 16 rows use tensor cores.
constexpr int KernelRows(int batch) { return batch <= 2 ? batch : batch <= 8 ? 8 : 16; }
constexpr bool OnTensorCores(int kernel_rows) { return kernel_rows >= 8; }

// Rows of tiles a warp works on together (a step): they share the activations of each column
// tile, which a lane holds in registers (shared-memory bandwidth is the tightest resource).
constexpr int RowTilesPerStep(int kernel_rows) { return kernel_rows == 1 || kernel_rows == 8 ? 4 : 2; }

// Blocks of 32 or 16 columns (ScalesPerTile 2 or 4) take codes of at least kNarrowMinBits bits
// (1-bit codes: the split-K GEMM; fewer kernels to build).
constexpr int kNarrowMinBits = 2;

// A group's outputs for kernel_rows activation rows: the partial sums of one segment (GemvKernel's
// flush). A block keeps two slots of them per warp in shared memory, for the groups its range
// starts and ends in where they are split across the block's warps.
constexpr int GroupOutputs(int kernel_rows) { return RowTilesPerStep(kernel_rows) * kTileRows * kernel_rows; }
constexpr int64_t SlotBytes(int kernel_rows) { return int64_t{kWarps} * 2 * GroupOutputs(kernel_rows) * 4; }

// Dynamic shared memory of a launch: the lookup table, then (CUDA cores) the activations as fp32,
// then the slots. On tensor cores the table starts at a shared-memory address that is a multiple
// of 65536, so that one byte permute gives a lookup's whole address (TensorTermsAddress): up to
// 64 KB of padding come first.
constexpr int64_t SharedBytes(int bits, int kernel_rows, int64_t col_tiles) {
  const bool tensor = OnTensorCores(kernel_rows);
  return LookupBytes(bits, tensor) + (tensor ? kTableAlign : kernel_rows * col_tiles * kTileCols * 4) +
         SlotBytes(kernel_rows);
}

// The scales of the two rows (g, g + 8) a lane works on, adjacent in the GPU layout (ScaleSlot):
// pair p is scales 2p and 2p + 1, as raw bits for scale storage ST (GpuScale; ScaleValue decodes).
template <int ST>
__device__ __forceinline__ void LoadScalePair(const uint8_t* __restrict__ s, int p, uint32_t (&raw)[2]) {
  if constexpr (ST == static_cast<int>(GpuScale::kBf16)) {
    raw[0] = __ldg(reinterpret_cast<const uint32_t*>(s) + p);
  } else if constexpr (ST == static_cast<int>(GpuScale::kFp32)) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(s) + p);
    raw[0] = v.x, raw[1] = v.y;
  }
}

// Batch 1 on a rotated matrix (GemvKernel's ROT): the activation row x rotated in fp32 in the row
// buffer v (the seeded signs, then RotateRowInShared: the CPU's operations, without the bf16
// rounding of RotateActivations), then staged into xs as the kernel stages an unrotated row. Rows
// of fewer than 16384 values (GemvRotatesActivations): pieces of up to 8192 values, 16 registers
// per thread. Inlined: a call would cost the kernel callee-saved registers (spills in its main
// loop).
constexpr int kGemvMaxRotatedPiece = 8192;
static_assert(kThreads == kRotateThreads, "the GEMV's blocks rotate rows as RotateRowsKernel's do");
__device__ __forceinline__ void StageRotatedActivations(const uint16_t* __restrict__ x, int cols, int col_tiles,
                                                     int run_steps, const uint32_t* __restrict__ negative, float* v,
                                                     float* xs) {
  LoadRowInShared<1>(x, cols, negative, /*signs=*/true, v);
  __syncthreads();
  RotateRowInShared<kGemvMaxRotatedPiece>(v, cols, negative, /*inverse=*/false,
                                          [&](int i, float value) { v[RowSlot(i)] = value; });
  const auto at = [&](int c) { return c < cols ? v[RowSlot(c)] : 0.0f; };
  for (int u = threadIdx.x; u < col_tiles * 16; u += kThreads) {  // as load_x and store_x (GemvKernel)
    const int tile_col = (u >> 4) * 64;
    const int c0 = tile_col + FragmentColumn(run_steps, u & 3, (u >> 2) & 3, 0);
    const int c1 = tile_col + FragmentColumn(run_steps, u & 3, (u >> 2) & 3, 1);
    reinterpret_cast<float4*>(xs)[u] = make_float4(at(c0), at(c0 + 1), at(c1), at(c1 + 1));
  }
}

// B: activation rows the kernel is built for (batch <= B; the rest are zeros and not written);
// ST: the scale storage (GpuScale); HALF: fp16 table entries (Lookup); LO (tensor cores): the lo
// terms go through their own mmas (without: codebooks that are exactly bf16, whose lo terms are
// all zero); SPT: scaling blocks per 64-column tile, 1, or 2 or 4 for blocks of 32 or 16 columns
// (lane runs of 4 / SPT k-steps, TileColumn: k-steps 2q, 2q + 1 or k-step q in block q); ROT
// (batch 1): x is a rotated matrix's unrotated row, with the signs `negative`, which the kernel
// rotates (StageRotatedActivations).
template <int BITS, int B, int ST, bool HALF, bool LO = true, int SPT = 1, bool ROT = false>
__global__ void __launch_bounds__(kThreads, 1)
    GemvKernel(const __grid_constant__ MatrixArgs a, GemvWorkspace ws, const uint16_t* __restrict__ x,
               int64_t ldx, bool x_aligned16, int batch, float* __restrict__ y, int64_t ldy,
               const uint32_t* __restrict__ negative) {
  constexpr bool TC = OnTensorCores(B);
  static_assert(!TC || BITS <= kMaxTensorBits || (B == 16 && LO), "5-6 bit codes on tensor cores: 16 rows, lo terms");
  static_assert(!ROT || B == 1, "the GEMV rotates activations at batch 1");
  using L = Lookup<BITS, TC, HALF>;
  static_assert(L::kIndexBits == Lookup<BITS, TC>::kIndexBits && L::kBytePerm == Lookup<BITS, TC>::kBytePerm,
                "fp16 tables are addressed like fp32 ones (GroupOffset)");
  constexpr int R = RowTilesPerStep(B);
  constexpr int NT = TC ? B / 8 : 1;             // mma n-tiles of 8 activation rows
  constexpr int kSums = TC ? NT * 4 : 2 * B;     // a lane's sums per row tile
  constexpr int kGroupOutputs = GroupOutputs(B);  // one segment's partial sums (PlanGemv sizes them)
  extern __shared__ __align__(16) unsigned char smem[];
  // Step m = (group m / C, column tile m % C) covers row tiles R * group .. R * group + R - 1.
  const int C = static_cast<int>(a.col_tiles), M = static_cast<int>(ws.steps);
  const int last_tile_row = static_cast<int>(a.row_tiles) - 1;
  const int W = static_cast<int>(ws.warps);  // warps with work (each has at least one step)
  float* xs = reinterpret_cast<float*>(smem + L::kBytes);  // CUDA cores: [B][C * 64], permuted per tile
  // The lookup table: at the start on CUDA cores, at the first multiple of 65536 (as a
  // shared-memory address) on tensor cores.
  unsigned char* table = smem;
  uint32_t table_address = 0;
  if constexpr (TC) {
    table_address = AlignedTableAddress(smem);
    table += table_address - static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  }
  // The block's slots (SlotBytes) after the table, or after the activations on CUDA cores, for the
  // groups split across the block's warps (flush).
  float* slots = reinterpret_cast<float*>(TC ? table + L::kBytes : smem + L::kBytes + int64_t{B} * C * kTileCols * 4);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int gw = static_cast<int>(blockIdx.x) * kWarps + warp;
  OWF_TRACE(0);
  LaunchDependents();  // the next product on the stream may start its blocks as this one's finish
  const int m0 = gw < W ? RangeStart(gw, M, W) : M, m1 = gw < W ? RangeStart(gw + 1, M, W) : M;
  const uint32_t copy = static_cast<uint32_t>(lane % L::kCopies) * L::kEntryBytes;

  // Loads of the step at the load cursor (group lg, column tile lj), which then moves on. The
  // row-dependent parts (the lane's code words in column tile 0, and its scale rows) are set up
  // once per group. Row tiles are clamped to the matrix: a short last group reads, and never
  // writes, copies of its last row tile.
  int lg = m0 / C, lj = m0 - lg * C;
  const uint32_t* group_codes[R];
  int scale_pairs[R];  // the lane's scale pair in column tile 0
  auto set_group = [&]() {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = min(lg * R + r, last_tile_row);
      group_codes[r] = a.codes + (static_cast<int64_t>(i) * C * 32 + lane) * BITS;
      scale_pairs[r] = static_cast<int>(ScaleSlot(i * kTileRows + g, 0, a.blocks_across) / 2);
    }
  };
  // Loads tile r of the step at the load cursor into ring slot r; next_step() moves the cursor on.
  const int last_block_column = static_cast<int>(a.blocks_across) - 1;
  uint32_t ring[R][BITS], ring_scale[R][SPT][2];
  auto load_tile = [&](int r) {
    if constexpr (BITS == 4) {
      const uint4 v = LoadStreaming16(group_codes[r] + lj * (32 * BITS));
      ring[r][0] = v.x, ring[r][1] = v.y, ring[r][2] = v.z, ring[r][3] = v.w;
    } else {
      LoadLaneWords<BITS>(group_codes[r] + lj * (32 * BITS), ring[r]);
    }
    if constexpr (SPT == 1) {
      LoadScalePair<ST>(a.scales, scale_pairs[r] + 8 * (lj >> ws.col_shift), ring_scale[r][0]);
    } else {  // the last tile's later blocks may lie past the matrix: its activations there are 0
#pragma unroll
      for (int q = 0; q < SPT; ++q)
        LoadScalePair<ST>(a.scales, scale_pairs[r] + 8 * min(lj * SPT + q, last_block_column), ring_scale[r][q]);
    }
  };
  // Tensor cores: the B fragments of the load cursor's column tile, from activation row nt * 8 + g.
  // In lane runs (TileColumn) a lane's are 4 * kRunSteps adjacent columns per span of kRunSteps
  // k-steps: two 16-byte loads (runs of 16 or 8 columns) or four 8-byte loads (runs of 4) where
  // the rows are 16-byte aligned and the tile is whole; else pair by pair, zeros past the batch
  // and the matrix.
  constexpr int kRunSteps = 4 / SPT;
  const uint16_t* x_lane[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) x_lane[nt] = nt * 8 + g < batch ? x + (nt * 8 + g) * ldx : nullptr;
  uint32_t x_frag[TC ? 4 : 1][NT][2];  // the current step's, then the next one's
  auto load_fragments = [&]() {
    if constexpr (TC) {
      const bool fast = x_aligned16 && (lj + 1) * kTileCols <= a.cols;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint16_t* p = x_lane[nt] ? x_lane[nt] + lj * kTileCols : nullptr;
        if (p && fast && kRunSteps == 1) {
#pragma unroll
          for (int s = 0; s < 4; ++s) {
            const uint2 u = __ldg(reinterpret_cast<const uint2*>(p + TileColumn(1, t, 8 * s)));
            x_frag[s][nt][0] = u.x, x_frag[s][nt][1] = u.y;
          }
        } else if (p && fast) {  // k-steps 0-1 and 2-3
          const uint4 u = __ldg(reinterpret_cast<const uint4*>(p + TileColumn(kRunSteps, t, 0)));
          const uint4 v = __ldg(reinterpret_cast<const uint4*>(p + TileColumn(kRunSteps, t, 16)));
          x_frag[0][nt][0] = u.x, x_frag[0][nt][1] = u.y, x_frag[1][nt][0] = u.z, x_frag[1][nt][1] = u.w;
          x_frag[2][nt][0] = v.x, x_frag[2][nt][1] = v.y, x_frag[3][nt][0] = v.z, x_frag[3][nt][1] = v.w;
        } else {
#pragma unroll
          for (int k = 0; k < 8; ++k) {  // cols is even: a pair is in the matrix or past it
            const int c = FragmentColumn(kRunSteps, t, k / 2, k % 2);
            x_frag[k / 2][nt][k % 2] =
                p && lj * kTileCols + c < a.cols ? __ldg(reinterpret_cast<const uint32_t*>(p + c)) : 0u;
          }
        }
      }
    }
  };
  auto next_step = [&]() {
    if (++lj == C) {
      lj = 0;
      ++lg;
      set_group();
    }
  };
  // The first step's code loads go out before anything else; each later step's tile r is loaded
  // into slot r as soon as the current step's tile r has been used (one step ahead). Launched
  // after another kernel with programmatic dependent launch, this one may start before that one
  // has finished: the weights and the lookup tables (from the codebook, a launch parameter) need
  // nothing from it, but the activations, the outputs and the scratch (partial sums, tickets) wait
  // for it (GridDependencyWait below).
  set_group();
  if (m0 < m1) {
#pragma unroll
    for (int r = 0; r < R; ++r) load_tile(r);
  }

  // CUDA cores: the activations as permuted fp32 (the 4 values of (tile, k-step s, t) are those of
  // A-fragment elements 0, 1, 4, 5; their loads are all issued before the table is built).
  constexpr int kXUnits = 8;  // float4s of activations per thread per pass
  const int x_units = TC ? 0 : B * C * 16;
  uint32_t xlo[kXUnits], xhi[kXUnits];
  auto load_x = [&](int base) {
#pragma unroll
    for (int k = 0; k < kXUnits; ++k) {
      const int u = base + k * kThreads + static_cast<int>(threadIdx.x);
      int b = 0, q = u;  // q: tile q >> 4, k-step (q >> 2) & 3, t = q & 3 (B <= 2: no division)
#pragma unroll
      for (int i = 1; i < B; ++i)
        if (q >= C * 16) q -= C * 16, ++b;
      const int tile_col = (q >> 4) * 64;
      const int c0 = tile_col + FragmentColumn(kRunSteps, q & 3, (q >> 2) & 3, 0);
      const int c1 = tile_col + FragmentColumn(kRunSteps, q & 3, (q >> 2) & 3, 1);
      xlo[k] = xhi[k] = 0;  // bf16 pairs at c0 and c1 (cols is even)
      if (u < x_units && b < batch && c0 < a.cols) xlo[k] = __ldg(reinterpret_cast<const uint32_t*>(x + b * ldx + c0));
      if (u < x_units && b < batch && c1 < a.cols) xhi[k] = __ldg(reinterpret_cast<const uint32_t*>(x + b * ldx + c1));
    }
  };
  auto store_x = [&](int base) {
#pragma unroll
    for (int k = 0; k < kXUnits; ++k) {
      const int u = base + k * kThreads + static_cast<int>(threadIdx.x);
      if (u < x_units)
        reinterpret_cast<float4*>(xs)[u] =
            make_float4(__uint_as_float(xlo[k] << 16), __uint_as_float(xlo[k] & 0xFFFF0000u),
                        __uint_as_float(xhi[k] << 16), __uint_as_float(xhi[k] & 0xFFFF0000u));
    }
  };
  // The lookup table from the codebook (16-byte stores): fp32 values, fp16 values, or the pair's
  // hi and lo bf16x2 terms (book holds each value as fp32 bits, as fp16 bits, or its split
  // hi | lo << 16).
  OWF_TRACE(7);
  __shared__ uint32_t book[kMaxCodebook];
  if (threadIdx.x < kMaxCodebook) {
    const float v = a.book[threadIdx.x];
    book[threadIdx.x] = TC ? SplitBf16(v) : HALF ? __half_as_ushort(__float2half_rn(v)) : __float_as_uint(v);
  }
  __syncthreads();
  BuildTable<BITS, TC, HALF>(table, book, threadIdx.x, kThreads);
  OWF_TRACE(1);
  GridDependencyWait();
  OWF_TRACE(2);
  if (m0 < m1) {
    load_fragments();
    next_step();
  }
  if constexpr (!TC) {
    if constexpr (ROT) {  // a rotated matrix's unrotated activations (the row buffer after the slots)
      StageRotatedActivations(x, static_cast<int>(a.cols), C, kRunSteps, negative, slots + SlotBytes(B) / 4, xs);
    } else {
      for (int base = 0; base < x_units; base += kXUnits * kThreads) {
        load_x(base);
        store_x(base);
      }
    }
  }
  __syncthreads();
  OWF_TRACE(3);

  // The lane's sums for each row tile of the current group: rows g + 8 h, activation row b at
  // [h * B + b] on CUDA cores; the mma C fragments (row g + 8 (i / 2), activation row
  // nt * 8 + 2 t + i % 2 at [nt * 4 + i]) on tensor cores.
  float acc[R][kSums];
  auto clear_sums = [&]() {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int k = 0; k < kSums; ++k) acc[r][k] = 0.0f;
  };
  clear_sums();
  // Row in the group and activation row of sum k; only t = 0 lanes hold CUDA-core totals.
  auto half_of = [](int k) { return TC ? (k & 3) >> 1 : k / B; };  // sum k's row: g + 8 half_of(k)
  auto row_in_group = [&](int r, int k) { return r * kTileRows + g + 8 * half_of(k); };
  auto batch_row = [&](int k) { return TC ? (k >> 2) * 8 + 2 * t + (k & 1) : k % B; };
  const bool holds_totals = TC || t == 0;

  // Group grp's outputs from a lane's sums of outputs lane + 32 k, with the outliers' corrections.
  // At 16 rows a group's partial sums are laid out activation row major (output i: activation row
  // i / kGroupRows, row i % kGroupRows of the group), so that each store of outputs writes 32
  // adjacent ones (28672x8192: 2 us faster); elsewhere row major (output i: row i / B, activation
  // row i % B), which measured faster at 8 rows (docs/gpu-performance.md).
  constexpr int kPerLane = kGroupOutputs / 32;
  constexpr int kGroupRows = R * kTileRows;
  constexpr bool kBatchMajor = B == 16;
  static_assert(kGroupOutputs % 32 == 0 && kGroupRows % 32 == 0);
  auto part_index = [&](int row, int b) { return kBatchMajor ? b * kGroupRows + row : row * B + b; };
  auto store_outputs = [&](int grp, const float (&sum)[kPerLane]) {
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int idx = lane + 32 * k, b = kBatchMajor ? idx / kGroupRows : idx % B;
      const int64_t row = static_cast<int64_t>(grp) * kGroupRows + (kBatchMajor ? idx % kGroupRows : idx / B);
      if (row < a.rows && b < batch) y[b * ldy + row] = WithOutliers(a, x, ldx, b, row, sum[k]);
    }
  };
  // This block's sum of group grp (block `part` of its blocks 0..last) goes to global memory and
  // takes a ticket there: the last of the group's blocks adds their parts in block order. At the
  // end of a warp's range (at_end) the other blocks are often done already: where the ticket says
  // so, the warp adds their parts to its own without storing it or taking a ticket (one round
  // trip to L2 fewer at the call's end; the same sums in the same order). The loads of several
  // parts are independent, so about 16 per lane are in flight together.
  auto add_across_blocks = [&](int grp, int part, int last, const float (&mine)[kPerLane], bool at_end) {
    float* parts = ws.partials + static_cast<int64_t>(grp) * ws.segments * kGroupOutputs + lane;
    unsigned ticket = 0;
    if (at_end) {
      if (lane == 0) ticket = LoadAcquire(ws.tickets + grp);
      ticket = __shfl_sync(0xFFFFFFFFu, ticket, 0);
    }
    if (!at_end || ticket != static_cast<unsigned>(last)) {
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) parts[part * kGroupOutputs + 32 * k] = mine[k];
      __syncwarp();
      if (lane == 0) ticket = TicketAcqRel(ws.tickets + grp);
      ticket = __shfl_sync(0xFFFFFFFFu, ticket, 0);
      if (ticket != static_cast<unsigned>(last)) return;
    }
    __syncwarp();  // the lanes' loads below follow lane 0's acquire
    constexpr int kPartsInFlight = kPerLane >= 8 ? 2 : 16 / kPerLane;
    float sum[kPerLane];
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) sum[k] = 0.0f;
#pragma unroll kPartsInFlight
    for (int p = 0; p <= last; ++p)
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) sum[k] += p == part ? mine[k] : __ldcg(parts + p * kGroupOutputs + 32 * k);
    store_outputs(grp, sum);
    if (lane == 0) ws.tickets[grp] = 0;
  };
  // Ends the lane's part of group grp: the outputs, or a segment partial.
  auto flush = [&](int grp) {
    if constexpr (!TC) {  // four-lane sums
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int k = 0; k < kSums; ++k) {
          acc[r][k] += __shfl_xor_sync(0xFFFFFFFFu, acc[r][k], 1);
          acc[r][k] += __shfl_xor_sync(0xFFFFFFFFu, acc[r][k], 2);
        }
    }
    const int wa = WarpOf(grp * C, M, W), wb = WarpOf(grp * C + C - 1, M, W);
    if (wa == wb) {
      if (holds_totals) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int k = 0; k < kSums; ++k) {
            const int64_t row = static_cast<int64_t>(grp) * R * kTileRows + row_in_group(r, k);
            const int b = batch_row(k);
            if (row < a.rows && b < batch) y[b * ldy + row] = WithOutliers(a, x, ldx, b, row, acc[r][k]);
          }
      }
    } else {
      // Split across warps wa..wb: the warps of each block add their parts in shared memory (warp
      // lo, in warp order), and where the group spans blocks ba..bb each block's sum
      // goes to global memory, where the last block's warp adds them in block order. Either way the
      // sums are added in a fixed order: the same bits whichever warp finishes last.
      const int first = static_cast<int>(blockIdx.x) * kWarps;
      const int lo = max(wa, first), hi = min(wb, first + kWarps - 1);  // this block's warps in the group
      const int ba = wa / kWarps, bb = wb / kWarps;
      // Slot 0 of a warp holds the group its range starts in, slot 1 the group it ends in: the
      // group's warps after wa start in it, and wa ends in it (and starts in it only where its
      // range starts with the group).
      const auto slot = [&](int w, int wa_slot) { return slots + ((w - first) * 2 + (w == wa ? wa_slot : 0)) * kGroupOutputs; };
      const int my_slot = m0 < grp * C ? 1 : 0;
      float* mine = slot(gw, my_slot);
      if (holds_totals) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int k = 0; k < kSums; ++k) mine[part_index(row_in_group(r, k), batch_row(k))] = acc[r][k];
      }
      // Warp lo adds the block's parts: where other warps of the block share the group, lo's range
      // ends in it (only hi's may go on past it), so it gets here at the end of its range, and
      // waits on a named barrier (one per warp boundary of the block) for the others, which
      // arrive without waiting.
      const unsigned barrier = 1 + (lo - first), threads = (hi - lo + 1) * 32;
      if (gw != lo) {
        asm volatile("bar.arrive %0, %1;" ::"r"(barrier), "r"(threads) : "memory");
      } else {
        if (lo < hi) {
          asm volatile("bar.sync %0, %1;" ::"r"(barrier), "r"(threads) : "memory");
        } else {
          __syncwarp();
        }
        float sum[kPerLane];
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) sum[k] = 0.0f;
        for (int w = lo; w <= hi; ++w) {
          const float* part = slot(w, my_slot) + lane;
#pragma unroll
          for (int k = 0; k < kPerLane; ++k) sum[k] += part[32 * k];
        }
        if (ba == bb) {
          store_outputs(grp, sum);
        } else {
          add_across_blocks(grp, static_cast<int>(blockIdx.x) - ba, bb - ba, sum, m1 <= grp * C + C);
        }
      }
    }
    clear_sums();
  };

  int grp = m0 / C, j = m0 - grp * C;
  // CUDA cores: tile r of the step times this column tile's activations (4 per k-step per
  // activation row, in registers), fp32 FMAs; the tile's sums per scaling block, row (g, g + 8)
  // and activation row.
  constexpr int kChains = SPT == 4 ? 4 : 2;
  auto tile_on_cuda_cores = [&](int r, const float4 (&xv)[4][B], float (&part)[SPT][2][B]) {
    // Independent partial sums per row keep the FMA chains short: even and odd k-steps in one
    // block per tile, else one per block (k-steps 0-1 and 2-3, or each k-step).
    float sums2[2][kChains][B];
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int c = 0; c < kChains; ++c)
#pragma unroll
        for (int b = 0; b < B; ++b) sums2[h][c][b] = 0.0f;
#pragma unroll
    for (int p = 0; p < 32 / L::kGroup; ++p) {
      const unsigned char* entry = smem + GroupOffset<BITS>(ring[r], p, copy);
      float v[L::kGroup];
      if constexpr (L::kGroup == 4) {
        const float4 e4 = *reinterpret_cast<const float4*>(entry);
        v[0] = e4.x, v[1] = e4.y, v[2] = e4.z, v[3] = e4.w;
      } else if constexpr (HALF) {
        const float2 e2 = __half22float2(*reinterpret_cast<const __half2*>(entry));
        v[0] = e2.x, v[1] = e2.y;
      } else if constexpr (L::kGroup == 2) {
        const float2 e2 = *reinterpret_cast<const float2*>(entry);
        v[0] = e2.x, v[1] = e2.y;
      } else {
        v[0] = *reinterpret_cast<const float*>(entry);
      }
#pragma unroll
      for (int k = 0; k < L::kGroup; ++k) {
        const int q = p * L::kGroup + k, s = q >> 3, e = q & 7;  // fragment element e of k-step s
        const int h = (e >> 1) & 1, xi = (e & 1) + 2 * (e >> 2);   // row g + 8 h, x column xi
#pragma unroll
        for (int b = 0; b < B; ++b) {
          const float4& xb = xv[s][b];
          const float xval = xi == 0 ? xb.x : xi == 1 ? xb.y : xi == 2 ? xb.z : xb.w;
          const int c = SPT == 1 ? s & 1 : SPT == 2 ? s >> 1 : s;
          sums2[h][c][b] = fmaf(v[k], xval, sums2[h][c][b]);
        }
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int b = 0; b < B; ++b) {
        if constexpr (SPT == 1) {
          part[0][h][b] = sums2[h][0][b] + sums2[h][1][b];
        } else {
#pragma unroll
          for (int q = 0; q < SPT; ++q) part[q][h][b] = sums2[h][q][b];
        }
      }
  };
  // Tensor cores: tile r of the step, its pairs' hi and lo terms each through an mma per n-tile;
  // the sums per scaling block.
  auto tile_on_tensor_cores = [&](int r, const uint32_t (&xb)[TC ? 4 : 1][NT][2], float (&part)[SPT][NT][4]) {
#pragma unroll
    for (int q = 0; q < SPT; ++q)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) part[q][nt][i] = 0.0f;
#pragma unroll
    for (int s = 0; s < (TC ? 4 : 0); ++s) {
      uint32_t hi[4], lo[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if constexpr (TC) PairTerms<BITS, LO>(ring[r], 4 * s + i, table_address | copy, hi[i], lo[i]);
      }
      const int q = SPT == 1 ? 0 : SPT == 2 ? s >> 1 : s;  // the k-step's scaling block
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        Mma(part[q][nt], hi, xb[s][nt][0], xb[s][nt][1]);
        if constexpr (LO) Mma(part[q][nt], lo, xb[s][nt][0], xb[s][nt][1]);
      }
    }
  };
  // Adds tile r's sums, block by block times their scales, to acc[r] (sum k of block q is
  // part_at(q, k)); with `more`, ring slot r is refilled once its scales are read.
  auto add_scaled = [&](int r, bool more, auto&& part_at) {
    float scale[SPT][2];
#pragma unroll
    for (int q = 0; q < SPT; ++q) scale[q][0] = ScaleValue<ST>(ring_scale[r][q], 0), scale[q][1] = ScaleValue<ST>(ring_scale[r][q], 1);
    if (more) load_tile(r);
#pragma unroll
    for (int k = 0; k < kSums; ++k) {
      float v = acc[r][k];
#pragma unroll
      for (int q = 0; q < SPT; ++q) v = fmaf(scale[q][half_of(k)], part_at(q, k), v);
      acc[r][k] = v;
    }
  };
  // One step: the R tiles of column tile j, in the ring; with `more`, each slot is refilled with
  // the next step's tile once used.
  auto compute_step = [&](bool more) {
    float4 xv[TC ? 1 : 4][B];
    if constexpr (!TC) {
      const float* xt = xs + j * 64 + 4 * t;
#pragma unroll
      for (int s = 0; s < 4; ++s)
#pragma unroll
        for (int b = 0; b < B; ++b) xv[s][b] = *reinterpret_cast<const float4*>(xt + b * C * 64 + 16 * s);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if constexpr (TC) {
        float part[SPT][NT][4];
        tile_on_tensor_cores(r, x_frag, part);
        add_scaled(r, more, [&](int q, int k) { return part[q][k >> 2][k & 3]; });
      } else {
        float part[SPT][2][B];
        tile_on_cuda_cores(r, xv, part);
        add_scaled(r, more, [&](int q, int k) { return part[q][k / B][k % B]; });
      }
    }
    if (more) {
      load_fragments();  // into the registers just used: their latency overlaps the next decode
      next_step();
    }
    if (++j == C) {
      flush(grp);
      j = 0;
      ++grp;
    }
  };
  for (int m = m0; m < m1; ++m) {
    compute_step(m + 1 < m1);
#ifdef OWF_GEMV_TRACE
    if (m == m0) OWF_TRACE(4);
#endif
  }
  OWF_TRACE(5);
  if (m1 > m0 && j != 0) flush(grp);  // a range ending inside a group
  OWF_TRACE(6);
}

template <int BITS, int B, int ST, bool HALF, bool LO = true, int SPT = 1, bool ROT = false>
Status Launch(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
              int64_t ldy, cudaStream_t stream, const uint32_t* negative) {
  const int bytes =
      static_cast<int>(SharedBytes(BITS, B, a.col_tiles) + (ROT ? RotateRowsSharedBytes(a.cols) : 0));
  const auto kernel = GemvKernel<BITS, B, ST, HALF, LO, SPT, ROT>;
  // Once per kernel: allow all the dynamic shared memory the device offers (GemvKernelRows checked
  // this launch's need against it), rather than a driver call per product.
  static const Status allowed = AllowAllSharedMemory(kernel);
  OWF_RETURN_IF_ERROR(allowed);
  const bool x_aligned16 = reinterpret_cast<uintptr_t>(x) % 16 == 0 && ldx % 8 == 0;
  return LaunchAfterPrevious(kernel, ws.blocks, kThreads, bytes, stream, a, ws, x, ldx, x_aligned16, batch, y, ldy,
                             negative);
}

template <int BITS, int B, bool HALF, bool LO = true, int SPT = 1, bool ROT = false>
Status LaunchScale(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                   int64_t ldy, cudaStream_t stream, const uint32_t* negative) {
  constexpr int kBf16 = static_cast<int>(GpuScale::kBf16), kFp32 = static_cast<int>(GpuScale::kFp32);
  constexpr int kNone = static_cast<int>(GpuScale::kNone);
  switch (static_cast<GpuScale>(a.scale_type)) {
    case GpuScale::kBf16:
      return Launch<BITS, B, kBf16, HALF, LO, SPT, ROT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
    case GpuScale::kFp32:
      return Launch<BITS, B, kFp32, HALF, LO, SPT, ROT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
    case GpuScale::kNone: break;
  }
  if constexpr (SPT == 1) return Launch<BITS, B, kNone, HALF, LO, 1, ROT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  return InvalidArgument("scaling blocks narrower than a tile need scales");
}

// The kernel for kernel_rows with BITS-bit codes and SPT scaling blocks per tile: fp16 tables at
// batch 1 where the codebook is exactly fp16, hi terms only on tensor cores where it is exactly
// bf16 (3- and 4-bit grids: int4, e2m1, int3); 5-6 bit codes take the 16-row kernel for 3-16
// rows (GemvKernelRows).
template <int BITS, int SPT>
Status LaunchBits(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch,
                  int kernel_rows, float* y, int64_t ldy, cudaStream_t stream, const uint32_t* negative) {
  if (negative) {  // batch 1 rotating its activations (GemvRotatesActivations)
    if constexpr (LookupGroup(BITS, false) == 2) {
      if (a.book_half)
        return LaunchScale<BITS, 1, true, true, SPT, true>(a, ws, x, ldx, batch, y, ldy, stream, negative);
    }
    return LaunchScale<BITS, 1, false, true, SPT, true>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  }
  if constexpr (LookupGroup(BITS, false) == 2) {
    if (kernel_rows == 1 && a.book_half)
      return LaunchScale<BITS, 1, true, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  }
  if (kernel_rows == 1) return LaunchScale<BITS, 1, false, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  if (kernel_rows == 2) return LaunchScale<BITS, 2, false, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  if constexpr (BITS <= kMaxTensorBits) {
    if constexpr (BITS >= 3) {
      if (a.book_bf16 && kernel_rows == 8)
        return LaunchScale<BITS, 8, false, false, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
      if (a.book_bf16) return LaunchScale<BITS, 16, false, false, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
    }
    if (kernel_rows == 8) return LaunchScale<BITS, 8, false, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
    return LaunchScale<BITS, 16, false, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  } else {  // 5-6 bit codes: the 16-row kernel only (fewer kernels to build)
    if (kernel_rows == 16)
      return LaunchScale<BITS, 16, false, true, SPT>(a, ws, x, ldx, batch, y, ldy, stream, negative);
  }
  return Internal("no small-batch kernel of " + std::to_string(kernel_rows) + " rows for " + std::to_string(BITS) +
                  "-bit codes");
}

}  // namespace

#ifdef OWF_GEMV_TRACE
Status SetGemvTrace(unsigned long long* trace) {
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpyToSymbol(gemv_trace, &trace, sizeof(trace)));
  return Status::Ok();
}
#endif

int GemvPlanIndex(int kernel_rows) {
  static_assert(kGemvPlans == 4);
  return kernel_rows <= 1 ? 0 : kernel_rows == 2 ? 1 : kernel_rows <= 8 ? 2 : 3;
}

GemvWorkspace PlanGemv(const MatrixArgs& a, int sms, int kernel_rows) {
  GemvWorkspace p;
  const int rows_per_step = RowTilesPerStep(kernel_rows);
  const int64_t groups = (a.row_tiles + rows_per_step - 1) / rows_per_step;
  p.steps = groups * a.col_tiles;
  p.blocks = static_cast<int>(std::clamp<int64_t>(p.steps * rows_per_step / (kWarps * kMinTilesPerWarp), 1, sms));
  p.warps = std::min<int64_t>(static_cast<int64_t>(p.blocks) * kWarps, p.steps);
  p.col_shift = ScaleColumnShift(a);
  // The most blocks (parts in global memory) one group's steps meet, exactly as the kernel splits
  // them among warps.
  const auto block_of = [&](int64_t n) { return ((n + 1) * p.warps - 1) / p.steps / kWarps; };
  p.segments = 1;
  for (int64_t grp = 0; grp < groups; ++grp)
    p.segments = std::max(p.segments, block_of(grp * a.col_tiles + a.col_tiles - 1) - block_of(grp * a.col_tiles) + 1);
  p.partial_floats = groups * p.segments * rows_per_step * kTileRows * kernel_rows;
  return p;
}

bool GemvRotatesActivations(const MatrixArgs& a) {
  if (GemvKernelRows(a, 1) != 1 || a.cols >= 2 * kGemvMaxRotatedPiece) return false;
  const auto max_bytes = MaxSharedBytes();
  return max_bytes.ok() &&
         SharedBytes(a.code_bits, 1, a.col_tiles) + RotateRowsSharedBytes(a.cols) <= *max_bytes - kStaticSharedBytes;
}

int GemvKernelRows(const MatrixArgs& a, int batch) {
  static_assert(KernelRows(1) == 1 && KernelRows(2) == 2 && KernelRows(3) == 8 && KernelRows(9) == 16 &&
                kGemvMaxBatch == 16);
  if (batch < 1 || batch > kGemvMaxBatch) return 0;
  // 32-bit tile, word and scale indices.
  if ((a.row_tiles + 3) * a.col_tiles * 32 * a.code_bits >= (int64_t{1} << 31) || a.rows * a.blocks_across >= (int64_t{1} << 31))
    return 0;
  // One scale per row per 64-column tile (blocks 64 * 2^k columns wide, one block across, or no
  // scales) with lane runs of 4 k-steps; or blocks of 32 or 16 columns (MX- and NV-style
  // formats, and the sub-blocks of two-level scales: 2 or 4 per tile, lane runs of 2 or 1
  // k-steps) with 2- to 6-bit codes on the kernels of 1, 2, 8 and 16 rows (5-6 bit codes: 1, 2
  // and 16).
  const int spt = ScalesPerTile(a);
  if (spt == 0 || a.run_steps != 4 / spt) return 0;
  if (spt > 1 && a.code_bits < kNarrowMinBits) return 0;
  const auto max_bytes = MaxSharedBytes();
  if (!max_bytes.ok()) return 0;
  const auto fits = [&](int rows) {
    return (!OnTensorCores(rows) || a.code_bits <= kMaxTensorBits || rows == 16) &&
           SharedBytes(a.code_bits, rows, a.col_tiles) <= *max_bytes - kStaticSharedBytes;
  };
  // Batches 3-4 run faster on the 8-row tensor-core kernel than on a CUDA-core one of 4 rows
  // (28672x8192: 52 against 82 us with 4-bit codes), and 5-6 bit codes on the 16-row one (the 4-row
  // kernel is gone: docs/gpu-performance.md). The CUDA-core kernels keep the activations in shared
  // memory: where they do not fit, the tensor-core kernel for 8 rows (which reads them from global
  // memory) takes the product. Batch 2 takes it too on matrices of 2^27 weights or more: on
  // 28672x8192 the 8-row kernel (51.0 us at batch 4) beats the 2-row CUDA-core one (57.1 us at
  // batch 2); on the 8B-sized shapes they are within 1 us, and on 4096x4096 CUDA cores win (10.6
  // against 14.8 us; docs/gpu-performance.md).
  const int rows = KernelRows(batch);
  if (rows == 2 && a.rows * a.cols >= (int64_t{1} << 27) && fits(8)) return 8;
  if (fits(rows)) return rows;
  if (!OnTensorCores(rows) && fits(8)) return 8;
  // 5-6 bit codes at 3-8 rows, or where their activations do not fit, run on the 16-row kernel.
  return fits(16) ? 16 : 0;
}

Status LaunchGemv(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch,
                  int kernel_rows, float* y, int64_t ldy, cudaStream_t stream, const uint32_t* rotate_negative) {
  if (rotate_negative && (kernel_rows != 1 || !GemvRotatesActivations(a)))
    return Internal("only the batch-1 GEMV on CUDA cores rotates activations, where the row fits");
  return WithCodeBits(a.code_bits, [&](auto bits) -> Status {
    constexpr int kBits = decltype(bits)::value;
    const int spt = ScalesPerTile(a);
    if (spt == 1) return LaunchBits<kBits, 1>(a, ws, x, ldx, batch, kernel_rows, y, ldy, stream, rotate_negative);
    if constexpr (kBits >= kNarrowMinBits) {  // blocks of 32 or 16 columns
      if (spt == 2) return LaunchBits<kBits, 2>(a, ws, x, ldx, batch, kernel_rows, y, ldy, stream, rotate_negative);
      if (spt == 4) return LaunchBits<kBits, 4>(a, ws, x, ldx, batch, kernel_rows, y, ldy, stream, rotate_negative);
    }
    return InvalidArgument("the small-batch kernels do not take this scaling block width with these codes");
  });
}

}  // namespace owf::cuda::detail
