// The small-batch (1-4 activation rows) fused dequantise-GEMV on CUDA cores, in fp32.
//
// At batch 1 a 4-bit product is bound by reading the codes: the H100 streams 12.8 bytes per SM
// per cycle, so a 16x64 tile (512 bytes of 4-bit codes) must cost at most ~160 warp instructions
// and ~40 shared-memory wavefronts at full bandwidth. Each lane decodes its 32 codes two at a time
// with ONE byte permute (the pair's byte, placed next to the lane's copy offset, is the
// shared-memory address) and ONE 8-byte shared-memory load of both fp32 codebook values from a
// table indexed by the pair (each lane reads its own copy, so the loads never conflict on banks),
// then two fp32 FMAs per activation row. The activations sit in shared memory as fp32, permuted so
// that a lane reads the 4 of a 16-column k-step with one 16-byte load, and a lane keeps a column
// tile's activations in registers for R row tiles (a step); the two scales a lane needs per tile
// (rows g and g + 8) are adjacent in the GPU layout and come with one load.
//
// Work split: the steps (groups of R row tiles x column tiles, group major) are cut into equal
// contiguous ranges, one per warp of a one-block-per-SM grid; a warp keeps the next step's codes
// and scales in flight while it works on the current one. Where a group spans several warps
// (segments), each writes its partial sums, and the last to finish (a ticket per group) adds them
// in segment order: results never depend on timing.
//
// Tuning, measured on an H100 (README): 16 warps of up to 128 registers beat 20, 24 or 32 warps
// with fewer registers; R = 4 beats R = 2 at batch 1, R = 2 beats 4 at batch 2 and 1 at batch 4.
#include <algorithm>

#include "device_common.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kWarps = 16;
constexpr int kThreads = kWarps * 32;
constexpr int kMinTilesPerWarp = 4;
constexpr int kStaticSharedBytes = 1024;  // the kernel's static shared memory (the codebook), rounded up

// How a lane decodes its codes: kGroup codes per shared-memory load from a table of
// 2^(kGroup * BITS) entries of kGroup fp32 values, with kCopies interleaved copies (entry e of
// copy c at byte e * kRowBytes + c * kEntryBytes) so that the lanes of one shared-memory access
// phase never hit the same bank.
constexpr int LookupGroup(int bits) { return bits <= 2 ? 4 : bits <= 4 ? 2 : 1; }
constexpr int LookupCopies(int bits) { return LookupGroup(bits) == 4 ? 16 : 32; }
constexpr int LookupBytes(int bits) {
  return (1 << (LookupGroup(bits) * bits)) * LookupGroup(bits) * 4 * LookupCopies(bits);
}
template <int BITS>
struct Lookup {
  static constexpr int kGroup = LookupGroup(BITS);
  static constexpr int kIndexBits = kGroup * BITS;
  static constexpr int kEntries = 1 << kIndexBits;
  static constexpr int kEntryBytes = kGroup * 4;
  static constexpr int kCopies = LookupCopies(BITS);
  static constexpr int kRowBytes = kEntryBytes * kCopies;
  static constexpr int kBytes = LookupBytes(BITS);
  static constexpr bool kBytePerm = kIndexBits == 8 && kRowBytes == 256;  // address = one prmt
};

// The activation rows a kernel is built for: batch 1 and 2 have their own, 3 and 4 share one.
constexpr int KernelRows(int batch) { return batch <= 2 ? batch : 4; }

// Dynamic shared memory of a launch: the lookup table, then the activations as fp32.
constexpr int64_t SharedBytes(int bits, int kernel_rows, int64_t col_tiles) {
  return LookupBytes(bits) + kernel_rows * col_tiles * kTileCols * 4;
}

// Byte offset in the table of group p of a lane's words; copy = the lane's copy offset (bytes).
template <int BITS>
__device__ __forceinline__ uint32_t GroupOffset(const uint32_t (&w)[BITS], int p, uint32_t copy) {
  using L = Lookup<BITS>;
  if constexpr (L::kBytePerm) {
    // Byte p % 4 of word p / 4 into byte 1, the copy offset (< 256) into byte 0, zeros above.
    return __byte_perm(w[(p * L::kIndexBits) >> 5], copy, 0x5504u | (static_cast<uint32_t>(p & 3) << 4));
  } else {
    return FieldAt<L::kIndexBits, BITS>(w, p) * L::kRowBytes + copy;
  }
}

// First tile of warp w's range, and the warp whose range holds tile n (64-bit products; tile
// counts fit in 32 bits, GemvHandles checks).
__device__ __forceinline__ int RangeStart(int w, int tiles, int warps) {
  return static_cast<int>(static_cast<int64_t>(w) * tiles / warps);
}
__device__ __forceinline__ int WarpOf(int n, int tiles, int warps) {
  return static_cast<int>((static_cast<int64_t>(n + 1) * warps - 1) / tiles);
}

// The scales of the two rows (g, g + 8) a lane works on, adjacent in the GPU layout (ScaleSlot):
// pair p is scales 2p and 2p + 1; raw bits, then values, for scale storage ST (GpuScale).
template <int ST>
__device__ __forceinline__ void LoadScalePair(const uint8_t* __restrict__ s, int p, uint32_t (&raw)[2]) {
  if constexpr (ST == static_cast<int>(GpuScale::kBf16)) {
    raw[0] = __ldg(reinterpret_cast<const uint32_t*>(s) + p);
  } else if constexpr (ST == static_cast<int>(GpuScale::kFp32)) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(s) + p);
    raw[0] = v.x, raw[1] = v.y;
  }
}
template <int ST>
__device__ __forceinline__ float ScaleValue(const uint32_t (&raw)[2], int h) {
  if constexpr (ST == static_cast<int>(GpuScale::kBf16)) return __uint_as_float(h == 0 ? raw[0] << 16 : raw[0] & 0xFFFF0000u);
  else if constexpr (ST == static_cast<int>(GpuScale::kFp32)) return __uint_as_float(raw[h]);
  else return 1.0f;
}

// Rows of tiles a warp works on together: they share the activations of each column tile, which
// a lane holds in registers (shared-memory bandwidth is the kernel's tightest resource).
template <int B>
constexpr int kRowTilesPerStep = B == 1 ? 4 : 2;

// B: activation rows the kernel is built for (batch <= B; the rest are zeros and not written);
// ST: the scale storage (GpuScale).
template <int BITS, int B, int ST>
__global__ void __launch_bounds__(kThreads, 1)
    GemvKernel(MatrixArgs a, GemvWorkspace ws, const uint16_t* __restrict__ x, int64_t ldx, int batch,
               float* __restrict__ y, int64_t ldy) {
  using L = Lookup<BITS>;
  constexpr int R = kRowTilesPerStep<B>;
  constexpr int kGroupOutputs = R * kTileRows * B;  // one segment's partial sums
  static_assert(kGroupOutputs <= kGemvGroupOutputs, "segment partials outgrow the workspace");
  extern __shared__ __align__(16) unsigned char smem[];
  // Step m = (group m / C, column tile m % C) covers row tiles R * group .. R * group + R - 1.
  const int C = static_cast<int>(a.col_tiles), M = static_cast<int>(ws.steps);
  const int last_tile_row = static_cast<int>(a.row_tiles) - 1;
  const int W = static_cast<int>(ws.warps);  // warps with work (each has at least one step)
  float* xs = reinterpret_cast<float*>(smem + L::kBytes);  // [B][C * 64], permuted per tile

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int gw = static_cast<int>(blockIdx.x) * kWarps + warp;
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
  uint32_t ring[R][BITS], ring_scale[R][2];
  auto load_tile = [&](int r) {
    if constexpr (BITS == 4) {
      const uint4 v = LoadStreaming16(group_codes[r] + lj * (32 * BITS));
      ring[r][0] = v.x, ring[r][1] = v.y, ring[r][2] = v.z, ring[r][3] = v.w;
    } else {
      LoadLaneWords<BITS>(group_codes[r] + lj * (32 * BITS), ring[r]);
    }
    LoadScalePair<ST>(a.scales, scale_pairs[r] + 8 * (lj >> ws.col_shift), ring_scale[r]);
  };
  auto next_step = [&]() {
    if (++lj == C) {
      lj = 0;
      ++lg;
      set_group();
    }
  };
  // The first step's loads go out before the tables are built; each later step's tile r is
  // loaded into slot r as soon as the current step's tile r has been used (one step ahead).
  set_group();
  if (m0 < m1) {
#pragma unroll
    for (int r = 0; r < R; ++r) load_tile(r);
    next_step();
  }

  // The activations as permuted fp32 (the 4 values of (tile, k-step s, t) are columns
  // 16 s + 2 t + {0, 1, 8, 9} of the tile; their loads are all issued before the table is built),
  // and the lookup table from the codebook (16-byte stores).
  constexpr int kXUnits = 8;  // float4s of activations per thread per pass
  const int x_units = B * C * 16;
  uint32_t xlo[kXUnits], xhi[kXUnits];
  auto load_x = [&](int base) {
#pragma unroll
    for (int k = 0; k < kXUnits; ++k) {
      const int u = base + k * kThreads + static_cast<int>(threadIdx.x);
      const int b = u / (C * 16), q = u - b * C * 16;
      const int col = (q >> 4) * 64 + 16 * ((q >> 2) & 3) + 2 * (q & 3);
      xlo[k] = xhi[k] = 0;  // bf16 pairs at col and col + 8 (cols is even)
      if (u < x_units && b < batch && col < a.cols) xlo[k] = __ldg(reinterpret_cast<const uint32_t*>(x + b * ldx + col));
      if (u < x_units && b < batch && col + 8 < a.cols)
        xhi[k] = __ldg(reinterpret_cast<const uint32_t*>(x + b * ldx + col + 8));
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
  load_x(0);
  __shared__ float book[kMaxCodebook];
  if (threadIdx.x < kMaxCodebook) book[threadIdx.x] = threadIdx.x < a.codebook_size ? a.codebook[threadIdx.x] : 0.0f;
  __syncthreads();
  for (int u = threadIdx.x; u < L::kBytes / 16; u += kThreads) {
    const int e = u * 16 / L::kRowBytes, f0 = u * 16 % L::kRowBytes / 4;
    float v[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = book[(e >> (((f0 + k) % L::kGroup) * BITS)) & ((1 << BITS) - 1)];
    reinterpret_cast<float4*>(smem)[u] = make_float4(v[0], v[1], v[2], v[3]);
  }
  store_x(0);
  for (int base = kXUnits * kThreads; base < x_units; base += kXUnits * kThreads) {
    load_x(base);
    store_x(base);
  }
  __syncthreads();

  // The lane's sums for rows g and g + 8 of each row tile of the current group.
  float acc[R][2][B];
  auto clear_sums = [&]() {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][h][b] = 0.0f;
  };
  clear_sums();

  // Ends the lane's part of group grp: four-lane sums, then the outputs or a segment partial.
  auto flush = [&](int grp) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int b = 0; b < B; ++b) {
          acc[r][h][b] += __shfl_xor_sync(0xFFFFFFFFu, acc[r][h][b], 1);
          acc[r][h][b] += __shfl_xor_sync(0xFFFFFFFFu, acc[r][h][b], 2);
        }
    const int wa = WarpOf(grp * C, M, W), wb = WarpOf(grp * C + C - 1, M, W);
    if (wa == wb) {
      if (t == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int64_t row = static_cast<int64_t>(grp * R + r) * kTileRows + g + 8 * h;
            if (row < a.rows)
#pragma unroll
              for (int b = 0; b < B; ++b)
                if (b < batch) y[b * ldy + row] = WithOutliers(a, x, ldx, b, row, acc[r][h][b]);
          }
      }
    } else {
      float* mine = ws.partials + (static_cast<int64_t>(grp) * ws.segments + (gw - wa)) * kGroupOutputs;
      if (t == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int b = 0; b < B; ++b) mine[(r * kTileRows + g + 8 * h) * B + b] = acc[r][h][b];
      }
      __threadfence();
      __syncwarp();
      unsigned ticket = 0;
      if (lane == 0) ticket = atomicAdd(ws.tickets + grp, 1u);
      ticket = __shfl_sync(0xFFFFFFFFu, ticket, 0);
      if (ticket == static_cast<unsigned>(wb - wa)) {  // the last segment of this group
        __threadfence();
        const float* parts = ws.partials + static_cast<int64_t>(grp) * ws.segments * kGroupOutputs;
        for (int idx = lane; idx < kGroupOutputs; idx += 32) {
          float sum = 0.0f;
          for (int sg = 0; sg <= wb - wa; ++sg) sum += __ldcg(parts + sg * kGroupOutputs + idx);
          const int64_t row = static_cast<int64_t>(grp) * R * kTileRows + idx / B;
          if (row < a.rows && idx % B < batch) y[(idx % B) * ldy + row] = WithOutliers(a, x, ldx, idx % B, row, sum);
        }
        if (lane == 0) ws.tickets[grp] = 0;
      }
    }
    clear_sums();
  };

  int grp = m0 / C, j = m0 - grp * C;
  // One step: the R tiles of column tile j, in the ring; with `more`, each slot is refilled with
  // the next step's tile once used.
  auto compute_step = [&](bool more) {
    // This column tile's activations: 4 per k-step per activation row.
    float4 xv[4][B];
    const float* xt = xs + j * 64 + 4 * t;
#pragma unroll
    for (int s = 0; s < 4; ++s)
#pragma unroll
      for (int b = 0; b < B; ++b) xv[s][b] = *reinterpret_cast<const float4*>(xt + b * C * 64 + 16 * s);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      // Two independent partial sums per row (even and odd k-steps) keep the FMA chains short.
      float part[2][2][B];
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int c = 0; c < 2; ++c)
#pragma unroll
          for (int b = 0; b < B; ++b) part[h][c][b] = 0.0f;
#pragma unroll
      for (int p = 0; p < 32 / L::kGroup; ++p) {
        const unsigned char* entry = smem + GroupOffset<BITS>(ring[r], p, copy);
        float v[L::kGroup];
        if constexpr (L::kGroup == 4) {
          const float4 e4 = *reinterpret_cast<const float4*>(entry);
          v[0] = e4.x, v[1] = e4.y, v[2] = e4.z, v[3] = e4.w;
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
            part[h][s & 1][b] = fmaf(v[k], xval, part[h][s & 1][b]);
          }
        }
      }
      const float s0 = ScaleValue<ST>(ring_scale[r], 0), s1 = ScaleValue<ST>(ring_scale[r], 1);
      if (more) load_tile(r);
#pragma unroll
      for (int b = 0; b < B; ++b) {
        acc[r][0][b] = fmaf(s0, part[0][0][b] + part[0][1][b], acc[r][0][b]);
        acc[r][1][b] = fmaf(s1, part[1][0][b] + part[1][1][b], acc[r][1][b]);
      }
    }
    if (more) next_step();
    if (++j == C) {
      flush(grp);
      j = 0;
      ++grp;
    }
  };
  for (int m = m0; m < m1; ++m) compute_step(m + 1 < m1);
  if (m1 > m0 && j != 0) flush(grp);  // a range ending inside a group
}

Result<int> MaxSharedBytes() { return CachedDeviceAttribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>(); }

template <int BITS, int B, int ST>
Status Launch(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
              int64_t ldy, cudaStream_t stream) {
  const int bytes = static_cast<int>(SharedBytes(BITS, B, a.col_tiles));
  const auto kernel = GemvKernel<BITS, B, ST>;
  // Once per kernel: allow all the dynamic shared memory the device offers (GemvHandles checked
  // this launch's need against it), rather than a driver call per product.
  static const cudaError_t allowed = [&] {
    cudaFuncAttributes attributes{};
    const auto max_bytes = MaxSharedBytes();
    if (!max_bytes.ok()) return cudaErrorInvalidValue;
    const cudaError_t e = cudaFuncGetAttributes(&attributes, kernel);
    if (e != cudaSuccess) return e;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                *max_bytes - static_cast<int>(attributes.sharedSizeBytes));
  }();
  OWF_CUDA_RETURN_IF_ERROR(allowed);
  kernel<<<static_cast<unsigned>(ws.blocks), kThreads, bytes, stream>>>(a, ws, x, ldx, batch, y, ldy);
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

template <int BITS, int B>
Status LaunchScale(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                   int64_t ldy, cudaStream_t stream) {
  switch (static_cast<GpuScale>(a.scale_type)) {
    case GpuScale::kBf16: return Launch<BITS, B, static_cast<int>(GpuScale::kBf16)>(a, ws, x, ldx, batch, y, ldy, stream);
    case GpuScale::kFp32: return Launch<BITS, B, static_cast<int>(GpuScale::kFp32)>(a, ws, x, ldx, batch, y, ldy, stream);
    case GpuScale::kNone: break;
  }
  return Launch<BITS, B, static_cast<int>(GpuScale::kNone)>(a, ws, x, ldx, batch, y, ldy, stream);
}

template <int BITS>
Status LaunchBits(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                  int64_t ldy, cudaStream_t stream) {
  static_assert(KernelRows(1) == 1 && KernelRows(2) == 2 && KernelRows(3) == 4 && KernelRows(4) == 4);
  if (batch == 1) return LaunchScale<BITS, 1>(a, ws, x, ldx, batch, y, ldy, stream);
  if (batch == 2) return LaunchScale<BITS, 2>(a, ws, x, ldx, batch, y, ldy, stream);
  return LaunchScale<BITS, 4>(a, ws, x, ldx, batch, y, ldy, stream);
}

}  // namespace

GemvWorkspace PlanGemv(const MatrixArgs& a, int sms, int batch) {
  GemvWorkspace p;
  const int b_rows = KernelRows(batch);
  const int rows_per_step = b_rows == 1 ? kRowTilesPerStep<1> : b_rows == 2 ? kRowTilesPerStep<2> : kRowTilesPerStep<4>;
  const int64_t groups = (a.row_tiles + rows_per_step - 1) / rows_per_step;
  p.steps = groups * a.col_tiles;
  p.blocks = static_cast<int>(std::clamp<int64_t>(p.steps * rows_per_step / (kWarps * kMinTilesPerWarp), 1, sms));
  p.warps = std::min<int64_t>(static_cast<int64_t>(p.blocks) * kWarps, p.steps);
  // Column tile j's scale column is j >> col_shift (one block across: always 0; GemvHandles admits
  // only these geometries).
  p.col_shift = 30;
  if (a.scale_type != static_cast<int>(GpuScale::kNone) && a.blocks_across > 1)
    for (int s = 0; s < 30; ++s)
      if ((int64_t{kTileCols} << s) == a.block_cols) p.col_shift = s;
  // The most warp ranges (segments) one group's steps meet, exactly as the kernel splits them.
  const auto warp_of = [&](int64_t n) { return ((n + 1) * p.warps - 1) / p.steps; };
  p.segments = 1;
  for (int64_t grp = 0; grp < groups; ++grp)
    p.segments = std::max(p.segments, warp_of(grp * a.col_tiles + a.col_tiles - 1) - warp_of(grp * a.col_tiles) + 1);
  p.partial_floats = groups * p.segments * rows_per_step * kTileRows * b_rows;
  return p;
}

bool GemvHandles(const MatrixArgs& a, int batch) {
  if (batch < 1 || batch > kGemvMaxBatch) return false;
  // 32-bit tile, word and scale indices.
  if ((a.row_tiles + 3) * a.col_tiles * 32 * a.code_bits >= (int64_t{1} << 31) || a.rows * a.blocks_across >= (int64_t{1} << 31))
    return false;
  // One scale per row per 64-column tile: blocks 64 * 2^k columns wide, one block across, or no
  // scales.
  const auto power_of_two = [](int64_t v) { return v > 0 && (v & (v - 1)) == 0; };
  if (a.scale_type != static_cast<int>(GpuScale::kNone) && a.blocks_across > 1 &&
      (a.block_cols < kTileCols || !power_of_two(a.block_cols)))
    return false;
  // The kernel's rows, not the batch: batch 3 runs the 4-row kernel.
  const auto max_bytes = MaxSharedBytes();
  return max_bytes.ok() && SharedBytes(a.code_bits, KernelRows(batch), a.col_tiles) <= *max_bytes - kStaticSharedBytes;
}

Status LaunchGemv(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                  int64_t ldy, cudaStream_t stream) {
  switch (a.code_bits) {
    case 1: return LaunchBits<1>(a, ws, x, ldx, batch, y, ldy, stream);
    case 2: return LaunchBits<2>(a, ws, x, ldx, batch, y, ldy, stream);
    case 3: return LaunchBits<3>(a, ws, x, ldx, batch, y, ldy, stream);
    case 4: return LaunchBits<4>(a, ws, x, ldx, batch, y, ldy, stream);
    case 5: return LaunchBits<5>(a, ws, x, ldx, batch, y, ldy, stream);
    case 6: return LaunchBits<6>(a, ws, x, ldx, batch, y, ldy, stream);
  }
  return InvalidArgument("code widths are 1 to 6 bits");
}

}  // namespace owf::cuda::detail
