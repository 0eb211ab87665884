// The GPU transformer's own kernels: see forward_kernels.h. One block per token row (embedding,
// RMSNorm, bias + rope + cache store) or per (token, query head) (attention); elementwise kernels
// are grid-stride loops. All arithmetic is fp32. RMSNorm, rope and SwiGLU round each operation
// as the CPU transformer does (no fused multiply-adds), so they differ from it only where sums
// are taken in another order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "forward_kernels.h"

namespace owf::cuda::kernels {
namespace {

constexpr int kRowThreads = 256;  // threads per token row
constexpr int kAttentionThreads = 128;
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr int kElementThreads = 256;
constexpr int kDefaultSharedBytes = 48 * 1024;  // dynamic shared memory without opting in

__device__ __forceinline__ uint16_t Bf16Bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float FromBf16Bits(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// Sum of v over the block (blockDim.x a multiple of 32); every thread gets the same total.
// `shared` holds 32 floats; consecutive calls may reuse it.
__device__ float BlockSum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // a previous call's readers are done with `shared`
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += shared[w];
  return total;
}

__device__ float BlockMax(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) shared[threadIdx.x >> 5] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) m = fmaxf(m, shared[w]);
  return m;
}

unsigned ElementBlocks(int64_t count) {
  return static_cast<unsigned>(std::min<int64_t>((count + kElementThreads - 1) / kElementThreads, int64_t{1} << 16));
}

// ---- Embedding: block i copies row tokens[i].
__global__ void EmbedKernel(const uint16_t* table, const int32_t* tokens, int dim, float* x) {
  const int64_t i = blockIdx.x;
  const uint16_t* row = table + static_cast<int64_t>(tokens[i]) * dim;  // (dim) bf16
  float* out = x + i * dim;                                              // (dim)
  for (int d = threadIdx.x; d < dim; d += blockDim.x) out[d] = FromBf16Bits(row[d]);
}

// ---- RMSNorm: block i normalises row i.
__global__ void RmsNormKernel(const float* x, const float* weight, int dim, float eps, uint16_t* out) {
  __shared__ float shared[32];
  const int64_t i = blockIdx.x;
  const float* row = x + i * dim;  // (dim)
  float sum_sq = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) sum_sq += row[d] * row[d];
  sum_sq = BlockSum(sum_sq, shared);
  const float scale = 1.0f / sqrtf(sum_sq / static_cast<float>(dim) + eps);
  uint16_t* o = out + i * dim;  // (dim) bf16
  for (int d = threadIdx.x; d < dim; d += blockDim.x) o[d] = Bf16Bits(__fmul_rn(__fmul_rn(row[d], scale), weight[d]));
}

// Rotates pair j of one head by the angle whose cosine / sine are c / s.
__device__ __forceinline__ void RotatePair(float* head, int j, int half, bool interleaved, float c, float s) {
  const int a = interleaved ? 2 * j : j;
  const int b = interleaved ? 2 * j + 1 : j + half;
  const float x0 = head[a], x1 = head[b];
  head[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
  head[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}

// ---- Biases, rotary embeddings, cache store: block i handles token i.
__global__ void BiasRopeStoreKernel(AttentionShape s, float* q, float* k, const float* v, const float* bq,
                                    const float* bk, const float* bv, const int32_t* seq_row, const int32_t* pos,
                                    const float* rope_cos, const float* rope_sin, float* k_cache, float* v_cache) {
  const int64_t i = blockIdx.x;
  const int hd = s.head_dim, half = s.rope_dim / 2;
  const int q_dim = s.n_heads * hd, kv_dim = s.n_kv_heads * hd;
  float* qi = q + i * q_dim;         // (n_heads, head_dim)
  float* ki = k + i * kv_dim;        // (n_kv_heads, head_dim)
  const float* vi = v + i * kv_dim;  // (n_kv_heads, head_dim)
  const int64_t row = (static_cast<int64_t>(seq_row[i]) + pos[i]) * kv_dim;  // this position's cache row
  // Biases (Qwen2); v goes straight into the cache.
  for (int d = threadIdx.x; d < q_dim; d += blockDim.x) {
    if (bq != nullptr) qi[d] += bq[d];
  }
  for (int d = threadIdx.x; d < kv_dim; d += blockDim.x) {
    if (bk != nullptr) ki[d] += bk[d];
    v_cache[row + d] = bv != nullptr ? vi[d] + bv[d] : vi[d];
  }
  __syncthreads();
  // Rotations: each (head, pair) belongs to one thread.
  const float* c = rope_cos + static_cast<int64_t>(pos[i]) * half;  // (rope_dim / 2)
  const float* sn = rope_sin + static_cast<int64_t>(pos[i]) * half;
  for (int idx = threadIdx.x; idx < s.n_heads * half; idx += blockDim.x) {
    const int h = idx / half, j = idx % half;
    RotatePair(qi + h * hd, j, half, s.interleaved, c[j], sn[j]);
  }
  for (int idx = threadIdx.x; idx < s.n_kv_heads * half; idx += blockDim.x) {
    const int h = idx / half, j = idx % half;
    RotatePair(ki + h * hd, j, half, s.interleaved, c[j], sn[j]);
  }
  __syncthreads();
  for (int d = threadIdx.x; d < kv_dim; d += blockDim.x) k_cache[row + d] = ki[d];
}

// ---- Attention: block (i, h) computes query head h of token i. Dynamic shared memory holds the
// query (head_dim) and the scores (max_positions).
__global__ void AttentionKernel(AttentionShape s, const float* q, const int32_t* seq_row, const int32_t* pos,
                                const float* k_cache, const float* v_cache, uint16_t* out) {
  extern __shared__ float smem[];
  __shared__ float reduce[32];
  const int64_t i = blockIdx.x;
  const int h = blockIdx.y;
  const int hd = s.head_dim, q_dim = s.n_heads * hd, kv_dim = s.n_kv_heads * hd;
  const int p = pos[i];
  const int first = s.sliding_window > 0 ? max(0, p - s.sliding_window + 1) : 0;
  const int T = p + 1 - first;  // positions attended to
  float* qs = smem;             // (head_dim)
  float* score = smem + hd;     // (T)
  const float* qh = q + i * q_dim + static_cast<int64_t>(h) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qh[d];
  __syncthreads();
  // This sequence's rows, at the key-value head that query head h reads: position t at + t * kv_dim.
  const int64_t base = static_cast<int64_t>(seq_row[i]) * kv_dim + static_cast<int64_t>(h / (s.n_heads / s.n_kv_heads)) * hd;
  const float* keys = k_cache + base;
  const float* values = v_cache + base;
  // score[t] = q . k_t / sqrt(head_dim): one warp per key, lanes across the head.
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int t = warp; t < T; t += kAttentionWarps) {
    const float* key = keys + static_cast<int64_t>(first + t) * kv_dim;  // (head_dim)
    float dot = 0.0f;
    for (int d = lane; d < hd; d += 32) dot += qs[d] * key[d];
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (lane == 0) score[t] = dot * scale;
  }
  __syncthreads();
  // Softmax over t (each thread exponentiates and normalises its own t's).
  float mx = -INFINITY;
  for (int t = threadIdx.x; t < T; t += blockDim.x) mx = fmaxf(mx, score[t]);
  mx = BlockMax(mx, reduce);
  float sum = 0.0f;
  for (int t = threadIdx.x; t < T; t += blockDim.x) {
    const float e = expf(score[t] - mx);
    score[t] = e;
    sum += e;
  }
  sum = BlockSum(sum, reduce);
  for (int t = threadIdx.x; t < T; t += blockDim.x) score[t] /= sum;
  __syncthreads();
  // out (head_dim) = sum_t score[t] * v_t: threads across the head, rows read whole.
  uint16_t* o = out + i * q_dim + static_cast<int64_t>(h) * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float acc = 0.0f;
    for (int t = 0; t < T; ++t) acc += score[t] * values[static_cast<int64_t>(first + t) * kv_dim + d];
    o[d] = Bf16Bits(acc);
  }
}

// ---- Elementwise.
__global__ void SwiGluKernel(const float* gate, const float* up, int64_t count, uint16_t* out) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < count;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float z = gate[j];
    out[j] = Bf16Bits(__fmul_rn(__fdiv_rn(z, __fadd_rn(1.0f, expf(-z))), up[j]));
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t count) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < count;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[j] += y[j];
  }
}

}  // namespace

cudaError_t EmbedTokens(const uint16_t* table, const int32_t* tokens, int n, int dim, float* x, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  EmbedKernel<<<n, kRowThreads, 0, stream>>>(table, tokens, dim, x);
  return cudaGetLastError();
}

cudaError_t RmsNormToBf16(const float* x, const float* weight, int n, int dim, float eps, uint16_t* out,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  RmsNormKernel<<<n, kRowThreads, 0, stream>>>(x, weight, dim, eps, out);
  return cudaGetLastError();
}

cudaError_t BiasRopeStore(const AttentionShape& s, int n, float* q, float* k, const float* v, const float* bq,
                          const float* bk, const float* bv, const int32_t* seq_row, const int32_t* pos,
                          const float* rope_cos, const float* rope_sin, float* k_cache, float* v_cache,
                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  BiasRopeStoreKernel<<<n, kRowThreads, 0, stream>>>(s, q, k, v, bq, bk, bv, seq_row, pos, rope_cos, rope_sin, k_cache,
                                                     v_cache);
  return cudaGetLastError();
}

cudaError_t CausalAttention(const AttentionShape& s, int n, const float* q, const int32_t* seq_row, const int32_t* pos,
                            const float* k_cache, const float* v_cache, uint16_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (s.n_heads <= 0 || s.n_kv_heads <= 0 || s.n_heads % s.n_kv_heads != 0 || s.n_heads > 65535 || s.head_dim <= 0 ||
      s.max_positions <= 0) {
    return cudaErrorInvalidValue;
  }
  const size_t shared = (static_cast<size_t>(s.head_dim) + static_cast<size_t>(s.max_positions)) * sizeof(float);
  if (shared > kDefaultSharedBytes) {
    const cudaError_t e =
        cudaFuncSetAttribute(AttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(s.n_heads));
  AttentionKernel<<<grid, kAttentionThreads, shared, stream>>>(s, q, seq_row, pos, k_cache, v_cache, out);
  return cudaGetLastError();
}

cudaError_t MaxAttentionPositions(int head_dim, int* positions) {
  int device = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e != cudaSuccess) return e;
  // Less the kernel's static reduction array.
  *positions = std::max(0, (optin - static_cast<int>(32 * sizeof(float))) / static_cast<int>(sizeof(float)) - head_dim);
  return cudaSuccess;
}

cudaError_t SwiGluToBf16(const float* gate, const float* up, int64_t count, uint16_t* out, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  SwiGluKernel<<<ElementBlocks(count), kElementThreads, 0, stream>>>(gate, up, count, out);
  return cudaGetLastError();
}

cudaError_t AddInPlace(float* x, const float* y, int64_t count, cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  AddKernel<<<ElementBlocks(count), kElementThreads, 0, stream>>>(x, y, count);
  return cudaGetLastError();
}

}  // namespace owf::cuda::kernels
