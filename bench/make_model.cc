// Writes a generated Llama-3-8B-shaped bf16 model (a Hugging Face directory: safetensors shards,
// index, config.json) of roughly the requested size, for benchmarks of whole-model quantisation
// and evaluation: Llama 3's widths (d_model 4096, FFN 14336, 32 heads of 128, 8 key-value heads,
// vocabulary 128256, untied head, rope theta 500000 with Llama 3.1 scaling) and as many layers as
// the size allows. SIZE_GB 16.06 gives Llama-3-8B's 32 layers (8.03 G parameters).
//   build/bench/owf_make_model OUT_DIR SIZE_GB [SHARD_GB]
// Weights are iid Student-t(5)-like values times 0.02 (a fixed table indexed by a xorshift
// generator: fast, deterministic, heavy-tailed enough to exercise the formats).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "owf/core/numeric.h"
#include "owf/io/safetensors_writer.h"

namespace {

struct Source {
  std::vector<uint16_t> table;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  Source() {
    std::mt19937_64 rng(5);
    std::student_t_distribution<float> td(5.0f);
    table.resize(1 << 16);
    for (auto& v : table) v = owf::Bf16FromFloat(0.02f * td(rng));
  }
  void Fill(std::vector<uint8_t>& out, float norm_value) {
    uint16_t* p = reinterpret_cast<uint16_t*>(out.data());
    const size_t n = out.size() / 2;
    if (norm_value != 0) {
      std::fill(p, p + n, owf::Bf16FromFloat(norm_value));
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      p[i] = table[state & 0xFFFF];
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR SIZE_GB [SHARD_GB]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const double size_gb = std::atof(argv[2]);
  const double shard_gb = argc > 3 ? std::atof(argv[3]) : 5.0;
  const int64_t hidden = 4096, inter = 14336, kv = 1024, vocab = 128256;
  const double layer_bytes = 2.0 * (2 * hidden * hidden + 2 * kv * hidden + 3 * inter * hidden + 2 * hidden);
  const double fixed_bytes = 2.0 * (2 * vocab * hidden + hidden);
  const int layers = std::max(1, static_cast<int>(std::ceil((size_gb * 1e9 - fixed_bytes) / layer_bytes)));

  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"model.embed_tokens.weight", {vocab, hidden}}};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensors.push_back({p + "input_layernorm.weight", {hidden}});
    tensors.push_back({p + "self_attn.q_proj.weight", {hidden, hidden}});
    tensors.push_back({p + "self_attn.k_proj.weight", {kv, hidden}});
    tensors.push_back({p + "self_attn.v_proj.weight", {kv, hidden}});
    tensors.push_back({p + "self_attn.o_proj.weight", {hidden, hidden}});
    tensors.push_back({p + "post_attention_layernorm.weight", {hidden}});
    tensors.push_back({p + "mlp.gate_proj.weight", {inter, hidden}});
    tensors.push_back({p + "mlp.up_proj.weight", {inter, hidden}});
    tensors.push_back({p + "mlp.down_proj.weight", {hidden, inter}});
  }
  tensors.push_back({"model.norm.weight", {hidden}});
  tensors.push_back({"lm_head.weight", {vocab, hidden}});

  std::filesystem::create_directories(dir);
  Source src;
  nlohmann::json weight_map;
  std::unique_ptr<owf::SafetensorsWriter> writer;
  int shard = 0;
  double in_shard = 0, total = 0;
  std::vector<std::string> shard_names;
  auto finish = [&]() -> bool {
    if (!writer) return true;
    owf::Status st = writer->Finish();
    if (!st.ok()) std::fprintf(stderr, "error: %s\n", st.message().c_str());
    writer.reset();
    return st.ok();
  };
  std::vector<uint8_t> buf;
  for (const auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (!writer || in_shard + 2.0 * n > shard_gb * 1e9) {
      if (!finish()) return 1;
      char file[64];
      std::snprintf(file, sizeof(file), "model-%05d.safetensors", ++shard);
      shard_names.push_back(file);
      auto w = owf::SafetensorsWriter::Create((dir / file).string());
      if (!w.ok()) {
        std::fprintf(stderr, "error: %s\n", w.status().message().c_str());
        return 1;
      }
      writer = std::move(*w);
      in_shard = 0;
    }
    buf.resize(static_cast<size_t>(2 * n));
    src.Fill(buf, shape.size() == 1 ? 1.0f : 0.0f);
    owf::Status st = writer->Add(name, "BF16", shape, buf);
    if (!st.ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      return 1;
    }
    weight_map[name] = shard_names.back();
    in_shard += 2.0 * n;
    total += 2.0 * n;
  }
  if (!finish()) return 1;
  std::ofstream(dir / "model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(1);
  const int64_t head_dim = 128;
  const nlohmann::json rope_scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  std::ofstream(dir / "config.json") << nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                                                       {"model_type", "llama"},
                                                       {"hidden_size", hidden},
                                                       {"intermediate_size", inter},
                                                       {"num_hidden_layers", layers},
                                                       {"num_attention_heads", hidden / head_dim},
                                                       {"num_key_value_heads", kv / head_dim},
                                                       {"vocab_size", vocab},
                                                       {"hidden_act", "silu"},
                                                       {"rms_norm_eps", 1e-5},
                                                       {"rope_theta", 500000.0},
                                                       {"rope_scaling", rope_scaling},
                                                       {"max_position_embeddings", 131072},
                                                       {"tie_word_embeddings", false},
                                                       {"torch_dtype", "bfloat16"}}
                                            .dump(1);
  std::printf("wrote %s: %d layers, %zu tensors, %.2f G parameters, %.2f GB in %d shards\n", dir.c_str(), layers,
              tensors.size(), total / 2e9, total / 1e9, shard);
  return 0;
}
