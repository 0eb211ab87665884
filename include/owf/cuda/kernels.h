// CUDA kernels over owf's quantised matrices (optional target owf_cuda, CMake -DOWF_CUDA=ON).
// Kernels take device pointers; shapes are validated on the host and errors come back as Status,
// never as a crash. All launches go to the given stream (nullptr = the default stream).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "owf/core/status.h"
#include "owf/cuda/layout.h"

struct CUstream_st;

namespace owf::cuda {

using Stream = CUstream_st*;

// True when a CUDA device can be used; otherwise `why` (if given) says why not.
bool Available(std::string* why = nullptr);

// A TiledMatrix in GPU memory.
class DeviceMatrix {
 public:
  static Result<DeviceMatrix> Upload(const TiledMatrix& m);
  DeviceMatrix(DeviceMatrix&&) noexcept;
  DeviceMatrix& operator=(DeviceMatrix&&) noexcept;
  ~DeviceMatrix();

  int64_t rows() const;
  int64_t cols() const;
  // Bytes of GPU memory the weights occupy (codes, scales, outliers).
  int64_t weight_bytes() const;

  // out: rows x cols bf16, row-major with leading dimension ld (>= cols), device memory.
  // Bit-exact with the CPU: bf16(codebook[code] * scale) (round to nearest even), outliers
  // written over. For a rotated matrix, each row of the fp32 codebook[code] * scale is un-rotated
  // in fp32 (as HadamardRotateRow does) before the rounding, and the outliers are written over
  // the result (in chunks of rows, with up to 32 MB of scratch memory allocated in stream order).
  // Upload answers Unsupported for a rotated matrix whose rows do not fit in shared memory (up to
  // ~56K columns on an H100).
  Status DequantiseBf16(uint16_t* out, int64_t ld, Stream stream = nullptr) const;

  // A Hadamard-rotated matrix (TiledMatrix::rotation_seed) holds V = W (less its outliers)
  // rotated along its rows, so that W x = V rotate(x) + the outliers' corrections. Products of
  // many activation rows can run in that form: the rows rotated (RotateActivations: rows x cols
  // bf16, each rotated in fp32 as HadamardRotateRow does, rounded to bf16) times V dequantised
  // (DequantiseStoredBf16, bit-exact with the CPU's codebook[code] * scale), then
  // CorrectStoredProduct. For a matrix that is not rotated, DequantiseStoredBf16 is
  // DequantiseBf16, CorrectStoredProduct does nothing and RotateActivations is an error.
  bool rotated() const;
  Status RotateActivations(const uint16_t* x, int64_t ldx, int64_t rows, uint16_t* out, int64_t ld_out,
                           Stream stream = nullptr) const;
  Status DequantiseStoredBf16(uint16_t* out, int64_t ld, Stream stream = nullptr) const;
  // The stored form of a rotated matrix leaves out its outliers (they replace values of W):
  // adds their corrections, with the unrotated activations x (rows x cols bf16), to y (rows x
  // this matrix's rows fp32), the product of the stored form. A no-op for other matrices.
  Status CorrectStoredProduct(const uint16_t* x, int64_t ldx, int64_t rows, float* y, int64_t ldy,
                              Stream stream = nullptr) const;

  // y[b * ldy + r] = sum_c W[r, c] * x[b * ldx + c] for b < batch (1..64), r < rows: x bf16 in
  // device memory (ldx >= cols, even, 4-byte aligned), y fp32 in device memory (ldy >= rows). A
  // rotated matrix (stored as V = W rotated along its rows) first rotates the activations (fp32,
  // as HadamardRotateRow does, rounded to bf16 like any activation; at batch 1 on CUDA cores, rows
  // of fewer than 16384 columns are rotated inside the GEMV and stay fp32) and multiplies them by
  // V, then adds its outliers' corrections with the unrotated activations. Needs an even column
  // count, and scaling blocks whose width is a multiple of 16 (or one block across the row);
  // InvalidArgument otherwise. Batch 1, and batch 2 on matrices under 2^27 weights, with blocks
  // 64 * 2^k, 32 or 16 columns wide (or one across, or unscaled; 2- to 6-bit codes in the narrow
  // blocks) run on CUDA cores in fp32 where their activations fit in shared memory (fp32 codebook
  // values times fp32 activations); the rest on tensor cores (bf16 mma) with each weight split into two bf16 terms (16
  // significant bits) and fp32 accumulation (docs/gpu-layout.md). Outliers are added exactly as
  // sparse corrections. Deterministic: the same inputs give the same bits. Calls on one DeviceMatrix
  // must not run concurrently (streams): they share a workspace; calls on one stream share scratch
  // memory for partial sums, allocated in stream order on first use. On compute capability 9.0+ the
  // small-batch kernels use programmatic dependent launch: they start reading the weights before the
  // previous kernel on the stream has finished (and wait for it before reading x or writing y), so
  // that kernel must not write this matrix's device memory.
  Status Gemm(const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, Stream stream = nullptr) const;

 private:
  // Gemm's product of the codes as stored (a rotated matrix: with rotated activations).
  // rotate_negative: x is a rotated matrix's unrotated batch-1 row, which the GEMV rotates.
  Status ProductOfCodes(const uint16_t* x, int64_t ldx, int batch, float* y, int64_t ldy, Stream stream,
                        const uint32_t* rotate_negative = nullptr) const;
  struct State;
  explicit DeviceMatrix(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace owf::cuda
