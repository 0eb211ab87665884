// A forward pass for Llama-family decoders (Llama 1-3, Mistral, Qwen2, TinyStories) on the CPU,
// in fp32 with fp32 accumulation, one token at a time with a key-value cache. It exists to
// measure what quantisation costs a model: weights are read once as fp32 from any ModelReader,
// so bf16 / f16 / f32 files and owf's dequantised (`--emit fake`) copies all run unchanged.
//
// Per token: embedding row -> for each layer { RMSNorm -> q, k, v projections (+ Qwen2 biases)
// -> rotary embeddings -> grouped-query causal attention over the cache -> output projection +
// residual -> RMSNorm -> SwiGLU FFN down(silu(gate x) * up x) + residual } -> RMSNorm -> output
// head (the embedding when tied) -> logits over the vocabulary.
//
// Matrix-vector products run on ParallelFor over chunks of output rows; each row's dot product
// is computed by one thread in a fixed order, so logits are bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "owf/core/memory.h"
#include "owf/core/status.h"
#include "owf/io/model.h"
#include "owf/model/config.h"

namespace owf {

struct TransformerOptions {
  int threads = 0;  // worker threads (0 = all cores)
  // Multiply-adds per parallel chunk: matrices smaller than this run on the calling thread
  // (starting threads costs more). Chunking depends on sizes only, never on the thread count.
  int64_t min_chunk_work = int64_t{1} << 16;
};

// Called before every product of a weight matrix with an activation vector: the weight's name
// as the model file spells it (q, k, v, o, gate, up, down of every layer and the output head;
// the head of a tied model is the embedding) and its input, one value per input column (the
// weight's last dimension). `input` is valid during the call only. For owf imatrix.
using MatVecObserver = std::function<void(const std::string& weight, std::span<const float> input)>;

class Transformer {
 public:
  // One layer's weights, fp32, row-major [out, in] as stored. Biases are empty when absent.
  struct Layer {
    LargeVector<float> attn_norm;       // (dim)
    LargeVector<float> wq, wk, wv, wo;  // (q_dim, dim), (kv_dim, dim) x2, (dim, q_dim)
    LargeVector<float> bq, bk, bv;      // (q_dim), (kv_dim), (kv_dim) or empty
    LargeVector<float> ffn_norm;        // (dim)
    LargeVector<float> gate, up, down;  // (hidden, dim) x2, (dim, hidden)
  };

  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const TransformerConfig& config() const { return config_; }
  int vocab_size() const { return config_.vocab_size; }
  // Positions held in the key-value cache: the next position to run.
  int cached_positions() const { return cached_; }
  void set_threads(int threads) { options_.threads = threads; }
  // Observes every weight's input vectors from now on (an empty function: none).
  void set_observer(MatVecObserver observer) { observer_ = std::move(observer); }

  // Forgets the key-value cache (the next Forward must be at position 0).
  void Reset() { cached_ = 0; }

  // Runs `token` at `position` and returns the logits over the vocabulary (vocab_size floats).
  // Positions 0..position-1 must be in the cache: position <= cached_positions(). Running an
  // earlier position again overwrites its cache entry and forgets the later ones. Returns an
  // empty vector when token is not in [0, vocab_size) or position is out of that range.
  std::vector<float> Forward(int token, int position);

  // Reset(), then runs tokens[i] at position i; element i holds the logits after tokens[0..i].
  // InvalidArgument (naming the index) for a token outside the vocabulary.
  Result<std::vector<std::vector<float>>> ForwardSequence(std::span<const int> tokens);

 private:
  friend Result<std::unique_ptr<Transformer>> LoadTransformer(const ModelReader&,
                                                              const TransformerOptions&);
  // Sizes the scratch buffers; LoadTransformer fills in the weights.
  Transformer(TransformerConfig config, TransformerOptions options);
  // out (rows) = w (rows, cols) @ x (cols), parallel over chunks of rows.
  void MatVec(float* out, const LargeVector<float>& w, const float* x, int rows, int cols) const;
  // Rotates the first rope_dim dimensions of each of the `heads` heads in v by the angles of
  // the position whose cos / sin are in rope_cos_ / rope_sin_.
  void ApplyRope(float* v, int heads) const;
  // att_out_ (n_heads * head_dim) = causal attention of q_ over the cache of `layer`.
  void Attention(int layer, int position);
  void EnsureCapacity(int positions);
  // Hands `input` (n) to the observer, if any, as the input of weight `name`.
  void Observe(const std::string& name, const float* input, int n) const {
    if (observer_) observer_(name, std::span<const float>(input, static_cast<size_t>(n)));
  }

  TransformerConfig config_;
  TransformerOptions options_;

  LargeVector<float> embedding_;    // (vocab, dim)
  LargeVector<float> output_norm_;  // (dim)
  LargeVector<float> output_;       // (vocab, dim); empty when tied to embedding_
  std::vector<Layer> layers_;
  std::vector<TensorNames> layer_names_;  // per layer, as in the model file
  std::string head_name_;                 // the output head's (the embedding's when tied)
  MatVecObserver observer_;
  std::vector<double> inv_freq_;  // (rope_dim / 2) rotation speed of each pair, per position

  // Key-value cache: per layer, (capacity, kv_dim) each.
  std::vector<std::vector<float>> key_cache_, value_cache_;
  int capacity_ = 0;
  int cached_ = 0;

  // Scratch for one token.
  std::vector<float> x_, xb_, xb2_, q_, att_out_, h1_, h3_;
  std::vector<float> scores_;               // (n_heads, capacity)
  std::vector<float> rope_cos_, rope_sin_;  // (rope_dim / 2)
};

// Reads the config (ReadTransformerConfig) and every weight of a Llama-family model as fp32.
// Errors name the missing tensor, the tensor with the wrong shape, or the unsupported key.
Result<std::unique_ptr<Transformer>> LoadTransformer(const ModelReader& reader,
                                                     const TransformerOptions& options);
Result<std::unique_ptr<Transformer>> LoadTransformer(const ModelReader& reader, int threads = 0);

}  // namespace owf
