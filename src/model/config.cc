// Transformer configuration from GGUF metadata or a Hugging Face config.json.
#include "owf/model/config.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <string>

namespace owf {
namespace {

// `where` is "GGUF metadata" or "config.json": it goes into messages.
Result<double> GetNumber(const nlohmann::json& obj, const std::string& key,
                         const std::string& where, std::optional<double> fallback) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (fallback) return *fallback;
    return InvalidData(where + " has no key '" + key + "'");
  }
  if (!it->is_number()) return InvalidData(where + " key '" + key + "' is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v)) return InvalidData(where + " key '" + key + "' is not finite");
  return v;
}

// A positive integer that fits in int (or 0 where `allow_zero`).
Result<int> GetInt(const nlohmann::json& obj, const std::string& key, const std::string& where,
                   std::optional<int> fallback, bool allow_zero = false) {
  OWF_ASSIGN_OR_RETURN(
      const double v,
      GetNumber(obj, key, where, fallback ? std::optional<double>(*fallback) : std::nullopt));
  if (v != std::floor(v) || v < (allow_zero ? 0 : 1) || v > std::numeric_limits<int>::max()) {
    return InvalidData(where + " key '" + key + "' = " + nlohmann::json(v).dump() +
                       " is not a positive integer in range");
  }
  return static_cast<int>(v);
}

Result<double> GetPositive(const nlohmann::json& obj, const std::string& key,
                           const std::string& where, std::optional<double> fallback) {
  OWF_ASSIGN_OR_RETURN(const double v, GetNumber(obj, key, where, fallback));
  if (!(v > 0)) return InvalidData(where + " key '" + key + "' must be positive");
  return v;
}

// Checks that the head counts divide evenly and fills the derived sizes.
Status Finish(TransformerConfig& c, const std::string& where) {
  if (c.n_heads % c.n_kv_heads != 0) {
    return InvalidData(where + ": " + std::to_string(c.n_heads) + " attention heads are not a " +
                       "multiple of " + std::to_string(c.n_kv_heads) + " key-value heads");
  }
  if (c.head_dim == 0) {
    if (c.dim % c.n_heads != 0) {
      return InvalidData(where + ": d_model " + std::to_string(c.dim) + " is not a multiple of " +
                         std::to_string(c.n_heads) + " heads");
    }
    c.head_dim = c.dim / c.n_heads;
  }
  if (c.rope_dim == 0) c.rope_dim = c.head_dim;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return InvalidData(where + ": rotary dimension " + std::to_string(c.rope_dim) +
                       " must be even and at most the head size " + std::to_string(c.head_dim));
  }
  return Status::Ok();
}

Result<TransformerConfig> ReadGgufConfig(const nlohmann::json& md) {
  const std::string where = "GGUF metadata";
  const auto arch_it = md.find("general.architecture");
  if (arch_it == md.end() || !arch_it->is_string()) {
    return InvalidData(where + " has no string key 'general.architecture'");
  }
  TransformerConfig c;
  c.architecture = arch_it->get<std::string>();
  c.naming = TensorNaming::kGguf;
  if (c.architecture == "llama") {
    c.rope_style = RopeStyle::kInterleaved;
  } else if (c.architecture == "qwen2") {
    c.rope_style = RopeStyle::kHalfSplit;  // the converter does not permute Qwen2's q/k
  } else {
    return Unsupported("GGUF architecture '" + c.architecture +
                       "' is not supported (supported: llama, qwen2)");
  }
  const std::string p = c.architecture + ".";
  OWF_ASSIGN_OR_RETURN(c.n_layers, GetInt(md, p + "block_count", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.dim, GetInt(md, p + "embedding_length", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.hidden_dim, GetInt(md, p + "feed_forward_length", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.n_heads, GetInt(md, p + "attention.head_count", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.n_kv_heads, GetInt(md, p + "attention.head_count_kv", where, c.n_heads));
  OWF_ASSIGN_OR_RETURN(c.head_dim, GetInt(md, p + "attention.key_length", where, 0, true));
  OWF_ASSIGN_OR_RETURN(const double eps,
                       GetPositive(md, p + "attention.layer_norm_rms_epsilon", where, 1e-5));
  c.norm_eps = static_cast<float>(eps);
  OWF_ASSIGN_OR_RETURN(c.rope_theta, GetPositive(md, p + "rope.freq_base", where, 10000.0));
  OWF_ASSIGN_OR_RETURN(c.rope_dim, GetInt(md, p + "rope.dimension_count", where, 0, true));
  OWF_ASSIGN_OR_RETURN(c.context_length, GetInt(md, p + "context_length", where, 0, true));
  // Linear scaling is the one GGUF spells in metadata; Llama 3 ships a rope_freqs tensor instead.
  const auto type_it = md.find(p + "rope.scaling.type");
  if (type_it != md.end() && type_it->is_string() && *type_it != "none") {
    if (*type_it != "linear") {
      return Unsupported(where + " key '" + p + "rope.scaling.type' = " + type_it->dump() +
                         " is not supported (none, linear)");
    }
    c.rope_scaling.type = RopeScalingType::kLinear;
    OWF_ASSIGN_OR_RETURN(c.rope_scaling.factor,
                         GetPositive(md, p + "rope.scaling.factor", where, std::nullopt));
  }
  OWF_RETURN_IF_ERROR(Finish(c, where));
  return c;
}

Result<RopeScaling> ParseRopeScaling(const nlohmann::json& rs) {
  const std::string where = "config.json rope_scaling";
  RopeScaling s;
  if (rs.is_null()) return s;
  if (!rs.is_object()) return InvalidData(where + " is not an object");
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    const auto it = rs.find(key);
    if (it != rs.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type.empty() || type == "default") return s;
  if (type == "linear") {
    s.type = RopeScalingType::kLinear;
    OWF_ASSIGN_OR_RETURN(s.factor, GetPositive(rs, "factor", where, std::nullopt));
    return s;
  }
  if (type == "llama3") {
    s.type = RopeScalingType::kLlama3;
    OWF_ASSIGN_OR_RETURN(s.factor, GetPositive(rs, "factor", where, std::nullopt));
    OWF_ASSIGN_OR_RETURN(s.low_freq_factor,
                         GetPositive(rs, "low_freq_factor", where, std::nullopt));
    OWF_ASSIGN_OR_RETURN(s.high_freq_factor,
                         GetPositive(rs, "high_freq_factor", where, std::nullopt));
    OWF_ASSIGN_OR_RETURN(s.original_max_position,
                         GetPositive(rs, "original_max_position_embeddings", where, std::nullopt));
    if (!(s.high_freq_factor > s.low_freq_factor)) {
      return InvalidData(where + ": high_freq_factor must exceed low_freq_factor");
    }
    return s;
  }
  return Unsupported(where + " type '" + type + "' is not supported (default, linear, llama3)");
}

}  // namespace

Result<TransformerConfig> ParseHfConfig(const nlohmann::json& cfg) {
  const std::string where = "config.json";
  if (!cfg.is_object()) return InvalidData(where + " is not a JSON object");
  TransformerConfig c;
  c.naming = TensorNaming::kHuggingFace;
  c.rope_style = RopeStyle::kHalfSplit;
  const auto arch_it = cfg.find("architectures");
  if (arch_it != cfg.end() && arch_it->is_array() && !arch_it->empty() &&
      (*arch_it)[0].is_string()) {
    c.architecture = (*arch_it)[0].get<std::string>();
  } else if (cfg.contains("model_type") && cfg["model_type"].is_string()) {
    const std::string type = cfg["model_type"];
    if (type == "llama") c.architecture = "LlamaForCausalLM";
    if (type == "mistral") c.architecture = "MistralForCausalLM";
    if (type == "qwen2") c.architecture = "Qwen2ForCausalLM";
    if (c.architecture.empty()) c.architecture = type;
  } else {
    return InvalidData(where + " has neither 'architectures' nor 'model_type'");
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM" &&
      c.architecture != "Qwen2ForCausalLM") {
    return Unsupported("architecture '" + c.architecture +
                       "' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                       "Qwen2ForCausalLM)");
  }
  const auto act = cfg.find("hidden_act");
  if (act != cfg.end() && act->is_string() && *act != "silu") {
    return Unsupported(where + " hidden_act " + act->dump() + " is not supported (silu)");
  }
  OWF_ASSIGN_OR_RETURN(c.dim, GetInt(cfg, "hidden_size", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.hidden_dim, GetInt(cfg, "intermediate_size", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.n_layers, GetInt(cfg, "num_hidden_layers", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.n_heads, GetInt(cfg, "num_attention_heads", where, std::nullopt));
  OWF_ASSIGN_OR_RETURN(c.n_kv_heads, GetInt(cfg, "num_key_value_heads", where, c.n_heads));
  OWF_ASSIGN_OR_RETURN(c.head_dim, GetInt(cfg, "head_dim", where, 0, true));
  OWF_ASSIGN_OR_RETURN(c.vocab_size, GetInt(cfg, "vocab_size", where, 0, true));
  OWF_ASSIGN_OR_RETURN(c.context_length, GetInt(cfg, "max_position_embeddings", where, 0, true));
  OWF_ASSIGN_OR_RETURN(const double eps, GetPositive(cfg, "rms_norm_eps", where, 1e-6));
  c.norm_eps = static_cast<float>(eps);
  OWF_ASSIGN_OR_RETURN(c.rope_theta, GetPositive(cfg, "rope_theta", where, 10000.0));
  if (cfg.contains("rope_scaling")) {
    OWF_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(cfg["rope_scaling"]));
  }
  const auto tie = cfg.find("tie_word_embeddings");
  if (tie != cfg.end() && tie->is_boolean()) {
    c.tie_embeddings = tie->get<bool>();
    c.tie_embeddings_given = true;
  }
  // Mistral's sliding window; Qwen2 declares one but only applies it with use_sliding_window
  // (and then only above max_window_layers), which is not modelled here.
  if (c.architecture == "MistralForCausalLM") {
    OWF_ASSIGN_OR_RETURN(c.sliding_window, GetInt(cfg, "sliding_window", where, 0, true));
  } else if (c.architecture == "Qwen2ForCausalLM" && cfg.value("use_sliding_window", false)) {
    return Unsupported(where + ": use_sliding_window = true is not supported");
  }
  OWF_RETURN_IF_ERROR(Finish(c, where));
  return c;
}

Result<TransformerConfig> ReadTransformerConfig(const ModelReader& reader) {
  if (std::string(reader.format()) == "gguf") return ReadGgufConfig(reader.metadata());
  const auto it = reader.metadata().find("config");
  if (it == reader.metadata().end()) {
    return InvalidArgument(std::string("a ") + reader.format() +
                           " model needs its config.json: open the Hugging Face model directory");
  }
  return ParseHfConfig(*it);
}

TensorNames NamesFor(TensorNaming naming, int layer) {
  TensorNames n;
  const std::string l = std::to_string(layer);
  if (naming == TensorNaming::kGguf) {
    n.embedding = "token_embd.weight";
    n.output_norm = "output_norm.weight";
    n.output = "output.weight";
    const std::string b = "blk." + l + ".";
    n.attn_norm = b + "attn_norm.weight";
    n.wq = b + "attn_q.weight";
    n.wk = b + "attn_k.weight";
    n.wv = b + "attn_v.weight";
    n.wo = b + "attn_output.weight";
    n.bq = b + "attn_q.bias";
    n.bk = b + "attn_k.bias";
    n.bv = b + "attn_v.bias";
    n.ffn_norm = b + "ffn_norm.weight";
    n.gate = b + "ffn_gate.weight";
    n.up = b + "ffn_up.weight";
    n.down = b + "ffn_down.weight";
  } else {
    n.embedding = "model.embed_tokens.weight";
    n.output_norm = "model.norm.weight";
    n.output = "lm_head.weight";
    const std::string b = "model.layers." + l + ".";
    n.attn_norm = b + "input_layernorm.weight";
    n.wq = b + "self_attn.q_proj.weight";
    n.wk = b + "self_attn.k_proj.weight";
    n.wv = b + "self_attn.v_proj.weight";
    n.wo = b + "self_attn.o_proj.weight";
    n.bq = b + "self_attn.q_proj.bias";
    n.bk = b + "self_attn.k_proj.bias";
    n.bv = b + "self_attn.v_proj.bias";
    n.ffn_norm = b + "post_attention_layernorm.weight";
    n.gate = b + "mlp.gate_proj.weight";
    n.up = b + "mlp.up_proj.weight";
    n.down = b + "mlp.down_proj.weight";
  }
  return n;
}

std::vector<double> RopeInverseFrequencies(const TransformerConfig& c) {
  std::vector<double> inv_freq(c.rope_dim / 2);
  const RopeScaling& s = c.rope_scaling;
  for (int i = 0; i < c.rope_dim / 2; ++i) {
    double f = std::pow(c.rope_theta, -2.0 * i / c.rope_dim);
    if (s.type == RopeScalingType::kLinear) {
      f /= s.factor;
    } else if (s.type == RopeScalingType::kLlama3) {
      // Llama 3.1: keep short wavelengths, stretch long ones by `factor`, blend in between.
      const double wavelen = 2.0 * std::numbers::pi / f;
      const double low_freq_wavelen = s.original_max_position / s.low_freq_factor;
      const double high_freq_wavelen = s.original_max_position / s.high_freq_factor;
      if (wavelen > low_freq_wavelen) {
        f /= s.factor;
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (s.original_max_position / wavelen - s.low_freq_factor) /
                              (s.high_freq_factor - s.low_freq_factor);
        f = (1.0 - smooth) * f / s.factor + smooth * f;
      }
    }
    inv_freq[i] = f;
  }
  return inv_freq;
}

}  // namespace owf
