// Hadamard rotation of rows on the GPU, exactly as owf/formats/rotation.h does it on the CPU: the
// seeded signs, then per power-of-two piece of the row (largest first) the Walsh-Hadamard
// butterflies stage by stage (a + b, a - b in fp32) and the scaling by fp32(1 / sqrt(piece));
// the inverse runs the transform first and the signs last. Every value goes through the same
// fp32 operations in the same order as on the CPU, so the results are the same bits.
//
// Rotated matrices (DeviceMatrix) use it twice: a product rotates its activations (bf16 in,
// bf16 out) and then runs the kernels on the rotated codes; dequantisation un-rotates each
// dequantised fp32 row before rounding it to bf16. docs/gpu-performance.md has what it costs.
#include <vector>

#include "owf/formats/rotation.h"
#include "rotate.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kThreads = kRotateThreads;

// One block of kThreads per row, the row in shared memory (fewer than 2^16 values). A product's
// activation rows are rotated by one block each, so the transform's latency is on the product's
// path: pieces of 512 values or more go through registers and shuffles (LargePiece), smaller ones
// through shared memory stage by stage; signs come from a bit mask (bit c % 32 of word c / 32: the
// sign of column c is -1); and the block lets the next kernel on the stream start (programmatic
// dependent launch) as it begins.
template <typename IN>
__global__ void __launch_bounds__(kThreads) RotateRowsKernel(const IN* __restrict__ in, int64_t ld_in, int cols,
                                                             const uint32_t* __restrict__ negative, bool inverse,
                                                             uint16_t* __restrict__ out, int64_t ld_out) {
  extern __shared__ float v[];
  LaunchDependents();
  GridDependencyWait();  // the input may be the previous kernel's output
  LoadRowInShared<8>(in + static_cast<int64_t>(blockIdx.x) * ld_in, cols, negative, /*signs=*/!inverse, v);
  __syncthreads();
  uint16_t* dst = out + static_cast<int64_t>(blockIdx.x) * ld_out;
  RotateRowInShared(v, cols, negative, inverse,
                    [&](int i, float value) { dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(value)); });
}

}  // namespace

template <typename IN>
Status LaunchRotateRows(const IN* in, int64_t ld_in, int64_t rows, int64_t cols, const uint32_t* negative, bool inverse,
                        uint16_t* out, int64_t ld_out, cudaStream_t stream) {
  if (rows < 1 || rows > (int64_t{1} << 31) - 1 || cols < 1 || ld_in < cols || ld_out < cols)
    return InvalidArgument("bad rows to rotate");
  const auto kernel = RotateRowsKernel<IN>;
  OWF_ASSIGN_OR_RETURN(const int max_bytes, MaxSharedBytes());
  const int64_t bytes = RotateRowsSharedBytes(cols);
  if (bytes > max_bytes - kStaticSharedBytes)
    return Unsupported("rows of " + std::to_string(cols) + " values do not fit in shared memory to be rotated");
  static const Status allowed = AllowAllSharedMemory(kernel);
  OWF_RETURN_IF_ERROR(allowed);
  return LaunchAfterPrevious(kernel, static_cast<int>(rows), kThreads, static_cast<int>(bytes), stream, in, ld_in,
                             static_cast<int>(cols), negative, inverse, out, ld_out);
}

template Status LaunchRotateRows<uint16_t>(const uint16_t*, int64_t, int64_t, int64_t, const uint32_t*, bool,
                                           uint16_t*, int64_t, cudaStream_t);
template Status LaunchRotateRows<float>(const float*, int64_t, int64_t, int64_t, const uint32_t*, bool, uint16_t*,
                                        int64_t, cudaStream_t);

std::vector<uint32_t> NegativeColumns(uint64_t seed, int64_t cols) {
  std::vector<uint32_t> mask(static_cast<size_t>((cols + 31) / 32), 0u);
  for (int64_t c = 0; c < cols; ++c)
    if (HadamardNegative(seed, c)) mask[static_cast<size_t>(c / 32)] |= 1u << (c % 32);
  return mask;
}

}  // namespace owf::cuda::detail
