// The shape and hyper-parameters of a Llama-family decoder (Llama, Mistral, Qwen2), read from a
// GGUF file's metadata or from a Hugging Face config.json, and the tensor names each source uses.
#pragma once

#include <vector>
#include <string>

#include "owf/core/status.h"
#include "owf/io/model.h"

namespace owf {

// How rotary embeddings pair up the dimensions of a head.
enum class RopeStyle {
  kInterleaved,  // (x[2i], x[2i+1]): GGUF "llama" (the converter permutes q/k rows to this)
  kHalfSplit,    // (x[i], x[i + rope_dim/2]): Hugging Face rotate_half, GGUF "qwen2"
};

// Frequency adjustments for long-context models (HF config "rope_scaling").
enum class RopeScalingType {
  kNone,
  kLinear,  // positions divided by `factor`
  kLlama3,  // Llama 3.1 per-frequency interpolation (factor, low/high_freq_factor, original ctx)
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position = 8192;
};

// Which naming scheme the tensors use.
enum class TensorNaming {
  kGguf,         // token_embd.weight, blk.N.attn_q.weight, ...
  kHuggingFace,  // model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...
};

struct TransformerConfig {
  std::string architecture;  // "llama", "qwen2" (GGUF) or "LlamaForCausalLM", ... (HF)
  TensorNaming naming = TensorNaming::kGguf;
  int dim = 0;         // d_model
  int hidden_dim = 0;  // FFN width
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;        // dim / n_heads unless the config says otherwise
  int rope_dim = 0;        // leading dimensions of each head that are rotated (usually head_dim)
  int vocab_size = 0;      // 0 until the embedding tensor is seen (LoadTransformer fills it)
  int context_length = 0;  // trained context (informational; 0 when unknown)
  int sliding_window = 0;  // attend to at most this many positions (0 = unlimited; Mistral)
  float norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::kInterleaved;
  RopeScaling rope_scaling;
  // HF tie_word_embeddings; for GGUF (and HF configs that do not say) the output head is tied
  // exactly when there is no output weight tensor.
  bool tie_embeddings = false;
  bool tie_embeddings_given = false;
};

// Reads the config of `reader`: GGUF metadata (format "gguf") or metadata()["config"] (a Hugging
// Face directory). Errors name the missing or malformed key; an architecture other than the
// Llama family is Unsupported.
Result<TransformerConfig> ReadTransformerConfig(const ModelReader& reader);

// Rotation speed (radians per position) of each rotated pair (rope_dim / 2 of them), with the
// configured scaling (linear, or Llama 3's wavelength-dependent blend).
std::vector<double> RopeInverseFrequencies(const TransformerConfig& config);
// The same from a parsed config.json.
Result<TransformerConfig> ParseHfConfig(const nlohmann::json& config);

// Tensor names for `naming`. `layer` < 0 for the global tensors.
struct TensorNames {
  std::string embedding, output_norm, output;
  std::string attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, gate, up, down;
};
TensorNames NamesFor(TensorNaming naming, int layer);

}  // namespace owf
