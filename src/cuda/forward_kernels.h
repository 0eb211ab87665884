// The GPU transformer's own kernels (src/cuda/forward.cu): everything of a Llama-family layer
// except the matrix products. Internal to owf_cuda_model. Plain C++17 with CUDA runtime types
// only, so that host code compiled by g++ can call the launchers.
//
// Activations are fp32, row-major, one row per token; bf16 (as uint16_t bits) appears only where a
// kernel writes the input of a matrix product. A batch of n tokens may mix sequences: token i is
// at position pos[i] of a sequence whose position 0 is row seq_row[i] of the key-value cache, so
// position t of it is row seq_row[i] + t. The cache of one layer is (rows, kv_dim) fp32 for keys
// and the same for values. Each launcher returns the launch's error (cudaSuccess when the kernel
// was queued); faults inside kernels surface at the next synchronising call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace owf::cuda::kernels {

struct AttentionShape {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int rope_dim = 0;          // leading dimensions of each head that are rotated
  bool interleaved = false;  // rotated pairs (2i, 2i+1); otherwise (i, i + rope_dim/2)
  int max_positions = 0;     // every pos[i] < max_positions (sizes the attention's shared memory)
  int sliding_window = 0;    // attend to at most this many positions (0 = all)
};

// x (n, dim) fp32 = rows tokens[i] of table (vocab, dim) bf16.
cudaError_t EmbedTokens(const uint16_t* table, const int32_t* tokens, int n, int dim, float* x, cudaStream_t stream);

// out (n, dim) bf16 = x (n, dim) * (1 / sqrt(mean(x^2) + eps)) * weight (dim), per row.
cudaError_t RmsNormToBf16(const float* x, const float* weight, int n, int dim, float eps, uint16_t* out,
                          cudaStream_t stream);

// Per token i: q (n, n_heads * head_dim) += bq; k, v (n, n_kv_heads * head_dim) += bk, bv (each
// bias may be null); rotary embeddings on q and k with the angles of position pos[i]
// (rope_cos / rope_sin: (positions, rope_dim / 2)); then k and v are stored in the layer's caches
// at row seq_row[i] + pos[i]. q and k are modified in place.
cudaError_t BiasRopeStore(const AttentionShape& s, int n, float* q, float* k, const float* v, const float* bq,
                          const float* bk, const float* bv, const int32_t* seq_row, const int32_t* pos,
                          const float* rope_cos, const float* rope_sin, float* k_cache, float* v_cache,
                          cudaStream_t stream);

// out (n, n_heads * head_dim) bf16: each query head h of token i attends to the positions
// max(0, pos[i] - window + 1) .. pos[i] of its sequence in the cache, key-value head h / (n_heads /
// n_kv_heads): softmax(q . k / sqrt(head_dim)) weighted sum of v, all in fp32.
cudaError_t CausalAttention(const AttentionShape& s, int n, const float* q, const int32_t* seq_row, const int32_t* pos,
                            const float* k_cache, const float* v_cache, uint16_t* out, cudaStream_t stream);

// The largest max_positions CausalAttention handles for head_dim on this device (its scores live
// in shared memory): fills *positions, or returns the error of the device query.
cudaError_t MaxAttentionPositions(int head_dim, int* positions);

// out (count) bf16 = silu(gate) * up, silu(z) = z / (1 + exp(-z)).
cudaError_t SwiGluToBf16(const float* gate, const float* up, int64_t count, uint16_t* out, cudaStream_t stream);

// x (count) += y (count).
cudaError_t AddInPlace(float* x, const float* y, int64_t count, cudaStream_t stream);

}  // namespace owf::cuda::kernels
