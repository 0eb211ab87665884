// The Hadamard rotation of one row held in shared memory by a block of 512 threads, exactly as
// owf/formats/rotation.h does it on the CPU (rotate.cu has the whole story): RotateRowsKernel
// rotates activation rows with it, and the batch-1 GEMV rotates its activations with it before
// staging them (GemvKernel), so that a rotated matrix's product needs no kernel of its own.
#pragma once

#include <cstdint>
#include <type_traits>

#include "device_common.cuh"

namespace owf::cuda::detail {

constexpr int kRotateThreads = 512;

// Shared-memory slot of a row's value i: one padding word per 32 values, so that lanes reading
// runs of E values each (LargePiece) hit different banks.
__device__ __forceinline__ int RowSlot(int i) { return i + (i >> 5); }

__device__ __forceinline__ bool ColumnNegative(const uint32_t* __restrict__ negative, int c) {
  return (__ldg(negative + (c >> 5)) >> (c & 31)) & 1u;
}

// Values of the bf16 bits or fp32 of the row src.
template <typename IN>
__device__ __forceinline__ float InputOf(IN v) {
  if constexpr (std::is_same_v<IN, float>) return v;
  else return __uint_as_float(static_cast<uint32_t>(v) << 16);  // bf16 bits
}

// The row src (cols values) into the shared-memory row v (RowSlot), with the seeded signs applied
// if `signs` (the forward transform's first step), kLoads values (and their signs' words) per
// thread in flight at a time (RotateRowsKernel: 8; the GEMV, whose prologue holds its first
// codes in registers meanwhile: 1). The block's threads call it together; a barrier must follow
// before the row is read.
template <int kLoads, typename IN>
__device__ __forceinline__ void LoadRowInShared(const IN* __restrict__ src, int cols,
                                                const uint32_t* __restrict__ negative, bool signs, float* v) {
  for (int c0 = threadIdx.x; c0 < cols; c0 += kRotateThreads * kLoads) {
    float x[kLoads];
    uint32_t sign[kLoads];
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int c = c0 + k * kRotateThreads;
      x[k] = c < cols ? InputOf(src[c]) : 0.0f;
      sign[k] = c < cols && signs ? __ldg(negative + (c >> 5)) >> (c & 31) : 0u;
    }
#pragma unroll
    for (int k = 0; k < kLoads; ++k) {
      const int c = c0 + k * kRotateThreads;
      if (c < cols) v[RowSlot(c)] = sign[k] & 1u ? -x[k] : x[k];
    }
  }
}

// The butterflies of the power-of-two piece of n = 512 E values at `start` of the row v (shared
// memory, RowSlot), then its scaling (and, with inverse, signs) into store. Element
// i = t E + m (thread t, register m) first: spans 1 .. E / 2 in registers, E .. 16 E across lanes
// (shuffles); then, through shared memory, element i = w 32 E + u (w < 16) with each thread
// holding the 16 w of its u: spans 32 E .. 256 E in registers. The stages run in the CPU's order
// (span 1, 2, 4, ...), each as a + b (lower element) and a - b (upper). store(i, value) takes
// each final value, after the thread's last read of slot i.
template <int E, typename Store>
__device__ void LargePiece(float* v, int start, float norm, const uint32_t* negative, bool inverse,
                                           Store&& store) {
  const int t = static_cast<int>(threadIdx.x), lane = t & 31;
  float r[E];
#pragma unroll
  for (int m = 0; m < E; ++m) r[m] = v[RowSlot(start + t * E + m)];
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
  for (int m = 0; m < E; ++m) v[RowSlot(start + t * E + m)] = r[m];
  __syncthreads();
  constexpr int kU = 32 * E, kPerThread = E >= 16 ? E / 16 : 1;  // u values, and per thread
  if (t * kPerThread < kU) {
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int u = t * kPerThread + k;
      uint32_t flip = 0;  // inverse: the 16 columns' signs, loaded before the work that hides them
      if (inverse)
#pragma unroll
        for (int w = 0; w < 16; ++w) flip |= static_cast<uint32_t>(ColumnNegative(negative, start + w * kU + u)) << w;
      float q[16];
#pragma unroll
      for (int w = 0; w < 16; ++w) q[w] = v[RowSlot(start + w * kU + u)];
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
        store(start + w * kU + u, (flip >> w) & 1u ? -x : x);
      }
    }
  }
  __syncthreads();  // before the next piece reuses the threads (its values are elsewhere)
}

// Rotates the row v (shared memory, RowSlot; the forward transform expects the signs applied)
// piece by piece, largest first: pieces of 512 values or more through registers and shuffles
// (LargePiece), smaller ones stage by stage in shared memory; store(i, value) takes each final
// value (with inverse, signed). Every thread of the block calls it; it ends with a barrier.
// kMaxPiece: the largest piece it is built for (rows of fewer than 2 kMaxPiece values).
template <int kMaxPiece = 32768, typename Store>
__device__ void RotateRowInShared(float* v, int cols, const uint32_t* negative, bool inverse, Store&& store) {
  for (int start = 0, left = cols; left > 0;) {
    int shift = 0;
    while ((2 << shift) <= left) ++shift;
    const int piece = 1 << shift;
    const float norm = static_cast<float>(1.0 / sqrt(static_cast<double>(piece)));
    switch (piece / kRotateThreads) {
      case 1: LargePiece<1>(v, start, norm, negative, inverse, store); break;
      case 2: LargePiece<2>(v, start, norm, negative, inverse, store); break;
      case 4: LargePiece<4>(v, start, norm, negative, inverse, store); break;
      case 8: LargePiece<8>(v, start, norm, negative, inverse, store); break;
      case 16: LargePiece<16>(v, start, norm, negative, inverse, store); break;
      case 32:
        if constexpr (kMaxPiece >= 32 * kRotateThreads) LargePiece<32>(v, start, norm, negative, inverse, store);
        break;
      case 64:
        if constexpr (kMaxPiece >= 64 * kRotateThreads) LargePiece<64>(v, start, norm, negative, inverse, store);
        break;
      default:  // under 512 values: stage by stage in shared memory
        for (int h = 0; h < shift; ++h) {  // butterflies of span 2^h: pair i is (j, j + 2^h)
          const int span = 1 << h;
          for (int i = threadIdx.x; i < piece / 2; i += kRotateThreads) {
            const int j = ((i >> h) << (h + 1)) + (i & (span - 1));
            const float a = v[RowSlot(start + j)], b = v[RowSlot(start + j + span)];
            v[RowSlot(start + j)] = a + b;
            v[RowSlot(start + j + span)] = a - b;
          }
          __syncthreads();
        }
        for (int c = threadIdx.x; c < piece; c += kRotateThreads) {
          const float x = v[RowSlot(start + c)] * norm;
          store(start + c, inverse && ColumnNegative(negative, start + c) ? -x : x);
        }
        __syncthreads();
    }
    start += piece;
    left -= piece;
  }
}

}  // namespace owf::cuda::detail
