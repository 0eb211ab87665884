#include "owf/model/transformer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "owf/io/model.h"
#include "owf/io/safetensors_writer.h"
#include "owf/model/tokenizer.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

std::string ModelPath() { return std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf"; }

#define SKIP_WITHOUT_MODEL() \
  if (!fs::exists(ModelPath())) GTEST_SKIP() << "no model at " << ModelPath()

std::unique_ptr<ModelReader> OpenOrDie(const std::string& path) {
  auto r = OpenModel(path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

std::unique_ptr<Transformer> LoadOrDie(const ModelReader& reader, TransformerOptions options = {}) {
  auto t = LoadTransformer(reader, options);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

int ArgMax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// ---------------------------------------------------------------------------------------------
// A deliberately naive reference: double precision, one position at a time over the whole
// prefix (no cache), hyper-parameters given by the test rather than read by owf's config code.

struct RefSpec {
  int dim = 64, hidden = 172, layers = 5, heads = 8, kv_heads = 4;
  double eps = 1e-5, theta = 10000.0;
  bool interleaved = true;  // GGUF llama; false: Hugging Face rotate_half
  bool hf_names = false;
  bool tied = false;  // output head = embedding
  // Llama 3 rope scaling (factor 0 = none).
  double factor = 0, low_freq_factor = 1, high_freq_factor = 4, original_context = 8192;
};

struct RefModel {
  RefSpec s;
  std::map<std::string, std::vector<double>> w;  // by role name, e.g. "L3.wq"
  int vocab = 0;
  const std::vector<double>& at(const std::string& key) const { return w.at(key); }
};

RefModel LoadReference(const ModelReader& reader, const RefSpec& spec) {
  RefModel m;
  m.s = spec;
  const auto get = [&](const std::string& key, const std::string& name, bool optional) {
    const TensorInfo* info = reader.Find(name);
    if (info == nullptr) {
      EXPECT_TRUE(optional) << "missing " << name;
      return;
    }
    auto t = reader.Read(*info);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    m.w[key] = std::vector<double>(t->data.begin(), t->data.end());
  };
  const bool hf = spec.hf_names;
  get("emb", hf ? "model.embed_tokens.weight" : "token_embd.weight", false);
  get("norm", hf ? "model.norm.weight" : "output_norm.weight", false);
  if (!spec.tied) get("out", hf ? "lm_head.weight" : "output.weight", false);
  m.vocab = static_cast<int>(m.w["emb"].size() / spec.dim);
  for (int l = 0; l < spec.layers; ++l) {
    const std::string k = std::string("L").append(std::to_string(l)).append(".");
    const std::string g = "blk." + std::to_string(l) + ".";
    const std::string h = "model.layers." + std::to_string(l) + ".";
    get(k + "attn_norm", hf ? h + "input_layernorm.weight" : g + "attn_norm.weight", false);
    get(k + "wq", hf ? h + "self_attn.q_proj.weight" : g + "attn_q.weight", false);
    get(k + "wk", hf ? h + "self_attn.k_proj.weight" : g + "attn_k.weight", false);
    get(k + "wv", hf ? h + "self_attn.v_proj.weight" : g + "attn_v.weight", false);
    get(k + "wo", hf ? h + "self_attn.o_proj.weight" : g + "attn_output.weight", false);
    get(k + "bq", hf ? h + "self_attn.q_proj.bias" : g + "attn_q.bias", true);
    get(k + "bk", hf ? h + "self_attn.k_proj.bias" : g + "attn_k.bias", true);
    get(k + "bv", hf ? h + "self_attn.v_proj.bias" : g + "attn_v.bias", true);
    get(k + "ffn_norm", hf ? h + "post_attention_layernorm.weight" : g + "ffn_norm.weight", false);
    get(k + "gate", hf ? h + "mlp.gate_proj.weight" : g + "ffn_gate.weight", false);
    get(k + "up", hf ? h + "mlp.up_proj.weight" : g + "ffn_up.weight", false);
    get(k + "down", hf ? h + "mlp.down_proj.weight" : g + "ffn_down.weight", false);
  }
  return m;
}

// y = W x (+ b) for W of shape (rows, x.size()).
std::vector<double> Linear(const std::vector<double>& W, const std::vector<double>& x,
                           const std::vector<double>* b = nullptr) {
  const size_t rows = W.size() / x.size();
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < x.size(); ++c) y[r] += W[r * x.size() + c] * x[c];
    if (b != nullptr) y[r] += (*b)[r];
  }
  return y;
}

std::vector<double> Norm(const std::vector<double>& x, const std::vector<double>& g, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * g[i];
  return y;
}

double RefFrequency(const RefSpec& s, int i, int head_dim) {
  const double base = 1.0 / std::pow(s.theta, (2.0 * i) / head_dim);
  if (s.factor == 0) return base;
  // Llama 3.1: by wavelength, unchanged (short), divided by factor (long), or interpolated.
  const double wavelength = 2 * std::numbers::pi / base;
  if (wavelength < s.original_context / s.high_freq_factor) return base;
  if (wavelength > s.original_context / s.low_freq_factor) return base / s.factor;
  const double t = (s.original_context / wavelength - s.low_freq_factor) /
                   (s.high_freq_factor - s.low_freq_factor);
  return t * base + (1 - t) * base / s.factor;
}

void RefRotate(const RefSpec& s, std::vector<double>& v, int heads, int pos) {
  const int hd = s.dim / s.heads;
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      const double angle = pos * RefFrequency(s, i, hd);
      const int a = h * hd + (s.interleaved ? 2 * i : i);
      const int b = h * hd + (s.interleaved ? 2 * i + 1 : i + hd / 2);
      const double x = v[a], y = v[b];
      v[a] = x * std::cos(angle) - y * std::sin(angle);
      v[b] = x * std::sin(angle) + y * std::cos(angle);
    }
  }
}

// Logits after tokens[0..p], for every p.
std::vector<std::vector<double>> RefForward(const RefModel& m, const std::vector<int>& tokens) {
  const RefSpec& s = m.s;
  const int n = static_cast<int>(tokens.size()), hd = s.dim / s.heads;
  const auto opt = [&](const std::string& key) {
    const auto it = m.w.find(key);
    return it == m.w.end() ? nullptr : &it->second;
  };
  std::vector<std::vector<double>> x(n);
  for (int p = 0; p < n; ++p) {
    x[p].assign(m.at("emb").begin() + tokens[p] * s.dim,
                m.at("emb").begin() + (tokens[p] + 1) * s.dim);
  }
  for (int l = 0; l < s.layers; ++l) {
    const std::string k = std::string("L").append(std::to_string(l)).append(".");
    std::vector<std::vector<double>> q(n), key(n), val(n);
    for (int p = 0; p < n; ++p) {
      const std::vector<double> xn = Norm(x[p], m.at(k + "attn_norm"), s.eps);
      q[p] = Linear(m.at(k + "wq"), xn, opt(k + "bq"));
      key[p] = Linear(m.at(k + "wk"), xn, opt(k + "bk"));
      val[p] = Linear(m.at(k + "wv"), xn, opt(k + "bv"));
      RefRotate(s, q[p], s.heads, p);
      RefRotate(s, key[p], s.kv_heads, p);
    }
    for (int p = 0; p < n; ++p) {
      std::vector<double> att(s.heads * hd, 0.0);
      for (int h = 0; h < s.heads; ++h) {
        const int g = h / (s.heads / s.kv_heads);
        std::vector<double> score(p + 1);
        double mx = -1e300, sum = 0;
        for (int t = 0; t <= p; ++t) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[p][h * hd + i] * key[t][g * hd + i];
          score[t] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, score[t]);
        }
        for (int t = 0; t <= p; ++t) sum += (score[t] = std::exp(score[t] - mx));
        for (int t = 0; t <= p; ++t) {
          for (int i = 0; i < hd; ++i) att[h * hd + i] += score[t] / sum * val[t][g * hd + i];
        }
      }
      const std::vector<double> o = Linear(m.at(k + "wo"), att);
      for (int i = 0; i < s.dim; ++i) x[p][i] += o[i];
      const std::vector<double> xn = Norm(x[p], m.at(k + "ffn_norm"), s.eps);
      const std::vector<double> gate = Linear(m.at(k + "gate"), xn),
                                up = Linear(m.at(k + "up"), xn);
      std::vector<double> a(s.hidden);
      for (int i = 0; i < s.hidden; ++i) a[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const std::vector<double> d = Linear(m.at(k + "down"), a);
      for (int i = 0; i < s.dim; ++i) x[p][i] += d[i];
    }
  }
  std::vector<std::vector<double>> logits(n);
  for (int p = 0; p < n; ++p) {
    logits[p] = Linear(s.tied ? m.at("emb") : m.at("out"), Norm(x[p], m.at("norm"), s.eps));
  }
  return logits;
}

// A 20-token TinyStories sequence starting with BOS.
std::vector<int> TestSequence(const ModelReader& reader) {
  auto tok = LoadTokenizer(reader);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  std::vector<int> ids = (*tok)->Encode(
      "Once upon a time, there was a big dog named Max. Max liked to run and jump in the sun.",
      /*add_bos=*/true);
  ids.resize(20);
  return ids;
}

double MaxDiff(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

// ---------------------------------------------------------------------------------------------

TEST(Transformer, ReadsConfigFromGguf) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  auto t = LoadOrDie(*reader);
  const TransformerConfig& c = t->config();
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_NEAR(c.norm_eps, 1e-5f, 1e-12);
  EXPECT_EQ(c.rope_style, RopeStyle::kInterleaved);
  EXPECT_FALSE(c.tie_embeddings);  // stories260K.gguf carries output.weight
}

TEST(Transformer, GreedyStoryFromBos) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  auto t = LoadOrDie(*reader);
  auto tok = LoadTokenizer(*reader);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  ASSERT_EQ((*tok)->bos_id(), 1);

  std::vector<int> generated;
  int token = (*tok)->bos_id();
  double p_once = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int pos = 0; pos < 30; ++pos) {
    const std::vector<float> logits = t->Forward(token, pos);
    ASSERT_EQ(logits.size(), 512u);
    if (pos == 0) {
      const float mx = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
      p_once = std::exp(logits[(*tok)->Find("▁Once")] - mx) / sum;
    }
    token = ArgMax(logits);
    generated.push_back(token);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string text = (*tok)->Decode(generated);
  std::cout << "greedy: \"" << text << "\"\n"
            << "P(Once | BOS) = " << p_once << ", " << 30 / seconds << " tokens/s\n";
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play "
                       "outside in the park",
                       0),
            0u)
      << text;
  EXPECT_NEAR(p_once, 0.78, 0.02);
  // The model writes canonical tokenizations: re-encoding its text gives its tokens back.
  EXPECT_EQ((*tok)->Encode(text), generated);
}

TEST(Transformer, MatchesNaiveDoubleReference) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  auto t = LoadOrDie(*reader);
  const std::vector<int> tokens = TestSequence(*reader);
  const auto ref = RefForward(LoadReference(*reader, RefSpec{}), tokens);
  auto got = t->ForwardSequence(tokens);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (int p : {0, 1, 2, 5, 9, 14, 19}) {
    EXPECT_LT(MaxDiff((*got)[p], ref[p]), 1e-4) << "position " << p;
  }
}

TEST(Transformer, SameLogitsForAnyThreadCountAndSequenceApi) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  const std::vector<int> tokens = TestSequence(*reader);
  // Tiny chunks so that every matrix and the attention really are split across threads.
  TransformerOptions options;
  options.min_chunk_work = 1;
  options.threads = 1;
  auto t = LoadOrDie(*reader, options);
  std::vector<std::vector<float>> one_thread;
  for (size_t p = 0; p < tokens.size(); ++p) {
    one_thread.push_back(t->Forward(tokens[p], static_cast<int>(p)));
  }
  for (int threads : {2, 4}) {
    t->set_threads(threads);
    auto seq = t->ForwardSequence(tokens);
    ASSERT_TRUE(seq.ok());
    ASSERT_EQ(seq->size(), tokens.size());
    for (size_t p = 0; p < tokens.size(); ++p) {
      ASSERT_EQ((*seq)[p], one_thread[p]) << threads << " threads, position " << p;
    }
  }
  // Default chunking (each matrix of this model is one chunk) gives the same numbers too.
  auto plain = LoadOrDie(*reader, TransformerOptions{});
  auto seq = plain->ForwardSequence(tokens);
  ASSERT_TRUE(seq.ok());
  for (size_t p = 0; p < tokens.size(); ++p) EXPECT_EQ((*seq)[p], one_thread[p]);
}

TEST(Transformer, CacheRewindAndBadInput) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  auto t = LoadOrDie(*reader);
  const std::vector<int> tokens = TestSequence(*reader);
  auto seq = t->ForwardSequence(tokens);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(t->cached_positions(), 20);
  // Re-running position 10 forgets what came after, and gives the same logits again.
  EXPECT_EQ(t->Forward(tokens[10], 10), (*seq)[10]);
  EXPECT_EQ(t->cached_positions(), 11);
  EXPECT_TRUE(t->Forward(tokens[12], 12).empty());  // position 11 is not cached
  EXPECT_TRUE(t->Forward(512, 11).empty());
  EXPECT_TRUE(t->Forward(-1, 11).empty());
  t->Reset();
  EXPECT_EQ(t->cached_positions(), 0);
  EXPECT_TRUE(t->Forward(tokens[1], 1).empty());
  const std::vector<int> bad = {1, 600};
  auto r = t->ForwardSequence(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("600"), std::string::npos) << r.status().message();
}

// A reader over another's tensors whose tensor list and metadata a test may edit.
class EditedReader : public ModelReader {
 public:
  explicit EditedReader(const ModelReader& inner) : inner_(inner) {
    tensors_ = inner.tensors();
    metadata_ = inner.metadata();
    files_ = inner.files();
  }
  const char* format() const override { return inner_.format(); }
  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    return inner_.RawBytes(t);
  }
  std::vector<TensorInfo>& tensors() { return tensors_; }
  nlohmann::json& metadata() { return metadata_; }

 private:
  const ModelReader& inner_;
};

TEST(Transformer, ErrorsNameTheProblem) {
  SKIP_WITHOUT_MODEL();
  auto reader = OpenOrDie(ModelPath());
  {
    EditedReader r(*reader);
    std::erase_if(r.tensors(), [](const TensorInfo& t) { return t.name == "blk.3.ffn_up.weight"; });
    auto t = LoadTransformer(r, 1);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("missing tensor 'blk.3.ffn_up.weight'"), std::string::npos)
        << t.status().message();
  }
  {
    EditedReader r(*reader);
    for (auto& info : r.tensors()) {
      if (info.name == "blk.1.attn_k.weight") info.shape = {64, 64};
    }
    auto t = LoadTransformer(r, 1);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(
        t.status().message().find("'blk.1.attn_k.weight' has shape (64, 64), expected (32, 64)"),
        std::string::npos)
        << t.status().message();
  }
  {
    EditedReader r(*reader);
    r.metadata()["general.architecture"] = "gemma";
    auto t = LoadTransformer(r, 1);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kUnsupported);
    EXPECT_NE(t.status().message().find("'gemma'"), std::string::npos) << t.status().message();
  }
  {
    EditedReader r(*reader);
    r.metadata().erase("llama.feed_forward_length");
    auto t = LoadTransformer(r, 1);
    ASSERT_FALSE(t.ok());
    EXPECT_NE(t.status().message().find("llama.feed_forward_length"), std::string::npos)
        << t.status().message();
  }
  {
    EditedReader r(*reader);
    std::erase_if(r.tensors(), [](const TensorInfo& t) { return t.name == "output.weight"; });
    auto t = LoadTransformer(r, 1);  // no output weight: tied to the embedding
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE((*t)->config().tie_embeddings);
  }
}

TEST(Transformer, HfConfigParsing) {
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}},
                        {"hidden_size", 4096},
                        {"intermediate_size", 14336},
                        {"num_hidden_layers", 32},
                        {"num_attention_heads", 32},
                        {"num_key_value_heads", 8},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 500000.0},
                        {"vocab_size", 128256},
                        {"tie_word_embeddings", false},
                        {"hidden_act", "silu"},
                        {"rope_scaling",
                         {{"factor", 8.0},
                          {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192},
                          {"rope_type", "llama3"}}}};
  auto c = ParseHfConfig(cfg);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->n_kv_heads, 8);
  EXPECT_EQ(c->rope_style, RopeStyle::kHalfSplit);
  EXPECT_EQ(c->naming, TensorNaming::kHuggingFace);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.original_max_position, 8192);
  EXPECT_TRUE(c->tie_embeddings_given);

  auto missing = cfg;
  missing.erase("num_hidden_layers");
  auto m = ParseHfConfig(missing);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("num_hidden_layers"), std::string::npos);

  auto other = cfg;
  other["architectures"] = {"GemmaForCausalLM"};
  auto o = ParseHfConfig(other);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(o.status().message().find("GemmaForCausalLM"), std::string::npos);

  auto yarn = cfg;
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_EQ(ParseHfConfig(yarn).status().code(), StatusCode::kUnsupported);
}

// ---------------------------------------------------------------------------------------------
// Hugging Face layout: the GGUF weights written back as a model directory, with q/k rows put
// back in Hugging Face order (the GGUF converter interleaves the two halves of each head).

struct HfDir {
  fs::path dir;
  ~HfDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// Row r of a head in Hugging Face order is row (r mod hd/2) * 2 + (r div hd/2) in GGUF order.
std::vector<float> UnpermuteRows(const LargeVector<float>& w, int heads, int cols) {
  const int hd = static_cast<int>(w.size() / cols / heads);
  std::vector<float> out(w.size());
  for (int h = 0; h < heads; ++h) {
    for (int r = 0; r < hd; ++r) {
      const int from = h * hd + (r % (hd / 2)) * 2 + r / (hd / 2);
      std::copy_n(w.data() + static_cast<size_t>(from) * cols, cols,
                  out.data() + static_cast<size_t>(h * hd + r) * cols);
    }
  }
  return out;
}

// Writes the GGUF model as `architecture` in a fresh directory. `bias_scale` > 0 adds random
// q/k/v biases; `tied` leaves lm_head out.
void WriteHfModel(const ModelReader& gguf, const fs::path& dir, nlohmann::json config,
                  double bias_scale, bool tied) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump(2);
  auto w = SafetensorsWriter::Create((dir / "model.safetensors").string());
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::mt19937 rng(7);
  // (stddev must be > 0 even when unused: libstdc++ asserts it under _GLIBCXX_ASSERTIONS)
  std::normal_distribution<float> normal(0.0f, bias_scale > 0 ? static_cast<float>(bias_scale) : 1.0f);
  const auto add = [&](const std::string& name, const std::vector<int64_t>& shape,
                       const std::vector<float>& data) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
    ASSERT_TRUE((*w)->Add(name, "F32", shape, {bytes, data.size() * sizeof(float)}).ok());
  };
  const auto copy = [&](const std::string& from, const std::string& to, int unpermute_heads) {
    const TensorInfo* info = gguf.Find(from);
    ASSERT_NE(info, nullptr) << from;
    auto t = gguf.Read(*info);
    ASSERT_TRUE(t.ok());
    std::vector<float> data(t->data.begin(), t->data.end());
    if (unpermute_heads > 0) data = UnpermuteRows(t->data, unpermute_heads, 64);
    add(to, info->shape, data);
  };
  copy("token_embd.weight", "model.embed_tokens.weight", 0);
  copy("output_norm.weight", "model.norm.weight", 0);
  if (!tied) copy("output.weight", "lm_head.weight", 0);
  for (int l = 0; l < 5; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".";
    const std::string h = "model.layers." + std::to_string(l) + ".";
    copy(g + "attn_norm.weight", h + "input_layernorm.weight", 0);
    copy(g + "attn_q.weight", h + "self_attn.q_proj.weight", 8);
    copy(g + "attn_k.weight", h + "self_attn.k_proj.weight", 4);
    copy(g + "attn_v.weight", h + "self_attn.v_proj.weight", 0);
    copy(g + "attn_output.weight", h + "self_attn.o_proj.weight", 0);
    copy(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", 0);
    copy(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", 0);
    copy(g + "ffn_up.weight", h + "mlp.up_proj.weight", 0);
    copy(g + "ffn_down.weight", h + "mlp.down_proj.weight", 0);
    if (bias_scale > 0) {
      for (const auto& [name, n] : {std::pair{"q_proj", 64}, {"k_proj", 32}, {"v_proj", 32}}) {
        std::vector<float> b(n);
        for (float& v : b) v = normal(rng);
        add(h + "self_attn." + name + ".bias", {n}, b);
      }
    }
  }
  ASSERT_TRUE((*w)->Finish().ok());
}

nlohmann::json StoriesConfig(const std::string& architecture) {
  return {{"architectures", {architecture}},
          {"hidden_size", 64},
          {"intermediate_size", 172},
          {"num_hidden_layers", 5},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 4},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"vocab_size", 512},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false}};
}

fs::path TempDir(const std::string& name) {
  return fs::temp_directory_path() / ("owf_model_test_" + std::to_string(::getpid()) + "_" + name);
}

TEST(Transformer, HuggingFaceLayoutGivesTheSameLogits) {
  SKIP_WITHOUT_MODEL();
  auto gguf = OpenOrDie(ModelPath());
  HfDir tmp{TempDir("llama")};
  WriteHfModel(*gguf, tmp.dir, StoriesConfig("LlamaForCausalLM"), 0, /*tied=*/false);
  auto hf = OpenOrDie(tmp.dir.string());
  auto t = LoadOrDie(*hf);
  EXPECT_EQ(t->config().rope_style, RopeStyle::kHalfSplit);
  const std::vector<int> tokens = TestSequence(*gguf);
  auto a = LoadOrDie(*gguf)->ForwardSequence(tokens);
  auto b = t->ForwardSequence(tokens);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t p = 0; p < tokens.size(); ++p) {
    for (size_t i = 0; i < 512; ++i) ASSERT_NEAR((*a)[p][i], (*b)[p][i], 1e-5) << p << " " << i;
  }
}

TEST(Transformer, Qwen2BiasesAndTiedHeadMatchReference) {
  SKIP_WITHOUT_MODEL();
  auto gguf = OpenOrDie(ModelPath());
  HfDir tmp{TempDir("qwen2")};
  nlohmann::json config = StoriesConfig("Qwen2ForCausalLM");
  config["tie_word_embeddings"] = true;
  WriteHfModel(*gguf, tmp.dir, config, 0.5, /*tied=*/true);
  auto hf = OpenOrDie(tmp.dir.string());
  auto t = LoadOrDie(*hf);
  EXPECT_TRUE(t->config().tie_embeddings);
  RefSpec spec;
  spec.interleaved = false;
  spec.hf_names = true;
  spec.tied = true;
  const std::vector<int> tokens = TestSequence(*gguf);
  const auto ref = RefForward(LoadReference(*hf, spec), tokens);
  auto got = t->ForwardSequence(tokens);
  ASSERT_TRUE(got.ok());
  for (size_t p = 0; p < tokens.size(); ++p) EXPECT_LT(MaxDiff((*got)[p], ref[p]), 1e-4) << p;
}

TEST(Transformer, Llama3RopeScalingMatchesReference) {
  SKIP_WITHOUT_MODEL();
  auto gguf = OpenOrDie(ModelPath());
  HfDir tmp{TempDir("llama3")};
  // A short original context puts this model's four frequencies (wavelengths 6.3 to 6283
  // positions) in all three regions: kept, interpolated and divided by the factor.
  nlohmann::json config = StoriesConfig("LlamaForCausalLM");
  config["rope_scaling"] = {{"rope_type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 64}};
  WriteHfModel(*gguf, tmp.dir, config, 0, /*tied=*/false);
  auto hf = OpenOrDie(tmp.dir.string());
  auto t = LoadOrDie(*hf);
  RefSpec spec;
  spec.interleaved = false;
  spec.hf_names = true;
  spec.factor = 8;
  spec.original_context = 64;
  const std::vector<int> tokens = TestSequence(*gguf);
  const auto ref = RefForward(LoadReference(*hf, spec), tokens);
  auto got = t->ForwardSequence(tokens);
  auto unscaled = LoadOrDie(*gguf)->ForwardSequence(tokens);
  ASSERT_TRUE(got.ok() && unscaled.ok());
  for (size_t p = 0; p < tokens.size(); ++p) EXPECT_LT(MaxDiff((*got)[p], ref[p]), 1e-4) << p;
  EXPECT_NE((*got)[19], (*unscaled)[19]);  // the scaling changed something
}

}  // namespace
}  // namespace owf
