// Llama-family forward pass: see include/owf/model/transformer.h. Shapes in the comments use
// dim = d_model, q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, hidden = FFN width,
// T = positions attended to.
#include "owf/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "owf/core/parallel.h"

namespace owf {
namespace {

// Dot product in fp32 with 16 partial sums (so the compiler can vectorise without reordering
// anything itself), combined in a fixed order: the same result on every call.
inline float Dot(const float* a, const float* b, int n) {
  constexpr int kLanes = 16;
  if (n < kLanes) {  // short vectors (small heads): one sum
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) sum += a[i] * b[i];
    return sum;
  }
  float acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) acc[j] += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

// out (n) = x (n) / rms(x) * weight (n).
void RmsNorm(float* out, const float* x, const LargeVector<float>& weight, int n, float eps) {
  float sum_sq = 0.0f;
  for (int i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum_sq / static_cast<float>(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// Softmax of v (n) in place.
void Softmax(float* v, int n) {
  const float max = *std::max_element(v, v + n);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    v[i] = std::exp(v[i] - max);
    sum += v[i];
  }
  for (int i = 0; i < n; ++i) v[i] /= sum;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

// Reads named tensors of an expected shape as fp32.
class WeightLoader {
 public:
  explicit WeightLoader(const ModelReader& reader) : reader_(reader) {}

  // An absent tensor is an error unless `optional` (then the result is empty).
  Result<LargeVector<float>> Load(const std::string& name, std::vector<int64_t> shape,
                                  bool optional = false) const {
    const TensorInfo* info = reader_.Find(name);
    if (info == nullptr) {
      if (optional) return LargeVector<float>();
      return InvalidData("missing tensor '" + name + "'");
    }
    if (info->shape != shape) {
      return InvalidData("tensor '" + name + "' has shape " + ShapeString(info->shape) +
                         ", expected " + ShapeString(shape));
    }
    Result<Tensor> t = reader_.Read(*info);
    if (!t.ok()) return t.status().WithContext("reading tensor '" + name + "'");
    reader_.Release(*info);
    return std::move(t->data);
  }

 private:
  const ModelReader& reader_;
};

}  // namespace

Transformer::Transformer(TransformerConfig config, TransformerOptions options)
    : config_(std::move(config)), options_(options) {
  const TransformerConfig& c = config_;
  const int q_dim = c.n_heads * c.head_dim;
  x_.resize(c.dim);
  xb_.resize(std::max(c.dim, q_dim));
  xb2_.resize(c.dim);
  q_.resize(q_dim);
  att_out_.resize(q_dim);
  h1_.resize(c.hidden_dim);
  h3_.resize(c.hidden_dim);
  rope_cos_.resize(c.rope_dim / 2);
  rope_sin_.resize(c.rope_dim / 2);
  key_cache_.resize(c.n_layers);
  value_cache_.resize(c.n_layers);
  inv_freq_ = RopeInverseFrequencies(c);
}

void Transformer::EnsureCapacity(int positions) {
  if (positions <= capacity_) return;
  capacity_ = std::max({positions, 2 * capacity_, 64});
  const size_t kv_dim = static_cast<size_t>(config_.n_kv_heads) * config_.head_dim;
  for (int l = 0; l < config_.n_layers; ++l) {
    key_cache_[l].resize(capacity_ * kv_dim);
    value_cache_[l].resize(capacity_ * kv_dim);
  }
  scores_.resize(static_cast<size_t>(config_.n_heads) * capacity_);
}

void Transformer::MatVec(float* out, const LargeVector<float>& w, const float* x, int rows,
                         int cols) const {
  const int64_t rows_per_chunk = std::max<int64_t>(1, options_.min_chunk_work / std::max(cols, 1));
  const size_t chunks = static_cast<size_t>((rows + rows_per_chunk - 1) / rows_per_chunk);
  ParallelFor(chunks, options_.threads, [&](size_t chunk) {
    const int64_t begin = static_cast<int64_t>(chunk) * rows_per_chunk;
    const int64_t end = std::min<int64_t>(rows, begin + rows_per_chunk);
    for (int64_t r = begin; r < end; ++r) out[r] = Dot(w.data() + r * cols, x, cols);
  });
}

void Transformer::ApplyRope(float* v, int heads) const {
  const int hd = config_.head_dim, half = config_.rope_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* head = v + static_cast<size_t>(h) * hd;  // (head_dim)
    for (int i = 0; i < half; ++i) {
      // The pair rotated by angle position * inv_freq_[i]: adjacent dimensions (interleaved,
      // GGUF llama) or dimension i with i + rope_dim/2 (rotate_half, Hugging Face).
      const int a = config_.rope_style == RopeStyle::kInterleaved ? 2 * i : i;
      const int b = config_.rope_style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
      const float x0 = head[a], x1 = head[b];
      head[a] = x0 * rope_cos_[i] - x1 * rope_sin_[i];
      head[b] = x0 * rope_sin_[i] + x1 * rope_cos_[i];
    }
  }
}

void Transformer::Attention(int layer, int position) {
  const TransformerConfig& c = config_;
  const int hd = c.head_dim, kv_dim = c.n_kv_heads * hd;
  const int group = c.n_heads / c.n_kv_heads;  // query heads sharing one key-value head
  const int first = c.sliding_window > 0 ? std::max(0, position - c.sliding_window + 1) : 0;
  const int T = position + 1 - first;  // positions attended to
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* keys = key_cache_[layer].data();      // (capacity, kv_dim)
  const float* values = value_cache_[layer].data();  // (capacity, kv_dim)
  // Heads are independent; parallel only when there is enough work per head.
  const int64_t work_per_head = static_cast<int64_t>(T) * hd * 2;
  const int64_t heads_per_chunk =
      std::max<int64_t>(1, options_.min_chunk_work / std::max<int64_t>(work_per_head, 1));
  const size_t chunks = static_cast<size_t>((c.n_heads + heads_per_chunk - 1) / heads_per_chunk);
  ParallelFor(chunks, options_.threads, [&](size_t chunk) {
    const int h_end = static_cast<int>(std::min<int64_t>(c.n_heads, (chunk + 1) * heads_per_chunk));
    for (int h = static_cast<int>(chunk * heads_per_chunk); h < h_end; ++h) {
      const int kv_off = (h / group) * hd;                       // this head's key-value head
      const float* q = q_.data() + static_cast<size_t>(h) * hd;  // (head_dim)
      float* score = scores_.data() + static_cast<size_t>(h) * capacity_;  // (T)
      // score[t] = q . k_t / sqrt(head_dim), then softmax over t.
      for (int t = 0; t < T; ++t) {
        score[t] = Dot(q, keys + static_cast<size_t>(first + t) * kv_dim + kv_off, hd) * scale;
      }
      Softmax(score, T);
      // out (head_dim) = sum_t score[t] * v_t.
      float* out = att_out_.data() + static_cast<size_t>(h) * hd;
      std::fill(out, out + hd, 0.0f);
      for (int t = 0; t < T; ++t) {
        const float* v = values + static_cast<size_t>(first + t) * kv_dim + kv_off;  // (head_dim)
        for (int i = 0; i < hd; ++i) out[i] += score[t] * v[i];
      }
    }
  });
}

std::vector<float> Transformer::Forward(int token, int position) {
  const TransformerConfig& c = config_;
  if (token < 0 || token >= c.vocab_size || position < 0 || position > cached_) return {};
  const int dim = c.dim, hidden = c.hidden_dim;
  const int q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  EnsureCapacity(position + 1);

  // This position's rotation angles: position * inv_freq (in double, then rounded).
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = static_cast<double>(position) * inv_freq_[i];
    rope_cos_[i] = static_cast<float>(std::cos(angle));
    rope_sin_[i] = static_cast<float>(std::sin(angle));
  }

  // x (dim): the residual stream, starting as the token's embedding row.
  float* x = x_.data();
  std::copy_n(embedding_.data() + static_cast<size_t>(token) * dim, dim, x);

  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& w = layers_[l];

    // ---- Attention block.
    // xb (dim) = RMSNorm(x) * attn_norm.
    RmsNorm(xb_.data(), x, w.attn_norm, dim, c.norm_eps);
    // q (q_dim) = wq (q_dim, dim) @ xb; k, v (kv_dim) = wk / wv (kv_dim, dim) @ xb, written
    // straight into this position's row of the layer's cache.
    float* k = key_cache_[l].data() + static_cast<size_t>(position) * kv_dim;    // (kv_dim)
    float* v = value_cache_[l].data() + static_cast<size_t>(position) * kv_dim;  // (kv_dim)
    const TensorNames& names = layer_names_[l];
    Observe(names.wq, xb_.data(), dim);
    Observe(names.wk, xb_.data(), dim);
    Observe(names.wv, xb_.data(), dim);
    MatVec(q_.data(), w.wq, xb_.data(), q_dim, dim);
    MatVec(k, w.wk, xb_.data(), kv_dim, dim);
    MatVec(v, w.wv, xb_.data(), kv_dim, dim);
    // Optional biases (Qwen2): (q_dim), (kv_dim), (kv_dim).
    for (int i = 0; i < static_cast<int>(w.bq.size()); ++i) q_[i] += w.bq[i];
    for (int i = 0; i < static_cast<int>(w.bk.size()); ++i) k[i] += w.bk[i];
    for (int i = 0; i < static_cast<int>(w.bv.size()); ++i) v[i] += w.bv[i];
    // Rotary embeddings on q (n_heads, head_dim) and k (n_kv_heads, head_dim).
    ApplyRope(q_.data(), c.n_heads);
    ApplyRope(k, c.n_kv_heads);
    // att_out (q_dim): each query head attends over positions <= position of its KV head.
    Attention(l, position);
    // xb2 (dim) = wo (dim, q_dim) @ att_out; x += xb2.
    Observe(names.wo, att_out_.data(), q_dim);
    MatVec(xb2_.data(), w.wo, att_out_.data(), dim, q_dim);
    for (int i = 0; i < dim; ++i) x[i] += xb2_[i];

    // ---- Feed-forward block (SwiGLU).
    // xb (dim) = RMSNorm(x) * ffn_norm.
    RmsNorm(xb_.data(), x, w.ffn_norm, dim, c.norm_eps);
    // h1 (hidden) = gate (hidden, dim) @ xb; h3 (hidden) = up (hidden, dim) @ xb.
    Observe(names.gate, xb_.data(), dim);
    Observe(names.up, xb_.data(), dim);
    MatVec(h1_.data(), w.gate, xb_.data(), hidden, dim);
    MatVec(h3_.data(), w.up, xb_.data(), hidden, dim);
    // h1 (hidden) = silu(h1) * h3, silu(z) = z * sigmoid(z).
    for (int i = 0; i < hidden; ++i) {
      const float z = h1_[i];
      h1_[i] = z / (1.0f + std::exp(-z)) * h3_[i];
    }
    // xb2 (dim) = down (dim, hidden) @ h1; x += xb2.
    Observe(names.down, h1_.data(), hidden);
    MatVec(xb2_.data(), w.down, h1_.data(), dim, hidden);
    for (int i = 0; i < dim; ++i) x[i] += xb2_[i];
  }

  // xb (dim) = RMSNorm(x) * output_norm; logits (vocab) = output (vocab, dim) @ xb.
  RmsNorm(xb_.data(), x, output_norm_, dim, c.norm_eps);
  std::vector<float> logits(c.vocab_size);
  Observe(head_name_, xb_.data(), dim);
  MatVec(logits.data(), output_.empty() ? embedding_ : output_, xb_.data(), c.vocab_size, dim);
  cached_ = position + 1;
  return logits;
}

Result<std::vector<std::vector<float>>> Transformer::ForwardSequence(std::span<const int> tokens) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size) {
      return InvalidArgument("token " + std::to_string(i) + " = " + std::to_string(tokens[i]) +
                             " is outside the vocabulary [0, " +
                             std::to_string(config_.vocab_size) + ")");
    }
  }
  Reset();
  std::vector<std::vector<float>> logits;
  logits.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    logits.push_back(Forward(tokens[i], static_cast<int>(i)));
  }
  return logits;
}

Result<std::unique_ptr<Transformer>> LoadTransformer(const ModelReader& reader,
                                                     const TransformerOptions& options) {
  OWF_ASSIGN_OR_RETURN(TransformerConfig c, ReadTransformerConfig(reader));
  const WeightLoader loader(reader);
  const TensorNames global = NamesFor(c.naming, -1);

  // The vocabulary size is the embedding's row count; a config that says otherwise is wrong.
  const TensorInfo* emb = reader.Find(global.embedding);
  if (emb == nullptr) return InvalidData("missing tensor '" + global.embedding + "'");
  if (emb->shape.size() != 2 || emb->shape[1] != c.dim || emb->shape[0] < 1 ||
      emb->shape[0] > (int64_t{1} << 30)) {
    return InvalidData("tensor '" + global.embedding + "' has shape " + ShapeString(emb->shape) +
                       ", expected (vocab, " + std::to_string(c.dim) + ")");
  }
  if (c.vocab_size != 0 && c.vocab_size != emb->shape[0]) {
    return InvalidData("config vocab_size " + std::to_string(c.vocab_size) + " but tensor '" +
                       global.embedding + "' has " + std::to_string(emb->shape[0]) + " rows");
  }
  c.vocab_size = static_cast<int>(emb->shape[0]);
  const int64_t vocab = c.vocab_size, dim = c.dim, hidden = c.hidden_dim;
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim,
                kv_dim = int64_t{c.n_kv_heads} * c.head_dim;

  // Tied exactly when the config says so, or (not said) when there is no output weight.
  const bool has_output = reader.Find(global.output) != nullptr;
  if (c.tie_embeddings_given && !c.tie_embeddings && !has_output) {
    return InvalidData("missing tensor '" + global.output + "' (tie_word_embeddings is false)");
  }
  if (!c.tie_embeddings_given) c.tie_embeddings = !has_output;

  // GGUF Llama 3 carries its rope scaling as per-frequency divisors.
  const TensorInfo* rope_freqs = reader.Find("rope_freqs.weight");

  std::unique_ptr<Transformer> t(new Transformer(c, options));
  OWF_ASSIGN_OR_RETURN(t->embedding_, loader.Load(global.embedding, {vocab, dim}));
  OWF_ASSIGN_OR_RETURN(t->output_norm_, loader.Load(global.output_norm, {dim}));
  if (!c.tie_embeddings) {
    OWF_ASSIGN_OR_RETURN(t->output_, loader.Load(global.output, {vocab, dim}));
  }
  if (c.naming == TensorNaming::kGguf && rope_freqs != nullptr) {
    OWF_ASSIGN_OR_RETURN(const LargeVector<float> factors,
                         loader.Load("rope_freqs.weight", {c.rope_dim / 2}));
    for (size_t i = 0; i < factors.size(); ++i) {
      if (!(factors[i] > 0.0f)) return InvalidData("tensor 'rope_freqs.weight' must be positive");
      t->inv_freq_[i] /= factors[i];
    }
  }
  t->layers_.resize(c.n_layers);
  t->head_name_ = c.tie_embeddings ? global.embedding : global.output;
  for (int l = 0; l < c.n_layers; ++l) {
    const TensorNames n = NamesFor(c.naming, l);
    t->layer_names_.push_back(n);
    Transformer::Layer& w = t->layers_[l];
    OWF_ASSIGN_OR_RETURN(w.attn_norm, loader.Load(n.attn_norm, {dim}));
    OWF_ASSIGN_OR_RETURN(w.wq, loader.Load(n.wq, {q_dim, dim}));
    OWF_ASSIGN_OR_RETURN(w.wk, loader.Load(n.wk, {kv_dim, dim}));
    OWF_ASSIGN_OR_RETURN(w.wv, loader.Load(n.wv, {kv_dim, dim}));
    OWF_ASSIGN_OR_RETURN(w.wo, loader.Load(n.wo, {dim, q_dim}));
    OWF_ASSIGN_OR_RETURN(w.bq, loader.Load(n.bq, {q_dim}, /*optional=*/true));
    OWF_ASSIGN_OR_RETURN(w.bk, loader.Load(n.bk, {kv_dim}, /*optional=*/true));
    OWF_ASSIGN_OR_RETURN(w.bv, loader.Load(n.bv, {kv_dim}, /*optional=*/true));
    OWF_ASSIGN_OR_RETURN(w.ffn_norm, loader.Load(n.ffn_norm, {dim}));
    OWF_ASSIGN_OR_RETURN(w.gate, loader.Load(n.gate, {hidden, dim}));
    OWF_ASSIGN_OR_RETURN(w.up, loader.Load(n.up, {hidden, dim}));
    OWF_ASSIGN_OR_RETURN(w.down, loader.Load(n.down, {dim, hidden}));
  }
  return t;
}

Result<std::unique_ptr<Transformer>> LoadTransformer(const ModelReader& reader, int threads) {
  TransformerOptions options;
  options.threads = threads;
  return LoadTransformer(reader, options);
}

}  // namespace owf
