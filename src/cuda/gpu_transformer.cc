// GpuTransformer: see include/owf/cuda/forward.h. Shapes in the comments use n = tokens in the
// forward pass, dim = d_model, q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim,
// hidden = FFN width, rows = positions held in the key-value cache.
//
// Everything runs on the default stream, in order: a product that dequantises into the shared
// bf16 buffer finishes before the next one overwrites it. The host waits only when logits are
// copied back, which is also where faults inside kernels are reported.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "cuda_util.h"
#include "forward_kernels.h"
#include "owf/core/parallel.h"
#include "owf/cuda/forward.h"
#include "owf/cuda/kernels.h"

namespace owf::cuda {
namespace {

// A weight matrix W (rows, cols), applied as y = W x.
struct Linear {
  std::string name;
  int64_t rows = 0, cols = 0;
  DeviceBuffer<uint16_t> storage;         // bf16 values, when held densely
  const uint16_t* dense = nullptr;        // (rows, cols) bf16: storage, or the embedding's (tied)
  std::optional<DeviceMatrix> quantised;  // owf codes in the GPU layout
};

struct Layer {
  DeviceBuffer<float> attn_norm, ffn_norm;  // (dim)
  DeviceBuffer<float> bq, bk, bv;           // (q_dim), (kv_dim), (kv_dim), or empty
  Linear wq, wk, wv, wo;                    // (q_dim, dim), (kv_dim, dim) x2, (dim, q_dim)
  Linear gate, up, down;                    // (hidden, dim) x2, (dim, hidden)
};

// One forward pass's tokens: token i is ids[i] at position pos[i] of the sequence whose
// position 0 is cache row seq_row[i].
struct TokenBatch {
  std::vector<int32_t> ids, seq_row, pos;
  int longest = 0;  // 1 + the largest position
};

}  // namespace

struct GpuTransformer::Impl {
  TransformerConfig config;
  GpuTransformerOptions options;
  std::vector<double> inv_freq;  // (rope_dim / 2)
  GpuLoadStats stats;
  int max_positions = 0;  // the attention kernel's limit on this device
  cublasHandle_t blas = nullptr;

  // ---- Weights.
  DeviceBuffer<uint16_t> embedding;    // (vocab, dim) bf16
  DeviceBuffer<float> output_norm;     // (dim)
  Linear output;                       // (vocab, dim): its own, or the embedding's when tied
  std::vector<Layer> layers;
  DeviceBuffer<uint16_t> dequantised;  // (largest quantised matrix) bf16, refilled per product

  // ---- Activations for up to `tokens` tokens.
  int64_t tokens = 0;
  DeviceBuffer<int32_t> ids, seq_row, pos;  // (n)
  DeviceBuffer<float> x;                    // (n, dim) residual stream
  DeviceBuffer<uint16_t> xb;                // (n, dim) bf16: normed x, a product's input
  DeviceBuffer<float> q, k, v;              // (n, q_dim), (n, kv_dim), (n, kv_dim)
  DeviceBuffer<uint16_t> att;               // (n, q_dim) bf16: attention output
  DeviceBuffer<float> proj;                 // (n, dim): output of wo / down
  DeviceBuffer<float> h1, h3;               // (n, hidden): gate and up outputs
  DeviceBuffer<uint16_t> hb;                // (n, hidden) bf16: silu(h1) * h3
  DeviceBuffer<uint16_t> rotated;           // (n, rotated_cols) bf16: a rotated matrix's inputs
  int64_t rotated_cols = 0;                 // the widest rotated matrix (0: none)
  DeviceBuffer<float> logits;               // (n, vocab)

  // ---- Key-value cache: (n_layers, cache_rows, kv_dim) each; rotation angles of positions.
  int64_t cache_rows = 0;
  DeviceBuffer<float> k_cache, v_cache;
  int rope_positions = 0;
  DeviceBuffer<float> rope_cos, rope_sin;  // (rope_positions, rope_dim / 2)

  // ---- Decoding state (StartDecoding / DecodeStep).
  int slots = 0, capacity = 0, decoded = 0;

  ~Impl() {
    if (blas != nullptr) cublasDestroy(blas);
  }

  int64_t q_dim() const { return int64_t{config.n_heads} * config.head_dim; }
  int64_t kv_dim() const { return int64_t{config.n_kv_heads} * config.head_dim; }

  Status UploadLinear(const std::string& name, HostMatrix h, Linear& dst);
  Status UploadEmbedding(const std::string& name, HostMatrix h);
  Status ReserveActivations(int64_t n);
  Status ReserveCache(int64_t rows, int longest);
  Status Product(const Linear& w, const uint16_t* x, int n, float* y);
  Status Run(const TokenBatch& batch);
  Status CopyLogits(int64_t n, float* host);
};

GpuTransformer::GpuTransformer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuTransformer::~GpuTransformer() = default;

const TransformerConfig& GpuTransformer::config() const { return impl_->config; }
int GpuTransformer::vocab_size() const { return impl_->config.vocab_size; }
const GpuLoadStats& GpuTransformer::load_stats() const { return impl_->stats; }
int GpuTransformer::max_positions() const { return impl_->max_positions; }
int GpuTransformer::decoded_positions() const { return impl_->decoded; }

Status GpuTransformer::Impl::UploadLinear(const std::string& name, HostMatrix h, Linear& dst) {
  dst.name = name;
  dst.rows = h.rows;
  dst.cols = h.cols;
  if (!h.fallback.empty()) stats.fallbacks.emplace_back(name, h.fallback);
  if (h.tiled) {
    Result<DeviceMatrix> m = DeviceMatrix::Upload(*h.tiled);
    if (!m.ok()) return m.status().WithContext("uploading '" + name + "'");
    stats.weight_bytes += m->weight_bytes();
    dst.quantised.emplace(std::move(*m));
    ++stats.quantised_matrices;
    return Status::Ok();
  }
  OWF_RETURN_IF_ERROR(dst.storage.Upload(h.dense_bytes(), static_cast<size_t>(h.rows * h.cols), "'" + name + "'"));
  dst.dense = dst.storage.get();
  stats.weight_bytes += static_cast<int64_t>(dst.storage.bytes());
  ++stats.dense_matrices;
  return Status::Ok();
}

// The embedding is a bf16 lookup table on the GPU in any case (a quantised one is dequantised
// there, bit-exact with the CPU's bf16 rounding); when tied, the output head reads it too, and a
// quantised embedding's codes serve the head's small products.
Status GpuTransformer::Impl::UploadEmbedding(const std::string& name, HostMatrix h) {
  const size_t count = static_cast<size_t>(h.rows * h.cols);
  if (!h.fallback.empty()) stats.fallbacks.emplace_back(name, h.fallback);
  std::optional<DeviceMatrix> codes;
  if (h.tiled) {
    Result<DeviceMatrix> m = DeviceMatrix::Upload(*h.tiled);
    if (!m.ok()) return m.status().WithContext("uploading '" + name + "'");
    OWF_RETURN_IF_ERROR(embedding.Allocate(count, "the embedding table"));
    OWF_RETURN_IF_ERROR(m->DequantiseBf16(embedding.get(), h.cols, nullptr).WithContext("dequantising '" + name + "'"));
    codes.emplace(std::move(*m));
    ++stats.quantised_matrices;
  } else {
    OWF_RETURN_IF_ERROR(embedding.Upload(h.dense_bytes(), count, "the embedding table"));
    ++stats.dense_matrices;
  }
  stats.weight_bytes += static_cast<int64_t>(embedding.bytes());
  if (config.tie_embeddings) {
    output.name = name;
    output.rows = h.rows;
    output.cols = h.cols;
    output.dense = embedding.get();
    if (codes) {
      stats.weight_bytes += codes->weight_bytes();
      output.quantised = std::move(codes);
    }
  }
  return Status::Ok();
}

Status GpuTransformer::Impl::ReserveActivations(int64_t n) {
  if (n <= tokens) return Status::Ok();
  const int64_t dim = config.dim, hidden = config.hidden_dim, vocab = config.vocab_size;
  tokens = 0;  // until every buffer has its new size
  const size_t un = static_cast<size_t>(n);
  OWF_RETURN_IF_ERROR(ids.Allocate(un, "token ids"));
  OWF_RETURN_IF_ERROR(seq_row.Allocate(un, "token cache rows"));
  OWF_RETURN_IF_ERROR(pos.Allocate(un, "token positions"));
  OWF_RETURN_IF_ERROR(x.Allocate(un * dim, "the residual stream"));
  OWF_RETURN_IF_ERROR(xb.Allocate(un * dim, "normed activations"));
  OWF_RETURN_IF_ERROR(q.Allocate(un * q_dim(), "queries"));
  OWF_RETURN_IF_ERROR(k.Allocate(un * kv_dim(), "keys"));
  OWF_RETURN_IF_ERROR(v.Allocate(un * kv_dim(), "values"));
  OWF_RETURN_IF_ERROR(att.Allocate(un * q_dim(), "attention outputs"));
  OWF_RETURN_IF_ERROR(proj.Allocate(un * dim, "projections"));
  OWF_RETURN_IF_ERROR(h1.Allocate(un * hidden, "FFN gate outputs"));
  OWF_RETURN_IF_ERROR(h3.Allocate(un * hidden, "FFN up outputs"));
  OWF_RETURN_IF_ERROR(hb.Allocate(un * hidden, "FFN activations"));
  OWF_RETURN_IF_ERROR(logits.Allocate(un * vocab, "logits"));
  if (rotated_cols > 0)
    OWF_RETURN_IF_ERROR(rotated.Allocate(un * static_cast<size_t>(rotated_cols), "rotated activations"));
  tokens = n;
  return Status::Ok();
}

Status GpuTransformer::Impl::ReserveCache(int64_t rows, int longest) {
  if (longest > max_positions) {
    return InvalidArgument("a sequence of " + std::to_string(longest) +
                           " positions is longer than the attention kernel takes on this GPU (" +
                           std::to_string(max_positions) + ")");
  }
  if (rows > INT_MAX) return InvalidArgument("too many positions in one forward pass: " + std::to_string(rows));
  const size_t per_cache = static_cast<size_t>(config.n_layers) * static_cast<size_t>(rows) * kv_dim();
  OWF_RETURN_IF_ERROR(k_cache.Reserve(per_cache, "the key cache"));
  OWF_RETURN_IF_ERROR(v_cache.Reserve(per_cache, "the value cache"));
  cache_rows = rows;
  if (rope_positions < longest) {
    // Angles position * inv_freq in double, cos / sin rounded to float: the CPU's values.
    const size_t half = inv_freq.size();
    std::vector<float> cos_table(static_cast<size_t>(longest) * half), sin_table(cos_table.size());
    for (int p = 0; p < longest; ++p) {
      for (size_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(p) * inv_freq[i];
        cos_table[p * half + i] = static_cast<float>(std::cos(angle));
        sin_table[p * half + i] = static_cast<float>(std::sin(angle));
      }
    }
    rope_positions = 0;
    OWF_RETURN_IF_ERROR(rope_cos.Upload(cos_table.data(), cos_table.size(), "rope cosines"));
    OWF_RETURN_IF_ERROR(rope_sin.Upload(sin_table.data(), sin_table.size(), "rope sines"));
    rope_positions = longest;
  }
  return Status::Ok();
}

// y (n, w.rows) fp32 = x (n, w.cols) bf16 @ W^T.
Status GpuTransformer::Impl::Product(const Linear& w, const uint16_t* x, int n, float* y) {
  if (w.quantised && n <= options.code_gemm_max_batch && w.cols % 2 == 0) {  // Gemm reads x in pairs
    return w.quantised->Gemm(x, w.cols, n, y, w.rows, nullptr).WithContext("DeviceMatrix::Gemm ('" + w.name + "')");
  }
  const uint16_t* weights = w.dense;
  const uint16_t* unrotated = x;
  bool stored_form = false;  // a rotated matrix's V times rotated activations
  if (weights == nullptr) {
    if (!w.quantised) return Internal("no weights for '" + w.name + "'");
    if (w.quantised->rotated()) {  // W x = V rotate(x): V as stored, the activations rotated
      OWF_RETURN_IF_ERROR(w.quantised->RotateActivations(x, w.cols, n, rotated.get(), w.cols, nullptr)
                              .WithContext("DeviceMatrix::RotateActivations ('" + w.name + "')"));
      x = rotated.get();
      stored_form = true;
    }
    // The matrix as stored: W itself unless it is rotated (DequantiseBf16 then).
    OWF_RETURN_IF_ERROR(w.quantised->DequantiseStoredBf16(dequantised.get(), w.cols, nullptr)
                            .WithContext("DeviceMatrix::DequantiseStoredBf16 ('" + w.name + "')"));
    weights = dequantised.get();
  }
  // Column-major, as cuBLAS sees these row-major buffers: y^T (rows, n) = W^T^T (rows, cols)
  // x^T (cols, n), with W read as the (cols, rows) matrix W^T and transposed.
  const float alpha = 1.0f, beta = 0.0f;
  const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols);
  const cublasStatus_t st =
      cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &alpha, weights, CUDA_R_16BF, cols, x, CUDA_R_16BF,
                   cols, &beta, y, CUDA_R_32F, rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    return CublasError("cublasGemmEx ('" + w.name + "', " + std::to_string(rows) + " x " + std::to_string(cols) +
                           " by " + std::to_string(n) + " tokens)",
                       st);
  }
  if (stored_form) {  // V leaves out the outliers: their corrections, with the unrotated activations
    OWF_RETURN_IF_ERROR(w.quantised->CorrectStoredProduct(unrotated, w.cols, n, y, w.rows, nullptr)
                            .WithContext("DeviceMatrix::CorrectStoredProduct ('" + w.name + "')"));
  }
  return Status::Ok();
}

Status GpuTransformer::Impl::Run(const TokenBatch& batch) {
  const TransformerConfig& c = config;
  const int n = static_cast<int>(batch.ids.size());
  const int64_t dim = c.dim, hidden = c.hidden_dim;
  OWF_RETURN_IF_ERROR(ReserveActivations(n));
  const size_t index_bytes = static_cast<size_t>(n) * sizeof(int32_t);
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpy(ids.get(), batch.ids.data(), index_bytes, cudaMemcpyHostToDevice));
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpy(seq_row.get(), batch.seq_row.data(), index_bytes, cudaMemcpyHostToDevice));
  OWF_CUDA_RETURN_IF_ERROR(cudaMemcpy(pos.get(), batch.pos.data(), index_bytes, cudaMemcpyHostToDevice));
  const kernels::AttentionShape shape{c.n_heads,        c.n_kv_heads, c.head_dim,      c.rope_dim,
                                      c.rope_style == RopeStyle::kInterleaved, batch.longest, c.sliding_window};
  const int64_t layer_cache = cache_rows * kv_dim();  // one layer's share of each cache

  // x (n, dim): the residual stream, starting as the tokens' embedding rows.
  OWF_RETURN_IF_ERROR(CudaCheck(kernels::EmbedTokens(embedding.get(), ids.get(), n, c.dim, x.get(), nullptr),
                                "embedding lookup kernel"));
  for (int l = 0; l < c.n_layers; ++l) {
    const Layer& w = layers[static_cast<size_t>(l)];
    const std::string at = " (layer " + std::to_string(l) + ")";
    float* layer_k_cache = k_cache.get() + l * layer_cache;  // (rows, kv_dim)
    float* layer_v_cache = v_cache.get() + l * layer_cache;  // (rows, kv_dim)

    // ---- Attention block.
    // xb (n, dim) bf16 = RMSNorm(x) * attn_norm.
    OWF_RETURN_IF_ERROR(CudaCheck(
        kernels::RmsNormToBf16(x.get(), w.attn_norm.get(), n, c.dim, c.norm_eps, xb.get(), nullptr), "RMSNorm" + at));
    // q (n, q_dim) = xb @ wq^T; k, v (n, kv_dim) = xb @ wk^T, xb @ wv^T.
    OWF_RETURN_IF_ERROR(Product(w.wq, xb.get(), n, q.get()));
    OWF_RETURN_IF_ERROR(Product(w.wk, xb.get(), n, k.get()));
    OWF_RETURN_IF_ERROR(Product(w.wv, xb.get(), n, v.get()));
    // q, k += biases (Qwen2), rotary embeddings on q (n, n_heads, head_dim) and k (n, n_kv_heads,
    // head_dim) at each token's position; k, v rows stored in this layer's cache.
    OWF_RETURN_IF_ERROR(CudaCheck(
        kernels::BiasRopeStore(shape, n, q.get(), k.get(), v.get(), w.bq.get(), w.bk.get(), w.bv.get(), seq_row.get(),
                               pos.get(), rope_cos.get(), rope_sin.get(), layer_k_cache, layer_v_cache, nullptr),
        "bias / rope / cache kernel" + at));
    // att (n, q_dim) bf16: each query head attends over positions <= its own of its sequence.
    OWF_RETURN_IF_ERROR(CudaCheck(kernels::CausalAttention(shape, n, q.get(), seq_row.get(), pos.get(), layer_k_cache,
                                                           layer_v_cache, att.get(), nullptr),
                                  "attention kernel" + at));
    // proj (n, dim) = att @ wo^T; x += proj.
    OWF_RETURN_IF_ERROR(Product(w.wo, att.get(), n, proj.get()));
    OWF_RETURN_IF_ERROR(CudaCheck(kernels::AddInPlace(x.get(), proj.get(), n * dim, nullptr), "residual add" + at));

    // ---- Feed-forward block (SwiGLU).
    // xb (n, dim) bf16 = RMSNorm(x) * ffn_norm.
    OWF_RETURN_IF_ERROR(CudaCheck(
        kernels::RmsNormToBf16(x.get(), w.ffn_norm.get(), n, c.dim, c.norm_eps, xb.get(), nullptr), "RMSNorm" + at));
    // h1 (n, hidden) = xb @ gate^T; h3 (n, hidden) = xb @ up^T.
    OWF_RETURN_IF_ERROR(Product(w.gate, xb.get(), n, h1.get()));
    OWF_RETURN_IF_ERROR(Product(w.up, xb.get(), n, h3.get()));
    // hb (n, hidden) bf16 = silu(h1) * h3.
    OWF_RETURN_IF_ERROR(
        CudaCheck(kernels::SwiGluToBf16(h1.get(), h3.get(), n * hidden, hb.get(), nullptr), "SwiGLU kernel" + at));
    // proj (n, dim) = hb @ down^T; x += proj.
    OWF_RETURN_IF_ERROR(Product(w.down, hb.get(), n, proj.get()));
    OWF_RETURN_IF_ERROR(CudaCheck(kernels::AddInPlace(x.get(), proj.get(), n * dim, nullptr), "residual add" + at));
  }

  // xb (n, dim) bf16 = RMSNorm(x) * output_norm; logits (n, vocab) = xb @ output^T.
  OWF_RETURN_IF_ERROR(CudaCheck(
      kernels::RmsNormToBf16(x.get(), output_norm.get(), n, c.dim, c.norm_eps, xb.get(), nullptr), "final RMSNorm"));
  return Product(output, xb.get(), n, logits.get());
}

Status GpuTransformer::Impl::CopyLogits(int64_t n, float* host) {
  const size_t bytes = static_cast<size_t>(n) * static_cast<size_t>(config.vocab_size) * sizeof(float);
  return CudaCheck(cudaMemcpy(host, logits.get(), bytes, cudaMemcpyDeviceToHost),
                   "cudaMemcpy of the logits (errors of the forward pass's kernels also appear here)");
}

namespace {

Status CheckTokens(std::span<const int> tokens, int vocab, const std::string& where) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return InvalidArgument(where + "token " + std::to_string(i) + " = " + std::to_string(tokens[i]) +
                             " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<float>> GpuTransformer::ForwardSequence(std::span<const int> tokens) {
  const std::vector<std::vector<int>> one = {std::vector<int>(tokens.begin(), tokens.end())};
  return ForwardBatch(one);
}

Result<std::vector<float>> GpuTransformer::ForwardBatch(std::span<const std::vector<int>> sequences) {
  Impl& m = *impl_;
  const int64_t vocab = m.config.vocab_size;
  int64_t total = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    OWF_RETURN_IF_ERROR(CheckTokens(sequences[s], m.config.vocab_size,
                                    sequences.size() > 1 ? "sequence " + std::to_string(s) + ": " : ""));
    total += static_cast<int64_t>(sequences[s].size());
  }
  m.slots = 0;  // the cache is about to hold other sequences
  std::vector<float> out(static_cast<size_t>(total * vocab));
  const int64_t limit = std::max(1, m.options.max_batch_tokens);
  int64_t row = 0;  // of `out`
  for (size_t begin = 0; begin < sequences.size();) {
    // Sequences [begin, end): at most `limit` tokens, or one sequence; each one's positions take
    // consecutive cache rows.
    TokenBatch batch;
    size_t end = begin;
    for (; end < sequences.size(); ++end) {
      const int64_t len = static_cast<int64_t>(sequences[end].size());
      if (end > begin && static_cast<int64_t>(batch.ids.size()) + len > limit) break;
      if (len > INT_MAX / 2) return InvalidArgument("sequence of " + std::to_string(len) + " tokens is too long");
      const int32_t first_row = static_cast<int32_t>(batch.ids.size());
      for (int64_t p = 0; p < len; ++p) {
        batch.ids.push_back(sequences[end][static_cast<size_t>(p)]);
        batch.seq_row.push_back(first_row);
        batch.pos.push_back(static_cast<int32_t>(p));
      }
      batch.longest = std::max(batch.longest, static_cast<int>(len));
    }
    begin = end;
    const int64_t n = static_cast<int64_t>(batch.ids.size());
    if (n == 0) continue;
    OWF_RETURN_IF_ERROR(m.ReserveCache(n, batch.longest));
    OWF_RETURN_IF_ERROR(m.Run(batch));
    OWF_RETURN_IF_ERROR(m.CopyLogits(n, out.data() + row * vocab));
    row += n;
  }
  return out;
}

Status GpuTransformer::StartDecoding(int slots, int capacity) {
  Impl& m = *impl_;
  m.slots = 0;
  if (slots < 1 || capacity < 1) return InvalidArgument("decoding needs at least one slot and one position");
  OWF_RETURN_IF_ERROR(m.ReserveCache(int64_t{slots} * capacity, capacity));
  m.slots = slots;
  m.capacity = capacity;
  m.decoded = 0;
  return Status::Ok();
}

Result<std::vector<float>> GpuTransformer::DecodeStep(std::span<const int> tokens) {
  Impl& m = *impl_;
  if (m.slots == 0) return InvalidArgument("DecodeStep without StartDecoding (or after ForwardBatch)");
  if (static_cast<int>(tokens.size()) != m.slots) {
    return InvalidArgument("DecodeStep got " + std::to_string(tokens.size()) + " tokens for " +
                           std::to_string(m.slots) + " sequences");
  }
  if (m.decoded >= m.capacity) {
    return InvalidArgument("the sequences are full (" + std::to_string(m.capacity) + " positions)");
  }
  OWF_RETURN_IF_ERROR(CheckTokens(tokens, m.config.vocab_size, ""));
  // Slot s holds positions at cache rows s * capacity + p.
  TokenBatch batch;
  for (int s = 0; s < m.slots; ++s) {
    batch.ids.push_back(tokens[static_cast<size_t>(s)]);
    batch.seq_row.push_back(s * m.capacity);
    batch.pos.push_back(m.decoded);
  }
  batch.longest = m.decoded + 1;
  OWF_RETURN_IF_ERROR(m.Run(batch));
  std::vector<float> out(static_cast<size_t>(m.slots) * static_cast<size_t>(m.config.vocab_size));
  OWF_RETURN_IF_ERROR(m.CopyLogits(m.slots, out.data()));
  ++m.decoded;
  return out;
}

Result<std::unique_ptr<GpuTransformer>> LoadGpuTransformer(const GpuModelFiles& files,
                                                           const GpuTransformerOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::string why;
  if (!Available(&why)) return Unsupported(why.empty() ? "no usable CUDA device" : why);
  auto impl = std::make_unique<GpuTransformer::Impl>();
  impl->config = files.model().config;
  impl->inv_freq = files.model().inv_freq;
  impl->options = options;
  impl->options.code_gemm_max_batch = std::clamp(options.code_gemm_max_batch, 0, 64);
  GpuTransformer::Impl& m = *impl;
  const TransformerConfig& c = m.config;
  if (c.n_heads > 65535) return Unsupported("more than 65535 attention heads");
  OWF_RETURN_IF_ERROR(CudaCheck(kernels::MaxAttentionPositions(c.head_dim, &m.max_positions),
                                "cudaDeviceGetAttribute (shared memory per block)"));
  const cublasStatus_t created = cublasCreate(&m.blas);
  if (created != CUBLAS_STATUS_SUCCESS) return CublasError("cublasCreate", created);

  // Matrices: read (and tiled) on the host in parallel, a window at a time; uploaded in order.
  const int64_t vocab = c.vocab_size, dim = c.dim, hidden = c.hidden_dim;
  const int64_t q_dim = m.q_dim(), kv_dim = m.kv_dim();
  struct Job {
    std::string name;
    int64_t rows, cols;
    Linear* dest;  // null: the embedding
  };
  const TensorNames global = NamesFor(c.naming, -1);
  std::vector<Job> jobs = {{global.embedding, vocab, dim, nullptr}};
  if (!c.tie_embeddings) jobs.push_back({global.output, vocab, dim, &m.output});
  m.layers.resize(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const TensorNames n = NamesFor(c.naming, l);
    Layer& w = m.layers[static_cast<size_t>(l)];
    for (Job j : std::initializer_list<Job>{{n.wq, q_dim, dim, &w.wq},
                                            {n.wk, kv_dim, dim, &w.wk},
                                            {n.wv, kv_dim, dim, &w.wv},
                                            {n.wo, dim, q_dim, &w.wo},
                                            {n.gate, hidden, dim, &w.gate},
                                            {n.up, hidden, dim, &w.up},
                                            {n.down, dim, hidden, &w.down}}) {
      jobs.push_back(std::move(j));
    }
  }
  const size_t window = static_cast<size_t>(std::clamp(ResolveThreads(options.threads), 1, 16));
  for (size_t begin = 0; begin < jobs.size(); begin += window) {
    const size_t count = std::min(window, jobs.size() - begin);
    std::vector<std::optional<Result<HostMatrix>>> host(count);
    ParallelFor(count, options.threads, [&](size_t j) {
      const Job& job = jobs[begin + j];
      host[j].emplace(files.ReadMatrix(job.name, job.rows, job.cols, options.keep_quantised));
    });
    for (size_t j = 0; j < count; ++j) {
      const Job& job = jobs[begin + j];
      Result<HostMatrix>& h = *host[j];
      if (!h.ok()) return h.status().WithContext(files.path());
      OWF_RETURN_IF_ERROR(job.dest == nullptr ? m.UploadEmbedding(job.name, std::move(*h))
                                              : m.UploadLinear(job.name, std::move(*h), *job.dest));
      host[j].reset();
      files.Release(job.name);
    }
  }

  // Vectors, fp32.
  auto upload_vector = [&](const std::string& name, int64_t n, bool optional, DeviceBuffer<float>& dst) -> Status {
    Result<LargeVector<float>> v = files.ReadVector(name, n, optional);
    if (!v.ok()) return v.status().WithContext(files.path());
    OWF_RETURN_IF_ERROR(dst.Upload(v->data(), v->size(), "'" + name + "'"));
    m.stats.weight_bytes += static_cast<int64_t>(dst.bytes());
    return Status::Ok();
  };
  OWF_RETURN_IF_ERROR(upload_vector(global.output_norm, dim, false, m.output_norm));
  for (int l = 0; l < c.n_layers; ++l) {
    const TensorNames n = NamesFor(c.naming, l);
    Layer& w = m.layers[static_cast<size_t>(l)];
    OWF_RETURN_IF_ERROR(upload_vector(n.attn_norm, dim, false, w.attn_norm));
    OWF_RETURN_IF_ERROR(upload_vector(n.ffn_norm, dim, false, w.ffn_norm));
    OWF_RETURN_IF_ERROR(upload_vector(n.bq, q_dim, true, w.bq));
    OWF_RETURN_IF_ERROR(upload_vector(n.bk, kv_dim, true, w.bk));
    OWF_RETURN_IF_ERROR(upload_vector(n.bv, kv_dim, true, w.bv));
  }

  // The buffer quantised matrices are dequantised into for products of many tokens.
  int64_t largest = 0;
  auto consider = [&](const Linear& w) {
    if (w.quantised && w.dense == nullptr) largest = std::max(largest, w.rows * w.cols);
    if (w.quantised && w.quantised->rotated()) m.rotated_cols = std::max(m.rotated_cols, w.cols);
  };
  consider(m.output);
  for (const Layer& w : m.layers) {
    for (const Linear* p : {&w.wq, &w.wk, &w.wv, &w.wo, &w.gate, &w.up, &w.down}) consider(*p);
  }
  OWF_RETURN_IF_ERROR(m.dequantised.Allocate(static_cast<size_t>(largest), "the dequantisation buffer"));
  OWF_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  m.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::unique_ptr<GpuTransformer>(new GpuTransformer(std::move(impl)));
}

Result<std::unique_ptr<GpuTransformer>> LoadGpuTransformer(const std::string& path,
                                                           const GpuTransformerOptions& options) {
  OWF_ASSIGN_OR_RETURN(const std::unique_ptr<GpuModelFiles> files, GpuModelFiles::Open(path));
  return LoadGpuTransformer(*files, options);
}

Result<std::pair<int64_t, int64_t>> DeviceMemory() {
  size_t free_bytes = 0, total_bytes = 0;
  OWF_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
  return std::pair<int64_t, int64_t>(static_cast<int64_t>(free_bytes), static_cast<int64_t>(total_bytes));
}

int64_t EstimateScratchBytes(const TransformerConfig& c, int64_t tokens, int64_t cache_rows,
                             int64_t largest_quantised_matrix) {
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim, kv_dim = int64_t{c.n_kv_heads} * c.head_dim;
  const int64_t per_token = 3 * 4                                   // ids, cache rows, positions
                            + int64_t{c.dim} * (4 + 2 + 4)          // x, xb, proj
                            + q_dim * (4 + 2) + kv_dim * (4 + 4)    // q, att, k, v
                            + int64_t{c.hidden_dim} * (4 + 4 + 2)   // h1, h3, hb
                            + int64_t{c.vocab_size} * 4;            // logits
  return tokens * per_token + int64_t{c.n_layers} * cache_rows * kv_dim * 8 + 2 * largest_quantised_matrix +
         cache_rows * c.rope_dim * 4;
}

}  // namespace owf::cuda
