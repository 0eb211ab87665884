// CUDA kernels over the tiled layout of owf/cuda/layout.h.
//
// Gemm: one thread block (8 warps) per 16-row tile; the warps split the 64-column tiles of the
// row between them (warp w takes tiles w, w + 8, ...). For each tile a lane loads its
// code_bits words (one 16-byte load for 4-bit codes), looks each code up in a shared-memory table
// holding the codebook entry split into two bf16 terms (hi = bf16(v), lo = bf16(v - hi)), and
// feeds both terms to bf16 tensor-core mma (m16n8k16) against up to 8 tiles of 8 activations.
// Block scales multiply the fp32 partial sums of each scaling block (one multiply per row per
// block, not per weight). The 8 warps' sums are added in a fixed order (deterministic), exact
// outlier corrections are added, and the result is written in fp32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <utility>

#include "owf/cuda/kernels.h"

namespace owf::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

Status CudaError(const char* what, cudaError_t e) {
  return Internal(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

#define OWF_CUDA_RETURN_IF_ERROR(call)                      \
  do {                                                      \
    const cudaError_t owf_cuda_e = (call);                  \
    if (owf_cuda_e != cudaSuccess) return CudaError(#call, owf_cuda_e); \
  } while (0)

// Everything a kernel needs to read a TiledMatrix in device memory.
struct MatrixArgs {
  const uint32_t* codes;
  const float* codebook;
  int codebook_size;
  int code_bits;
  const uint8_t* scales;
  int scale_type;  // GpuScale
  int64_t block_rows, block_cols, blocks_across;
  int64_t rows, cols, col_tiles, row_tiles;
  const int32_t* outlier_row_start;  // null without outliers
  const int32_t* outlier_col;
  const float* outlier_delta;
  const int64_t* outlier_index;
  const float* outlier_value;
  int64_t outliers;
};

// One stored scale, decoded exactly as DecodeScales does on the CPU.
__device__ __forceinline__ float DecodeScale(const uint8_t* __restrict__ s, int type, int64_t b) {
  switch (type) {
    case static_cast<int>(GpuScale::kBf16):
      return __uint_as_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(s)[b]) << 16);
    case static_cast<int>(GpuScale::kFp16):
      return __half2float(reinterpret_cast<const __half*>(s)[b]);
    case static_cast<int>(GpuScale::kFp32):
      return reinterpret_cast<const float*>(s)[b];
    case static_cast<int>(GpuScale::kE8m0): {
      const uint32_t e = s[b];
      return e == 0 ? __uint_as_float(0x00400000u) : __uint_as_float(e << 23);  // 2^(e - 127)
    }
    case static_cast<int>(GpuScale::kE4m3): {
      const uint32_t c = s[b], e = (c >> 3) & 15u, m = c & 7u;
      // e = 0: m/8 * 2^-7 = m * 2^-10; else (1 + m/8) * 2^(e-8) = (8 + m) * 2^(e-11): exact.
      const float a = e == 0 ? static_cast<float>(m) * __uint_as_float(117u << 23)
                             : static_cast<float>(8u + m) * __uint_as_float((e + 116u) << 23);
      return (c & 0x80u) ? -a : a;
    }
    default:
      return 1.0f;
  }
}

__device__ __forceinline__ float ScaleAt(const MatrixArgs& a, int64_t row, int64_t col) {
  if (a.scale_type == static_cast<int>(GpuScale::kNone)) return 1.0f;
  const int64_t bc = min(col / a.block_cols, a.blocks_across - 1);
  return DecodeScale(a.scales, a.scale_type, (row / a.block_rows) * a.blocks_across + bc);
}

// Code q (0..31) of a lane's BITS words: bits [q * BITS, (q + 1) * BITS) of the little-endian
// bit string. q is a compile-time constant after unrolling, so w stays in registers.
template <int BITS>
__device__ __forceinline__ uint32_t CodeAt(const uint32_t (&w)[BITS], int q) {
  const int bit = q * BITS, word = bit >> 5, off = bit & 31;
  uint32_t v = w[word] >> off;
  if (off + BITS > 32) v |= w[word + 1] << (32 - off);
  return v & ((1u << BITS) - 1u);
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

// d += A (16x16 bf16, row) * B (16x8 bf16, col), fp32 accumulators.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The codebook as (hi | lo << 16) bf16 pairs: v ~= hi + lo to 16 significant bits.
__device__ __forceinline__ void LoadSplitCodebook(const MatrixArgs& a, uint32_t* lut) {
  for (int i = threadIdx.x; i < kMaxCodebook; i += blockDim.x) {
    const float v = i < a.codebook_size ? a.codebook[i] : 0.0f;
    const __nv_bfloat16 hi = __float2bfloat16_rn(v);
    const __nv_bfloat16 lo = __float2bfloat16_rn(v - __bfloat162float(hi));
    lut[i] = static_cast<uint32_t>(__bfloat16_as_ushort(hi)) | static_cast<uint32_t>(__bfloat16_as_ushort(lo)) << 16;
  }
}

template <int BITS, int NT>
__global__ void __launch_bounds__(kThreads) GemmKernel(MatrixArgs a, const uint16_t* __restrict__ x, int64_t ldx,
                                                       int batch, float* __restrict__ y, int64_t ldy,
                                                       int steps_per_scale) {
  __shared__ uint32_t lut[kMaxCodebook];
  __shared__ float partial[kWarps][NT][32][4];
  LoadSplitCodebook(a, lut);
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tile_row = blockIdx.x;
  // The two rows this lane accumulates (clamped inside the matrix for the scale lookup).
  const int64_t row0 = min(tile_row * kTileRows + g, a.rows - 1);
  const int64_t row1 = min(tile_row * kTileRows + g + 8, a.rows - 1);

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;

  const uint32_t* tile_codes = a.codes + (tile_row * a.col_tiles * 32 + lane) * BITS;
  int64_t j = warp;
  uint32_t next[BITS];
  if (j < a.col_tiles) LoadLaneWords<BITS>(tile_codes + j * 32 * BITS, next);
  for (; j < a.col_tiles; j += kWarps) {
    uint32_t w[BITS];
#pragma unroll
    for (int i = 0; i < BITS; ++i) w[i] = next[i];
    if (j + kWarps < a.col_tiles) LoadLaneWords<BITS>(tile_codes + (j + kWarps) * 32 * BITS, next);

    float part[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) part[nt][0] = part[nt][1] = part[nt][2] = part[nt][3] = 0.0f;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int64_t k0 = j * kTileCols + 16 * s;
      if (k0 < a.cols) {
        uint32_t e[8];
#pragma unroll
        for (int q = 0; q < 8; ++q) e[q] = lut[CodeAt<BITS>(w, 8 * s + q)];
        uint32_t hi[4], lo[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          hi[i] = __byte_perm(e[2 * i], e[2 * i + 1], 0x5410);
          lo[i] = __byte_perm(e[2 * i], e[2 * i + 1], 0x7632);
        }
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const int n = nt * 8 + g;
          uint32_t b0 = 0, b1 = 0;
          if (n < batch) {
            const uint32_t* xp = reinterpret_cast<const uint32_t*>(x + n * ldx + k0 + 2 * t);
            b0 = __ldg(xp);
            b1 = __ldg(xp + 4);
          }
          Mma(part[nt], hi, b0, b1);
          Mma(part[nt], lo, b0, b1);
        }
      }
      if ((s + 1) % steps_per_scale == 0) {
        const int64_t col = j * kTileCols + 16 * (s + 1 - steps_per_scale);
        const float s0 = ScaleAt(a, row0, col), s1 = ScaleAt(a, row1, col);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          acc[nt][0] = fmaf(s0, part[nt][0], acc[nt][0]);
          acc[nt][1] = fmaf(s0, part[nt][1], acc[nt][1]);
          acc[nt][2] = fmaf(s1, part[nt][2], acc[nt][2]);
          acc[nt][3] = fmaf(s1, part[nt][3], acc[nt][3]);
          part[nt][0] = part[nt][1] = part[nt][2] = part[nt][3] = 0.0f;
        }
      }
    }
  }

#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][nt][lane][i] = acc[nt][i];
  __syncthreads();

  for (int idx = threadIdx.x; idx < NT * 128; idx += kThreads) {
    const int nt = idx >> 7, l = (idx >> 2) & 31, i = idx & 3;
    const int64_t row = tile_row * kTileRows + (l >> 2) + 8 * (i >> 1);
    const int n = nt * 8 + 2 * (l & 3) + (i & 1);
    if (row >= a.rows || n >= batch) continue;
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][nt][l][i];
    if (a.outlier_row_start) {
      const uint16_t* xn = x + n * ldx;
      for (int32_t o = a.outlier_row_start[row]; o < a.outlier_row_start[row + 1]; ++o)
        sum = fmaf(a.outlier_delta[o], __uint_as_float(static_cast<uint32_t>(xn[a.outlier_col[o]]) << 16), sum);
    }
    y[n * ldy + row] = sum;
  }
}

// One warp per tile: bf16(codebook[code] * scale), exactly the CPU's fp32 product then RNE.
template <int BITS>
__global__ void __launch_bounds__(kThreads) DequantiseKernel(MatrixArgs a, uint16_t* __restrict__ out, int64_t ld) {
  __shared__ float book[kMaxCodebook];
  for (int i = threadIdx.x; i < kMaxCodebook; i += blockDim.x) book[i] = i < a.codebook_size ? a.codebook[i] : 0.0f;
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (tile >= a.row_tiles * a.col_tiles) return;
  const int64_t ti = tile / a.col_tiles, tj = tile % a.col_tiles;
  uint32_t w[BITS];
  LoadLaneWords<BITS>(a.codes + (tile * 32 + lane) * BITS, w);
#pragma unroll
  for (int q = 0; q < 32; ++q) {
    const int s = q >> 3, e = q & 7;
    const int64_t row = ti * kTileRows + g + 8 * ((e >> 1) & 1);
    const int64_t col = tj * kTileCols + 16 * s + 2 * t + (e & 1) + 8 * (e >> 2);
    if (row < a.rows && col < a.cols) {
      const float v = book[CodeAt<BITS>(w, q)];
      const float value = a.scale_type == static_cast<int>(GpuScale::kNone) ? v : __fmul_rn(v, ScaleAt(a, row, col));
      out[row * ld + col] = __bfloat16_as_ushort(__float2bfloat16_rn(value));
    }
  }
}

__global__ void WriteOutliersKernel(MatrixArgs a, uint16_t* __restrict__ out, int64_t ld) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= a.outliers) return;
  const int64_t flat = a.outlier_index[o];
  out[(flat / a.cols) * ld + flat % a.cols] = __bfloat16_as_ushort(__float2bfloat16_rn(a.outlier_value[o]));
}

template <int BITS, int NT>
void LaunchGemm(const MatrixArgs& a, const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, int sps,
                cudaStream_t stream) {
  GemmKernel<BITS, NT><<<static_cast<unsigned>(a.row_tiles), kThreads, 0, stream>>>(a, x, ldx, batch, y, ldy, sps);
}

template <int BITS>
void LaunchGemmBits(const MatrixArgs& a, const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, int sps,
                    cudaStream_t stream) {
  if (batch <= 8) return LaunchGemm<BITS, 1>(a, x, ldx, batch, y, ldy, sps, stream);
  if (batch <= 16) return LaunchGemm<BITS, 2>(a, x, ldx, batch, y, ldy, sps, stream);
  if (batch <= 32) return LaunchGemm<BITS, 4>(a, x, ldx, batch, y, ldy, sps, stream);
  return LaunchGemm<BITS, 8>(a, x, ldx, batch, y, ldy, sps, stream);
}

template <int BITS>
void LaunchDequantise(const MatrixArgs& a, uint16_t* out, int64_t ld, cudaStream_t stream) {
  const int64_t tiles = a.row_tiles * a.col_tiles;
  DequantiseKernel<BITS><<<static_cast<unsigned>((tiles + kWarps - 1) / kWarps), kThreads, 0, stream>>>(a, out, ld);
}

template <typename T>
Status UploadVector(const std::vector<T>& v, T** out) {
  *out = nullptr;
  if (v.empty()) return Status::Ok();
  OWF_CUDA_RETURN_IF_ERROR(cudaMalloc(reinterpret_cast<void**>(out), v.size() * sizeof(T)));
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpy(*out, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return Status::Ok();
}

}  // namespace

bool Available(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    if (why) *why = e != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorString(e) : "no CUDA device";
    return false;
  }
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess || major < 8) {
    if (why) *why = "the GPU kernels need compute capability 8.0 or newer (bf16 tensor cores)";
    return false;
  }
  return true;
}

struct DeviceMatrix::State {
  TiledMatrix host;  // shape and metadata; the big vectors are released after upload
  int64_t weight_bytes = 0;
  MatrixArgs args{};
  uint32_t* codes = nullptr;
  float* codebook = nullptr;
  uint8_t* scales = nullptr;
  int32_t* outlier_row_start = nullptr;
  int32_t* outlier_col = nullptr;
  float* outlier_delta = nullptr;
  int64_t* outlier_index = nullptr;
  float* outlier_value = nullptr;

  ~State() {
    for (void* p : {static_cast<void*>(codes), static_cast<void*>(codebook), static_cast<void*>(scales),
                    static_cast<void*>(outlier_row_start), static_cast<void*>(outlier_col),
                    static_cast<void*>(outlier_delta), static_cast<void*>(outlier_index),
                    static_cast<void*>(outlier_value)})
      if (p) cudaFree(p);
  }
};

DeviceMatrix::DeviceMatrix(std::unique_ptr<State> s) : s_(std::move(s)) {}
DeviceMatrix::DeviceMatrix(DeviceMatrix&&) noexcept = default;
DeviceMatrix& DeviceMatrix::operator=(DeviceMatrix&&) noexcept = default;
DeviceMatrix::~DeviceMatrix() = default;

int64_t DeviceMatrix::rows() const { return s_->host.rows; }
int64_t DeviceMatrix::cols() const { return s_->host.cols; }
int64_t DeviceMatrix::weight_bytes() const { return s_->weight_bytes; }

Result<DeviceMatrix> DeviceMatrix::Upload(const TiledMatrix& m) {
  if (m.code_bits < 1 || m.code_bits > 6 || m.codebook.empty() || m.codebook.size() > kMaxCodebook)
    return InvalidArgument("a tiled matrix needs 1- to 6-bit codes and 1 to 64 codebook entries");
  if (m.rows < 1 || m.cols < 1 || m.row_tiles != (m.rows + kTileRows - 1) / kTileRows ||
      m.col_tiles != (m.cols + kTileCols - 1) / kTileCols ||
      static_cast<int64_t>(m.codes.size()) != m.row_tiles * m.col_tiles * 32 * m.code_bits)
    return InvalidArgument("tiled matrix sizes are inconsistent");
  if (m.row_tiles > (int64_t{1} << 31) - 1) return Unsupported("more than 2^31 row tiles");
  auto s = std::make_unique<State>();
  s->host.rows = m.rows;
  s->host.cols = m.cols;
  s->weight_bytes = m.weight_bytes();
  OWF_RETURN_IF_ERROR(UploadVector(m.codes, &s->codes));
  OWF_RETURN_IF_ERROR(UploadVector(m.codebook, &s->codebook));
  OWF_RETURN_IF_ERROR(UploadVector(m.scales, &s->scales));
  OWF_RETURN_IF_ERROR(UploadVector(m.outlier_row_start, &s->outlier_row_start));
  OWF_RETURN_IF_ERROR(UploadVector(m.outlier_col, &s->outlier_col));
  OWF_RETURN_IF_ERROR(UploadVector(m.outlier_delta, &s->outlier_delta));
  OWF_RETURN_IF_ERROR(UploadVector(m.outlier_index, &s->outlier_index));
  OWF_RETURN_IF_ERROR(UploadVector(m.outlier_value, &s->outlier_value));
  MatrixArgs& a = s->args;
  a.codes = s->codes;
  a.codebook = s->codebook;
  a.codebook_size = static_cast<int>(m.codebook.size());
  a.code_bits = m.code_bits;
  a.scales = s->scales;
  a.scale_type = static_cast<int>(m.scale_type);
  a.block_rows = m.block_rows;
  a.block_cols = m.block_cols;
  a.blocks_across = m.blocks_across;
  a.rows = m.rows;
  a.cols = m.cols;
  a.col_tiles = m.col_tiles;
  a.row_tiles = m.row_tiles;
  a.outlier_row_start = s->outlier_row_start;
  a.outlier_col = s->outlier_col;
  a.outlier_delta = s->outlier_delta;
  a.outlier_index = s->outlier_index;
  a.outlier_value = s->outlier_value;
  a.outliers = static_cast<int64_t>(m.outlier_index.size());
  if (m.scale_type != GpuScale::kNone &&
      (m.block_rows < 1 || m.block_cols < 1 || m.blocks_across != (m.cols + m.block_cols - 1) / m.block_cols))
    return InvalidArgument("tiled matrix scaling blocks are inconsistent");
  return DeviceMatrix(std::move(s));
}

Status DeviceMatrix::DequantiseBf16(uint16_t* out, int64_t ld, Stream stream) const {
  const MatrixArgs& a = s_->args;
  if (!out || ld < a.cols) return InvalidArgument("DequantiseBf16 needs an output with ld >= cols");
  switch (a.code_bits) {
    case 1: LaunchDequantise<1>(a, out, ld, stream); break;
    case 2: LaunchDequantise<2>(a, out, ld, stream); break;
    case 3: LaunchDequantise<3>(a, out, ld, stream); break;
    case 4: LaunchDequantise<4>(a, out, ld, stream); break;
    case 5: LaunchDequantise<5>(a, out, ld, stream); break;
    case 6: LaunchDequantise<6>(a, out, ld, stream); break;
  }
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (a.outliers) {
    WriteOutliersKernel<<<static_cast<unsigned>((a.outliers + 255) / 256), 256, 0, stream>>>(a, out, ld);
    OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return Status::Ok();
}

Status DeviceMatrix::Gemm(const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, Stream stream) const {
  const MatrixArgs& a = s_->args;
  if (batch < 1 || batch > 64) return InvalidArgument("Gemm takes 1 to 64 activation rows, not " + std::to_string(batch));
  if (!x || !y || ldx < a.cols || ldy < a.rows) return InvalidArgument("Gemm needs ldx >= cols and ldy >= rows");
  if (a.cols % 16 != 0) return InvalidArgument("Gemm needs a column count that is a multiple of 16");
  if (ldx % 2 != 0 || reinterpret_cast<uintptr_t>(x) % 4 != 0)
    return InvalidArgument("Gemm needs 4-byte aligned activation rows (even ldx)");
  int sps = 4;  // k-steps of 16 columns that share one scale
  if (a.scale_type != static_cast<int>(GpuScale::kNone) && a.blocks_across > 1) {
    if (a.block_cols % 64 == 0) sps = 4;
    else if (a.block_cols % 32 == 0) sps = 2;
    else if (a.block_cols % 16 == 0) sps = 1;
    else return InvalidArgument("Gemm needs scaling blocks whose width is a multiple of 16 columns");
  }
  switch (a.code_bits) {
    case 1: LaunchGemmBits<1>(a, x, ldx, batch, y, ldy, sps, stream); break;
    case 2: LaunchGemmBits<2>(a, x, ldx, batch, y, ldy, sps, stream); break;
    case 3: LaunchGemmBits<3>(a, x, ldx, batch, y, ldy, sps, stream); break;
    case 4: LaunchGemmBits<4>(a, x, ldx, batch, y, ldy, sps, stream); break;
    case 5: LaunchGemmBits<5>(a, x, ldx, batch, y, ldy, sps, stream); break;
    case 6: LaunchGemmBits<6>(a, x, ldx, batch, y, ldy, sps, stream); break;
  }
  OWF_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace owf::cuda
