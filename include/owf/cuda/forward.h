// A Llama-family decoder on one CUDA GPU (target owf_cuda_model, CMake -DOWF_CUDA=ON), with the
// CPU Transformer's semantics (owf/model/transformer.h: same config, RMSNorm, rotary embeddings
// with Llama 3 scaling, grouped-query causal attention, SwiGLU, tied or untied output head, Qwen2
// q/k/v biases, Mistral sliding window) and its loading rules.
//
// Weights: matrices in bf16, or -- for an owf packed file -- kept quantised as owf's GPU layout
// (owf/cuda/kernels.h DeviceMatrix); norms and biases in fp32. Activations are fp32; they are
// rounded to bf16 only as the inputs of matrix products, which run with fp32 accumulation:
//   - bf16 weights: cuBLAS (cublasGemmEx, bf16 inputs, fp32 compute);
//   - quantised weights, more than `code_gemm_max_batch` tokens: DeviceMatrix::DequantiseBf16
//     into a reusable bf16 buffer, then cuBLAS (a Hadamard-rotated matrix: its stored rotated
//     form, DequantiseStoredBf16, times the activations rotated, RotateActivations, then
//     CorrectStoredProduct for its outliers); otherwise DeviceMatrix::Gemm on the codes.
// Attention keeps keys and values in an fp32 cache and computes scores, softmax and the weighted
// sum in fp32.
//
// A forward pass takes any number of tokens from any number of sequences ("slots") at once:
// ForwardBatch runs whole sequences (prefill, causal within each), DecodeStep appends one token
// to each of a set of sequences using the cache. Logits come back to the host as fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "owf/core/status.h"
#include "owf/cuda/model_files.h"
#include "owf/model/config.h"

namespace owf::cuda {

struct GpuTransformerOptions {
  int threads = 0;                // host threads reading and tiling weights (0 = all cores)
  bool keep_quantised = true;     // false: packed tensors are dequantised on the CPU, uploaded bf16
  int max_batch_tokens = 2048;    // ForwardBatch runs sequences in groups of at most this many
                                  // tokens (a longer sequence runs alone)
  int code_gemm_max_batch = 64;   // quantised matrices: DeviceMatrix::Gemm up to this many
                                  // tokens (0..64), dequantise + cuBLAS above
};

// What loading put on the GPU.
struct GpuLoadStats {
  int64_t weight_bytes = 0;  // device memory of the weights
  int quantised_matrices = 0, dense_matrices = 0;
  std::vector<std::pair<std::string, std::string>> fallbacks;  // packed tensors uploaded bf16, and why
  double seconds = 0;
};

class GpuTransformer {
 public:
  ~GpuTransformer();
  GpuTransformer(const GpuTransformer&) = delete;
  GpuTransformer& operator=(const GpuTransformer&) = delete;

  const TransformerConfig& config() const;
  int vocab_size() const;
  const GpuLoadStats& load_stats() const;
  // The longest sequence (positions per slot) the attention kernel takes on this device.
  int max_positions() const;

  // Logits of every position of `tokens`: [T][vocab], row i after tokens[0..i].
  // InvalidArgument (naming the index) for a token outside the vocabulary.
  Result<std::vector<float>> ForwardSequence(std::span<const int> tokens);
  // The same for several sequences (run together, in groups of max_batch_tokens): their logits
  // concatenated in order, [sum of lengths][vocab]. Discards any decoding state.
  Result<std::vector<float>> ForwardBatch(std::span<const std::vector<int>> sequences);

  // Incremental decoding of `slots` sequences in step, each up to `capacity` positions: forgets
  // any previous cache. Then each DecodeStep puts tokens[s] at the next position of sequence s
  // and returns the logits after it: [slots][vocab].
  Status StartDecoding(int slots, int capacity);
  Result<std::vector<float>> DecodeStep(std::span<const int> tokens);
  // Positions decoded so far (the position the next DecodeStep writes).
  int decoded_positions() const;

 private:
  struct Impl;
  explicit GpuTransformer(std::unique_ptr<Impl> impl);
  friend Result<std::unique_ptr<GpuTransformer>> LoadGpuTransformer(const GpuModelFiles&,
                                                                    const GpuTransformerOptions&);
  std::unique_ptr<Impl> impl_;
};

// Uploads a model's weights. Unsupported when no CUDA device can be used (saying why); errors of
// CUDA / cuBLAS calls name the call.
Result<std::unique_ptr<GpuTransformer>> LoadGpuTransformer(const GpuModelFiles& files,
                                                           const GpuTransformerOptions& options = {});
// Opens `path` (any model owf reads, or an owf packed file), loads it, closes the files.
Result<std::unique_ptr<GpuTransformer>> LoadGpuTransformer(const std::string& path,
                                                           const GpuTransformerOptions& options = {});

// Free and total bytes of the current device's memory.
Result<std::pair<int64_t, int64_t>> DeviceMemory();

// Device memory the activations, logits and key-value cache of a model take for forward passes
// of `tokens` tokens with `cache_rows` cached positions (all sequences together), plus the
// dequantisation buffer for its largest quantised matrix (elements).
int64_t EstimateScratchBytes(const TransformerConfig& c, int64_t tokens, int64_t cache_rows,
                             int64_t largest_quantised_matrix);

}  // namespace owf::cuda
