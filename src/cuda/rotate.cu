// Hadamard rotation of rows on the GPU, exactly as owf/formats/rotation.h does it on the CPU: the
// seeded signs, then per power-of-two piece of the row (largest first) the Walsh-Hadamard
// butterflies stage by stage (a + b, a - b in fp32) and the scaling by fp32(1 / sqrt(piece));
// the inverse runs the transform first and the signs last. Every value goes through the same
// fp32 operations in the same order as on the CPU, so the results are the same bits.
//
// Rotated matrices (DeviceMatrix) use it twice: a product rotates its activations (bf16 in,
// bf16 out) and then runs the kernels on the rotated codes; dequantisation un-rotates each
// dequantised fp32 row before rounding it to bf16. docs/gpu-performance.md has what it costs.
#include <type_traits>
#include <vector>

#include "owf/formats/rotation.h"
#include "device_common.cuh"

namespace owf::cuda::detail {
namespace {

constexpr int kThreads = 512;

template <typename IN>
__device__ __forceinline__ float InputOf(IN v) {
  if constexpr (std::is_same_v<IN, float>) return v;
  else return __uint_as_float(static_cast<uint32_t>(v) << 16);  // bf16 bits
}

// Shared-memory slot of a row's value i: one padding word per 32 values, so that lanes reading
// runs of E values each (LargePiece) hit different banks.
__device__ __forceinline__ int Slot(int i) { return i + (i >> 5); }

__device__ __forceinline__ bool Negative(const uint32_t* __restrict__ negative, int c) {
  return (__ldg(negative + (c >> 5)) >> (c & 31)) & 1u;
}

// The butterflies of the power-of-two piece of n = 512 E values at `start` of the row v (shared
// memory, Slot), then its scaling (and, with inverse, signs) into dst as bf16. Element
// i = t E + m (thread t, register m) first: spans 1 .. E / 2 in registers, E .. 16 E across lanes
// (shuffles); then, through shared memory, element i = w 32 E + u (w < 16) with each thread
// holding the 16 w of its u: spans 32 E .. 256 E in registers. The stages run in the CPU's order
// (span 1, 2, 4, ...), each as a + b (lower element) and a - b (upper).
template <int E>
__device__ void LargePiece(float* v, int start, float norm, const uint32_t* negative, bool inverse,
                           uint16_t* __restrict__ dst) {
  const int t = threadIdx.x, lane = t & 31;
  float r[E];
#pragma unroll
  for (int m = 0; m < E; ++m) r[m] = v[Slot(start + t * E + m)];
#pragma unroll
  for (int h = 1; h < E; h *= 2)
#pragma unroll
    for (int m = 0; m < E; ++m)
      if ((m & h) == 0) {
        const float a = r[m], b = r[m + h];
        r[m] = a + b;
        r[m + h] = a - b;
      }
#pragma unroll
  for (int s = 1; s < 32; s *= 2) {
    const bool upper = lane & s;
#pragma unroll
    for (int m = 0; m < E; ++m) {
      const float o = __shfl_xor_sync(0xFFFFFFFFu, r[m], s);
      r[m] = upper ? o - r[m] : r[m] + o;
    }
  }
#pragma unroll
  for (int m = 0; m < E; ++m) v[Slot(start + t * E + m)] = r[m];
  __syncthreads();
  constexpr int kU = 32 * E, kPerThread = E >= 16 ? E / 16 : 1;  // u values, and per thread
  if (t * kPerThread < kU) {
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int u = t * kPerThread + k;
      uint32_t flip = 0;  // inverse: the 16 columns' signs, loaded before the work that hides them
      if (inverse)
#pragma unroll
        for (int w = 0; w < 16; ++w) flip |= static_cast<uint32_t>(Negative(negative, start + w * kU + u)) << w;
      float q[16];
#pragma unroll
      for (int w = 0; w < 16; ++w) q[w] = v[Slot(start + w * kU + u)];
#pragma unroll
      for (int h = 1; h < 16; h *= 2)
#pragma unroll
        for (int w = 0; w < 16; ++w)
          if ((w & h) == 0) {
            const float a = q[w], b = q[w + h];
            q[w] = a + b;
            q[w + h] = a - b;
          }
#pragma unroll
      for (int w = 0; w < 16; ++w) {
        const float x = q[w] * norm;
        dst[start + w * kU + u] = __bfloat16_as_ushort(__float2bfloat16_rn((flip >> w) & 1u ? -x : x));
      }
    }
  }
  __syncthreads();  // before the next piece reuses the threads (its values are elsewhere)
}

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
  const IN* src = in + static_cast<int64_t>(blockIdx.x) * ld_in;
  // kLoads values (and their signs' words) per thread in flight at a time.
  constexpr int kLoads = 8;
  for (int c0 = threadIdx.x; c0 < cols; c0 += kThreads * kLoads) {
    float x[kLoads];
    uint32_t sign[kLoads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int c = c0 + k * kThreads;
      x[k] = c < cols ? InputOf(src[c]) : 0.0f;
      sign[k] = c < cols && !inverse ? __ldg(negative + (c >> 5)) >> (c & 31) : 0u;
    }
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int c = c0 + k * kThreads;
      if (c < cols) v[Slot(c)] = sign[k] & 1u ? -x[k] : x[k];
    }
  }
  __syncthreads();
  uint16_t* dst = out + static_cast<int64_t>(blockIdx.x) * ld_out;
  for (int start = 0, left = cols; left > 0;) {
    int shift = 0;
    while ((2 << shift) <= left) ++shift;
    const int piece = 1 << shift;
    const float norm = static_cast<float>(1.0 / sqrt(static_cast<double>(piece)));
    switch (piece / kThreads) {
      case 1: LargePiece<1>(v, start, norm, negative, inverse, dst); break;
      case 2: LargePiece<2>(v, start, norm, negative, inverse, dst); break;
      case 4: LargePiece<4>(v, start, norm, negative, inverse, dst); break;
      case 8: LargePiece<8>(v, start, norm, negative, inverse, dst); break;
      case 16: LargePiece<16>(v, start, norm, negative, inverse, dst); break;
      case 32: LargePiece<32>(v, start, norm, negative, inverse, dst); break;
      case 64: LargePiece<64>(v, start, norm, negative, inverse, dst); break;
      default:  // under 512 values: stage by stage in shared memory
        for (int h = 0; h < shift; ++h) {  // butterflies of span 2^h: pair i is (j, j + 2^h)
          const int span = 1 << h;
          for (int i = threadIdx.x; i < piece / 2; i += kThreads) {
            const int j = ((i >> h) << (h + 1)) + (i & (span - 1));
            const float a = v[Slot(start + j)], b = v[Slot(start + j + span)];
            v[Slot(start + j)] = a + b;
            v[Slot(start + j + span)] = a - b;
          }
          __syncthreads();
        }
        for (int c = threadIdx.x; c < piece; c += kThreads) {
          float x = v[Slot(start + c)] * norm;
          if (inverse && Negative(negative, start + c)) x = -x;
          dst[start + c] = __bfloat16_as_ushort(__float2bfloat16_rn(x));
        }
    }
    start += piece;
    left -= piece;
  }
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
