// Device-side pieces shared by owf's CUDA kernels: the matrix arguments, scale decoding, code
// extraction from a lane's words, and the bf16 tensor-core mma.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "owf/core/status.h"
#include "owf/cuda/layout.h"

namespace owf::cuda::detail {

inline Status CudaError(const char* what, cudaError_t e) {
  return Internal(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

#define OWF_CUDA_RETURN_IF_ERROR(call)                                                        \
  do {                                                                                        \
    const cudaError_t owf_cuda_e = (call);                                                    \
    if (owf_cuda_e != cudaSuccess) return ::owf::cuda::detail::CudaError(#call, owf_cuda_e); \
  } while (0)

// Everything a kernel needs to read a TiledMatrix in device memory.
struct MatrixArgs {
  const uint32_t* codes;
  // The codebook's values, zeros past its size: launch parameters, read through __grid_constant__
  // (a kernel indexing a by-value copy would put the struct in local memory).
  float book[kMaxCodebook];
  bool book_half;  // every value is exactly an fp16 (int and small ExMy grids): 2-byte lookups
  bool book_bf16;  // every value is exactly a bf16: the tensor-core lo terms are all zero
  int code_bits;
  const uint8_t* scales;
  int scale_type;  // GpuScale
  int64_t block_rows, block_cols, blocks_across;
  int block_cols_shift;  // log2(block_cols) when it is a power of two, else -1
  int64_t rows, cols, col_tiles, row_tiles;
  int run_steps;  // k-steps per lane run: the column order inside tiles (TileColumn)
  const int32_t* outlier_row_start;  // null without outliers
  const int32_t* outlier_col;
  const float* outlier_delta;
  const int64_t* outlier_index;
  const float* outlier_value;
  int64_t outliers;
};

// A stored scale's bits (bf16 or fp32; 0 when unscaled), so that loads can be issued early and
// decoded (DecodeRawScale) only when used.
__device__ __forceinline__ uint32_t RawScale(const uint8_t* __restrict__ s, int type, int64_t b) {
  if (type == static_cast<int>(GpuScale::kBf16)) return __ldg(reinterpret_cast<const uint16_t*>(s) + b);
  if (type == static_cast<int>(GpuScale::kFp32)) return __ldg(reinterpret_cast<const uint32_t*>(s) + b);
  return 0;
}

// The value of a stored scale, exactly as DecodeScales gives it on the CPU (1 when unscaled).
__device__ __forceinline__ float DecodeRawScale(uint32_t raw, int type) {
  if (type == static_cast<int>(GpuScale::kBf16)) return __uint_as_float(raw << 16);
  if (type == static_cast<int>(GpuScale::kFp32)) return __uint_as_float(raw);
  return 1.0f;
}

__device__ __forceinline__ float DecodeScale(const uint8_t* __restrict__ s, int type, int64_t b) {
  return DecodeRawScale(RawScale(s, type, b), type);
}

// Block column of column `col` (clamped to the last block: padding columns read a real scale).
__device__ __forceinline__ int64_t BlockColumn(const MatrixArgs& a, int64_t col) {
  const int64_t b = a.block_cols_shift >= 0 ? col >> a.block_cols_shift : col / a.block_cols;
  return b < a.blocks_across ? b : a.blocks_across - 1;
}

// The scale of (row, col) is at RowBase(row) + 16 * BlockColumn(col): ScaleSlot (layout.h).
__device__ __forceinline__ int64_t RowBase(const MatrixArgs& a, int64_t row) {
  return ScaleSlot(row, 0, a.blocks_across);
}

__device__ __forceinline__ float ScaleAt(const MatrixArgs& a, int64_t row_base, int64_t col) {
  if (a.scale_type == static_cast<int>(GpuScale::kNone)) return 1.0f;
  return DecodeScale(a.scales, a.scale_type, row_base + 16 * BlockColumn(a, col));
}

// Column inside its tile of activation pair h (0, 1) of lane t's B fragment for k-step s: the
// columns of A-fragment elements 0-1 and 4-5 (TileColumn), always even.
__device__ __forceinline__ int FragmentColumn(int run_steps, int t, int s, int h) {
  return TileColumn(run_steps, t, 8 * s + 4 * h);
}

// Field f (0-based) of width W bits in a lane's N words read as one little-endian bit string.
// f is a compile-time constant after unrolling, so w stays in registers.
template <int W, int N>
__device__ __forceinline__ uint32_t FieldAt(const uint32_t (&w)[N], int f) {
  const int bit = f * W, word = bit >> 5, off = bit & 31;
  uint32_t v = w[word] >> off;
  if (off + W > 32) v |= w[word + 1] << (32 - off);
  return v & ((1u << W) - 1u);
}

// 16 bytes that are read once: not kept in L1 (which then keeps the scales and activations).
__device__ __forceinline__ uint4 LoadStreaming16(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Programmatic dependent launch (sm_90 and up; no-ops before, and when launched without it):
// LaunchDependents lets the next kernel on the stream start its blocks as this one's finish;
// GridDependencyWait waits until the kernel before this one has finished and its writes are
// visible.
__device__ __forceinline__ void LaunchDependents() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void GridDependencyWait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// The ticket of a reduction whose last arrival adds everyone's partial sums: increments *counter
// at GPU scope with acquire-release semantics and returns the count before. One thread calls it
// after a barrier (bar.warp.sync, bar.sync) that follows its group's partial-sum stores, and its
// group reads the others' partial sums (__ldcg) after a barrier that follows the ticket: the
// release publishes what the barrier ordered before it, the acquire makes the earlier arrivals'
// partial sums visible. This replaces a fence on each side (measured on an H100: a call with a
// cross-SM reduction took 2.45 against 2.91 us; docs/gpu-performance.md).
__device__ __forceinline__ unsigned TicketAcqRel(unsigned* counter) {
  unsigned before;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;" : "=r"(before) : "l"(counter) : "memory");
  return before;
}

template <int BITS>
__device__ __forceinline__ void LoadLaneWords(const uint32_t* __restrict__ p, uint32_t (&w)[BITS]) {
  if constexpr (BITS == 4) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  } else if constexpr (BITS == 2) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < BITS; ++i) w[i] = __ldg(p + i);
  }
}

// d += A (16x16 bf16, row) * B (16x8 bf16, col), fp32 accumulators. Not volatile: it has no
// side effects, and the compiler may interleave independent mma chains.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The two-term bf16 split of v as hi | lo << 16: v - hi rounded again (2^-17 relative together).
__device__ __forceinline__ uint32_t SplitBf16(float v) {
  const __nv_bfloat16 h = __float2bfloat16_rn(v);
  return __bfloat16_as_ushort(h) | static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(v - __bfloat162float(h)))) << 16;
}

// Outlier corrections of `row` for activation row b (bf16 activations at xb), added to `sum` in CSR
// order. Out of line: inlined at every output store, this loop made the 16-row GEMV's fix-up (16
// outputs per lane) 2300 instructions long; instruction-fetch stalls there were a fifth of that
// kernel's stall samples, and the stripped owf_cuda_bench was 47.9 MB against 27.4
// (docs/gpu-performance.md).
static __device__ __noinline__ float AddOutliers(const int32_t* __restrict__ row_start, const int32_t* __restrict__ col,
                                                 const float* __restrict__ delta, const uint16_t* __restrict__ xb,
                                                 int64_t row, float sum) {
  for (int32_t o = row_start[row]; o < row_start[row + 1]; ++o)
    sum = fmaf(delta[o], __uint_as_float(static_cast<uint32_t>(xb[col[o]]) << 16), sum);
  return sum;
}

// `sum` plus row `row`'s outlier corrections for activation row b (AddOutliers), if the matrix has outliers.
__device__ __forceinline__ float WithOutliers(const MatrixArgs& a, const uint16_t* __restrict__ x, int64_t ldx, int b,
                                              int64_t row, float sum) {
  return a.outlier_row_start ? AddOutliers(a.outlier_row_start, a.outlier_col, a.outlier_delta, x + b * ldx, row, sum)
                             : sum;
}

// Work cut into `warps` equal contiguous ranges of `tiles` items (warps or blocks): the first item
// of range w, and the range that holds item n (64-bit products; counts fit in 32 bits).
__device__ __forceinline__ int RangeStart(int w, int tiles, int warps) {
  return static_cast<int>(static_cast<int64_t>(w) * tiles / warps);
}
__device__ __forceinline__ int WarpOf(int n, int tiles, int warps) {
  return static_cast<int>((static_cast<int64_t>(n + 1) * warps - 1) / tiles);
}

// The scale of row g (h = 0) or g + 8 (h = 1) from a lane's raw scale pair (LoadScalePair).
template <int ST>
__device__ __forceinline__ float ScaleValue(const uint32_t (&raw)[2], int h) {
  if constexpr (ST == static_cast<int>(GpuScale::kBf16)) return __uint_as_float(h == 0 ? raw[0] << 16 : raw[0] & 0xFFFF0000u);
  else if constexpr (ST == static_cast<int>(GpuScale::kFp32)) return __uint_as_float(raw[h]);
  else return 1.0f;
}

// cp.async: `bytes` (0..size) bytes from global memory to shared address `dst`, the rest of `size`
// zero-filled; then commit and wait for all but the newest N groups.
__device__ __forceinline__ void CopyAsync16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void CopyAsync4(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// A device attribute of the current device, asked once (the kernels' launch sizes depend on it).
template <cudaDeviceAttr kAttribute>
Result<int> CachedDeviceAttribute() {
  static int cached = 0;
  if (cached > 0) return cached;
  int device = 0, value = 0;
  OWF_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  OWF_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&value, kAttribute, device));
  cached = value;
  return value;
}
inline Result<int> MultiprocessorCount() { return CachedDeviceAttribute<cudaDevAttrMultiProcessorCount>(); }

inline Result<int> MaxSharedBytes() { return CachedDeviceAttribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>(); }

// Lets `kernel` use all the dynamic shared memory the device offers (callers check their need
// against MaxSharedBytes first).
template <typename Kernel>
Status AllowAllSharedMemory(Kernel kernel) {
  OWF_ASSIGN_OR_RETURN(const int max_bytes, MaxSharedBytes());
  cudaFuncAttributes attributes{};
  OWF_CUDA_RETURN_IF_ERROR(cudaFuncGetAttributes(&attributes, kernel));
  OWF_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                max_bytes - static_cast<int>(attributes.sharedSizeBytes)));
  return Status::Ok();
}

// Launches kernel<<<blocks, threads, shared_bytes, stream>>>(args...), with programmatic dependent
// launch on compute capability 9.0 and up: the kernel's blocks may start, and load weights, while
// the previous kernel on the stream finishes (they call GridDependencyWait before reading its
// outputs).
template <typename... Params, typename... Args>
Status LaunchAfterPrevious(void (*kernel)(Params...), int blocks, int threads, int shared_bytes, cudaStream_t stream,
                           Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(blocks));
  config.blockDim = dim3(static_cast<unsigned>(threads));
  config.dynamicSmemBytes = static_cast<size_t>(shared_bytes);
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  const auto major = CachedDeviceAttribute<cudaDevAttrComputeCapabilityMajor>();
  if (major.ok() && *major >= 9) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  OWF_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
  return Status::Ok();
}

// Host-side launchers (gemm.cu, gemv.cu, dequantise.cu).

// Calls launch(std::integral_constant<int, BITS>{}) for a code width of 1 to 6 bits, so that each
// launcher instantiates its kernels once per width.
template <typename F>
Status WithCodeBits(int bits, F&& launch) {
  switch (bits) {
    case 1: return launch(std::integral_constant<int, 1>{});
    case 2: return launch(std::integral_constant<int, 2>{});
    case 3: return launch(std::integral_constant<int, 3>{});
    case 4: return launch(std::integral_constant<int, 4>{});
    case 5: return launch(std::integral_constant<int, 5>{});
    case 6: return launch(std::integral_constant<int, 6>{});
  }
  return InvalidArgument("code widths are 1 to 6 bits");
}

struct GemmWorkspace {
  float* partials = nullptr;  // k_parts * row_tiles * 8 * 128 floats
  unsigned* tickets = nullptr;  // row_tiles counters, zero between calls
  int k_parts = 1;
};
Status LaunchGemm(const MatrixArgs& a, const GemmWorkspace& ws, const uint16_t* x, int64_t ldx, int batch, float* y,
                  int64_t ldy, cudaStream_t stream);
// The number of K parts the GEMM splits a matrix into (1 when rows alone fill the GPU).
Result<int> GemmKParts(const MatrixArgs& a);

// The small-batch GEMV (gemv.cu) for 1..kGemvMaxBatch activation rows: a one-block-per-SM grid,
// `warps` warps with work over `steps` (groups of row tiles x column tiles), and per group up to
// `segments` partial sums in global memory, one per block that the group's steps meet
// (partial_floats in all; a block adds its warps' parts in shared memory first). One plan per kernel shape
// (kGemvPlans: kernels of 1, 2, 8 and 16 rows; GemvPlanIndex); the partial sums and tickets
// come from scratch memory shared by the products on one stream (device_matrix.cu).
constexpr int kGemvMaxBatch = 16;
constexpr int kGemvPlans = 4;
struct GemvWorkspace {
  float* partials = nullptr;    // partial_floats floats
  unsigned* tickets = nullptr;  // one counter per group (<= row_tiles), zero between calls
  int64_t steps = 0, segments = 1, warps = 1, partial_floats = 0;
  int blocks = 1;
  int col_shift = 30;  // column tile j's scales are in block column j >> col_shift
};
GemvWorkspace PlanGemv(const MatrixArgs& a, int sms, int kernel_rows);
// Column tile j's scales are in block column j >> ScaleColumnShift for blocks of 64 * 2^k columns
// (30 with one block across or none; narrower blocks have their own path, GemvKernelRows).
inline int ScaleColumnShift(const MatrixArgs& a) {
  if (a.scale_type != static_cast<int>(GpuScale::kNone) && a.blocks_across > 1)
    for (int s = 0; s < 30; ++s)
      if ((int64_t{kTileCols} << s) == a.block_cols) return s;
  return 30;
}
// Scaling blocks per 64-column tile as the small-batch kernels and the wide GEMM see them: 1
// without scales, with one block across or blocks of 64 * 2^k columns (ScaleColumnShift); 2 or 4
// for blocks of 32 or 16 columns; 0 for other widths (the split-K GEMM takes those).
inline int ScalesPerTile(const MatrixArgs& a) {
  if (a.scale_type == static_cast<int>(GpuScale::kNone) || a.blocks_across == 1) return 1;
  if (a.block_cols == 32 || a.block_cols == 16) return kTileCols / static_cast<int>(a.block_cols);
  return a.block_cols >= kTileCols && (a.block_cols & (a.block_cols - 1)) == 0 ? 1 : 0;
}
// What the small-batch kernels and the wide GEMM allow for their own static shared memory (the
// codebook, a ticket) when they check their dynamic shared memory against the device's limit.
constexpr int kStaticSharedBytes = 1024;
#ifdef OWF_GEMV_TRACE
// Diagnostic build (-DOWF_GEMV_TRACE=ON): the GEMV kernels write, per warp gw, the globaltimer
// (ns) and clock64 at entry, after the prologue, after the main loop and at exit to
// trace[gw * 8 + 2 k] and [gw * 8 + 2 k + 1]; null turns it off. bench/cuda_bench.cu (--trace)
// declares it too.
Status SetGemvTrace(unsigned long long* trace);
#endif
int GemvPlanIndex(int kernel_rows);
// The activation rows of the GEMV kernel that takes this product (1, 2, 4, 8 or 16), or 0 where it
// does not (batch, block widths, code width, shared memory).
int GemvKernelRows(const MatrixArgs& a, int batch);
// rotate_negative (batch 1 on CUDA cores only, GemvRotatesActivations): x is the unrotated
// activation row of a rotated matrix, with these signs (NegativeColumns); the kernel rotates it.
Status LaunchGemv(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch,
                  int kernel_rows, float* y, int64_t ldy, cudaStream_t stream,
                  const uint32_t* rotate_negative = nullptr);
// Whether the batch-1 GEMV can rotate this matrix's activations itself (its kernel runs on CUDA
// cores and the rotated row fits in shared memory beside its table and activations).
bool GemvRotatesActivations(const MatrixArgs& a);

// The GEMM for 17-64 activation rows (gemm_wide.cu): kernels of 32 and 64 rows over matrices the
// 16-row GEMV takes in lane runs, planned like it (steps, `blocks` ranges, up to `segments` partial
// sums per row block of 512 or 256 rows; plan index 0 for 32 rows, 1 for 64).
constexpr int kGemmWidePlans = 2;
// 32 or 64: the kernel that takes this product; 0 where none does.
int GemmWideRows(const MatrixArgs& a, int batch);
GemvWorkspace PlanGemmWide(const MatrixArgs& a, int sms, int kernel_rows);
Status LaunchGemmWide(const MatrixArgs& a, const GemvWorkspace& ws, const uint16_t* x, int64_t ldx, int batch,
                      int kernel_rows, float* y, int64_t ldy, cudaStream_t stream);
Status LaunchDequantise(const MatrixArgs& a, uint16_t* out, int64_t ld, cudaStream_t stream);
// a's outliers written over out (bf16, rows x cols, leading dimension ld).
Status LaunchWriteOutliers(const MatrixArgs& a, uint16_t* out, int64_t ld, cudaStream_t stream);
// y[b * ldy + r] += a's outlier corrections of row r times activation row b (AddOutliers, in CSR
// order) for b < rows: one thread per output.
Status LaunchAddOutlierCorrections(const MatrixArgs& a, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                                   int64_t ldy, cudaStream_t stream);
// Tile rows first_tile_row .. + tile_rows - 1 dequantised to fp32 (codebook[code] * scale; no
// outliers), row-major with leading dimension cols (rotated matrices, DeviceMatrix).
Status LaunchDequantiseRows(const MatrixArgs& a, int64_t first_tile_row, int64_t tile_rows, float* out,
                            cudaStream_t stream);
// Rows of `cols` values (bf16 bits or fp32, leading dimension ld_in) rotated (HadamardRotateRow:
// signs, then the blockwise orthonormal Walsh-Hadamard transform) or, with inverse, un-rotated,
// in fp32 exactly as the CPU does it, into bf16 rows (round to nearest even; leading dimension
// ld_out). One block per row, the row in shared memory. `negative` (device memory) holds the
// rotation's signs as NegativeColumns gives them.
template <typename IN>
Status LaunchRotateRows(const IN* in, int64_t ld_in, int64_t rows, int64_t cols, const uint32_t* negative, bool inverse,
                        uint16_t* out, int64_t ld_out, cudaStream_t stream);
// Shared memory LaunchRotateRows needs for rows of `cols` values (one padding word per 32).
constexpr int64_t RotateRowsSharedBytes(int64_t cols) { return (cols + cols / 32 + 1) * 4; }
// The columns whose seeded sign is -1 (HadamardNegative): bit c % 32 of word c / 32.
std::vector<uint32_t> NegativeColumns(uint64_t seed, int64_t cols);

}  // namespace owf::cuda::detail
