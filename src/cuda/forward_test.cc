// The GPU transformer against the CPU one (owf/model/transformer.h) on the real stories260K
// model, as given (F32 GGUF) and quantised to owf's packed container; its host-side loading
// (skeletons, tiling, fallbacks) without a GPU. GPU tests skip without a GPU, model tests without
// ../shared (the directory can be given as $OWF_SHARED_DIR, so the binary runs anywhere).
//
// Tolerance of GPU vs CPU logits. The GPU rounds weights and the inputs of every matrix product
// to bf16 (fp32 accumulation); the CPU computes in fp32 throughout. Emulating exactly that
// rounding on the CPU moves stories260K's logits (rms 10) by at most 0.22 over a 128-token
// sequence, with KL(CPU || emulated) 1.1e-4 on average and 2.4e-3 at most, and the same top
// token at 126-128 of 128 positions (crd4 model: at most 0.16, 2.2e-4 / 8e-4). The tests allow
// 0.5, 5e-4 / 1e-2 and 95%; summation order on the GPU adds about 1e-6.
#include "owf/cuda/forward.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "owf/core/numeric.h"
#include "owf/cuda/evaluate.h"
#include "owf/cuda/kernels.h"
#include "owf/eval/evaluate.h"
#include "owf/io/packed.h"
#include "owf/model/tokenizer.h"
#include "owf/model/transformer.h"
#include "owf/quantize/driver.h"

namespace owf::cuda {
namespace {

namespace fs = std::filesystem;

std::string SharedDir() {
  const char* env = std::getenv("OWF_SHARED_DIR");
  return env != nullptr && *env != '\0' ? env : OWF_SHARED_DIR;
}
std::string ModelPath() { return SharedDir() + "/models/stories260K.gguf"; }

#define SKIP_WITHOUT_MODEL() \
  if (!fs::exists(ModelPath())) GTEST_SKIP() << "no model at " << ModelPath() << " (set OWF_SHARED_DIR)"

#define SKIP_WITHOUT_GPU()                                   \
  do {                                                       \
    std::string why;                                         \
    if (!Available(&why)) GTEST_SKIP() << "no GPU: " << why; \
  } while (0)

// A temporary directory, with stories260K quantised into it on demand.
class Dir {
 public:
  Dir() : path_(fs::temp_directory_path() / ("owf_forward_test_" + std::to_string(getpid()))) {
    fs::create_directories(path_);
  }
  ~Dir() { fs::remove_all(path_); }
  std::string Quantised(const std::string& spec, const std::string& name, Emit emit = Emit::kPacked) {
    QuantiseModelOptions o;
    o.output = (path_ / name).string();
    o.emit = emit;
    auto rules = RulesFromFormat(spec);
    EXPECT_TRUE(rules.ok()) << rules.status().ToString();
    auto r = QuantiseModel(ModelPath(), *rules, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return o.output;
  }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
};

std::unique_ptr<Transformer> CpuModel(const std::string& path, std::unique_ptr<ModelReader>* keep) {
  auto reader = OpenModel(path);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return nullptr;
  auto t = LoadTransformer(**reader, 0);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  *keep = std::move(*reader);
  return t.ok() ? std::move(*t) : nullptr;
}

std::unique_ptr<GpuTransformer> GpuModel(const std::string& path, GpuTransformerOptions options = {}) {
  auto t = LoadGpuTransformer(path, options);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

// Tokens of a TinyStories text (with BOS), cut or repeated to `n`.
std::vector<int> StoryTokens(int n) {
  auto reader = OpenModel(ModelPath());
  auto tok = LoadTokenizer(**reader);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  const std::vector<int> text = (*tok)->Encode(
      "Once upon a time, there was a big dog named Max. Max liked to run and jump in the sun. One day he "
      "saw a little bird in a tree. The bird was sad because it could not fly. Max wanted to help.",
      /*add_bos=*/true);
  std::vector<int> ids;
  while (static_cast<int>(ids.size()) < n) ids.push_back(text[ids.size() % text.size()]);
  return ids;
}

struct Agreement {
  double max_abs = 0, kl_mean = 0, kl_max = 0, same_top1 = 0;
};

// CPU logits (T rows) against GPU logits ([T][vocab] flat).
Agreement Compare(const std::vector<std::vector<float>>& cpu, const std::vector<float>& gpu) {
  Agreement a;
  const size_t t = cpu.size(), v = cpu.empty() ? 0 : cpu[0].size();
  EXPECT_EQ(gpu.size(), t * v);
  if (gpu.size() != t * v || t == 0) return a;
  for (size_t p = 0; p < t; ++p) {
    const float* g = gpu.data() + p * v;
    const std::vector<float>& c = cpu[p];
    size_t top_c = 0, top_g = 0;
    for (size_t j = 0; j < v; ++j) {
      a.max_abs = std::max(a.max_abs, static_cast<double>(std::abs(g[j] - c[j])));
      if (c[j] > c[top_c]) top_c = j;
      if (g[j] > g[top_g]) top_g = j;
    }
    a.same_top1 += top_c == top_g;
    double zc = 0, zg = 0;
    for (size_t j = 0; j < v; ++j) {
      zc += std::exp(static_cast<double>(c[j]) - c[top_c]);
      zg += std::exp(static_cast<double>(g[j]) - g[top_g]);
    }
    double kl = 0;
    for (size_t j = 0; j < v; ++j) {
      const double lp = c[j] - c[top_c] - std::log(zc), lq = g[j] - g[top_g] - std::log(zg);
      kl += std::exp(lp) * (lp - lq);
    }
    a.kl_mean += kl / static_cast<double>(t);
    a.kl_max = std::max(a.kl_max, kl);
  }
  a.same_top1 /= static_cast<double>(t);
  return a;
}

void ExpectClose(const Agreement& a) {
  EXPECT_LE(a.max_abs, 0.5);
  EXPECT_LE(a.kl_mean, 5e-4);
  EXPECT_LE(a.kl_max, 1e-2);
  EXPECT_GE(a.same_top1, 0.95);
}

double MaxDiff(const float* a, const float* b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; ++i) d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
  return d;
}

// ---- Host side (no GPU needed).

TEST(GpuModelFiles, PackedFileGivesTheSourceConfigTokenizerAndShapes) {
  SKIP_WITHOUT_MODEL();
  Dir dir;
  const std::string packed = dir.Quantised("crd4(t)@64:absmax", "q4.safetensors");
  auto plain = GpuModelFiles::Open(ModelPath());
  auto q = GpuModelFiles::Open(packed);
  ASSERT_TRUE(plain.ok() && q.ok()) << plain.status().ToString() << q.status().ToString();
  EXPECT_FALSE((*plain)->packed());
  EXPECT_TRUE((*q)->packed());
  const TransformerConfig &a = (*plain)->model().config, &b = (*q)->model().config;
  EXPECT_EQ(a.architecture, b.architecture);
  EXPECT_EQ(b.n_layers, 5);
  EXPECT_EQ(b.dim, 64);
  EXPECT_EQ(b.vocab_size, 512);
  EXPECT_EQ(b.n_kv_heads, 4);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ((*plain)->model().inv_freq, (*q)->model().inv_freq);
  // The skeleton lists the source's tensors with their shapes.
  auto source = OpenModel(ModelPath());
  ASSERT_TRUE(source.ok());
  ASSERT_EQ((*q)->reader().tensors().size(), (*source)->tensors().size());
  for (size_t i = 0; i < (*source)->tensors().size(); ++i) {
    EXPECT_EQ((*q)->reader().tensors()[i].name, (*source)->tensors()[i].name);
    EXPECT_EQ((*q)->reader().tensors()[i].shape, (*source)->tensors()[i].shape);
  }
  auto tok = LoadTokenizer((*q)->reader());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("Once upon a time", true), StoryTokens(5));
}

// The matrix `name` of a packed file, read for the GPU kept quantised and dequantised, against the
// CPU's dequantisation of it: tiled values exactly, bf16 ones as its bf16 rounding.
void ExpectDequantisedValues(const GpuModelFiles& files, const ModelReader& file, const nlohmann::json& desc,
                             const std::string& name, bool tiles) {
  const TensorInfo* info = files.reader().Find(name);
  ASSERT_NE(info, nullptr);
  const int64_t rows = info->shape[0], cols = info->shape[1];
  // The CPU's dequantisation is the truth.
  auto truth = ReadPackedTensor(file, name, desc);
  ASSERT_TRUE(truth.ok()) << truth.status().ToString();
  auto kept = files.ReadMatrix(name, rows, cols, /*keep_quantised=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  ASSERT_EQ(kept->tiled.has_value(), tiles) << kept->fallback;
  EXPECT_EQ(kept->fallback.empty(), tiles);
  auto dense = files.ReadMatrix(name, rows, cols, /*keep_quantised=*/false);
  ASSERT_TRUE(dense.ok()) << dense.status().ToString();
  ASSERT_FALSE(dense->tiled.has_value());
  int64_t mismatches = 0;
  for (const HostMatrix* m : {&*kept, &*dense}) {
    const auto* bf16 = static_cast<const uint16_t*>(m->dense_bytes());
    EXPECT_EQ(bf16 == nullptr, m->tiled.has_value());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const float want = truth->data[static_cast<size_t>(r * cols + c)];
        mismatches += m->tiled ? TiledValue(*m->tiled, r, c) != want : bf16[r * cols + c] != Bf16FromFloat(want);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Tiled (or, where the GPU layout declines, CPU-dequantised) matrices hold exactly the values the
// CPU dequantiser gives: block scales, two-level scales, outliers; optmin falls back.
TEST(GpuModelFiles, QuantisedMatricesTileToTheDequantisedValues) {
  SKIP_WITHOUT_MODEL();
  Dir dir;
  for (const auto& [spec, tiles] : std::vector<std::pair<std::string, bool>>{
           {"crd4(t)@64:absmax+outliers(0.001)", true},
           {"int4@64:opt:fp16/32:u5", true},
           {"int4@64:optmin:fp16/16:u4:u4", false}}) {
    SCOPED_TRACE(spec);
    const std::string packed = dir.Quantised(spec, "q" + std::to_string(spec.size()) + ".safetensors");
    auto files = GpuModelFiles::Open(packed);
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    auto file = OpenModel(packed);
    auto meta = ReadPackedMetadata(**file);
    ASSERT_TRUE(meta.ok());
    for (const std::string name : {"blk.0.attn_q.weight", "blk.2.ffn_down.weight", "token_embd.weight"}) {
      SCOPED_TRACE(name);
      ExpectDequantisedValues(**files, **file, (*meta)["tensors"][name], name, tiles);
    }
  }
}


TEST(GpuModelFiles, PlainMatricesAreBf16AndVectorsFp32) {
  SKIP_WITHOUT_MODEL();
  auto files = GpuModelFiles::Open(ModelPath());
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  auto reader = OpenModel(ModelPath());
  auto w = (*reader)->Read(*(*reader)->Find("blk.1.ffn_gate.weight"));
  ASSERT_TRUE(w.ok());
  auto m = (*files)->ReadMatrix("blk.1.ffn_gate.weight", w->shape[0], w->shape[1], true);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_FALSE(m->tiled.has_value());
  EXPECT_TRUE(m->fallback.empty());
  const auto* bf16 = static_cast<const uint16_t*>(m->dense_bytes());
  for (size_t i = 0; i < w->data.size(); ++i) ASSERT_EQ(bf16[i], Bf16FromFloat(w->data[i])) << i;
  auto norm = (*files)->ReadVector("blk.1.ffn_norm.weight", 64);
  auto want = (*reader)->Read(*(*reader)->Find("blk.1.ffn_norm.weight"));
  ASSERT_TRUE(norm.ok() && want.ok());
  EXPECT_TRUE(std::equal(norm->begin(), norm->end(), want->data.begin()));
}

TEST(GpuModelFiles, RotatedTensorsStayQuantisedAndDequantiseLikeTheCpu) {
  SKIP_WITHOUT_MODEL();
  Dir dir;
  // 1% outliers: they replace values of W, so the GPU writes them over the un-rotated rows.
  const std::string packed = dir.Quantised("crd4(t)@64:absmax+outliers(0.01)+rotate(hadamard,7)", "rot.safetensors");
  auto files = GpuModelFiles::Open(packed);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  auto file = OpenModel(packed);
  auto meta = ReadPackedMetadata(**file);
  // attn_output is 64 x 64; the output head (512 x 64) and w2 (64 x 172: pieces of 128, 32, 8 and 4 columns).
  for (const auto& [name, rows, cols] : {std::tuple<std::string, int64_t, int64_t>{"blk.0.attn_output.weight", 64, 64},
                                         {"blk.2.ffn_down.weight", 64, 172}}) {
    auto m = (*files)->ReadMatrix(name, rows, cols, true);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ASSERT_TRUE(m->tiled.has_value()) << name << ": " << m->fallback;
    EXPECT_EQ(m->tiled->rotation_seed, std::optional<uint64_t>(7));
    EXPECT_TRUE(m->fallback.empty()) << m->fallback;
    if (!Available()) continue;
    // DequantiseBf16 un-rotates on the GPU: the same bits as the CPU's dequantised tensor, rounded.
    auto truth = ReadPackedTensor(**file, name, (*meta)["tensors"][name]);
    ASSERT_TRUE(truth.ok());
    auto d = DeviceMatrix::Upload(*m->tiled);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    uint16_t* out = nullptr;
    ASSERT_EQ(cudaMalloc(&out, truth->data.size() * 2), cudaSuccess);
    ASSERT_TRUE(d->DequantiseBf16(out, cols).ok());
    std::vector<uint16_t> got(truth->data.size());
    ASSERT_EQ(cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(out);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], Bf16FromFloat(truth->data[i])) << name << " " << i;
  }
}

TEST(GpuModelFiles, ErrorsNameTheProblemAndTheSkeletonIsRemoved) {
  SKIP_WITHOUT_MODEL();
  Dir dir;
  EXPECT_FALSE(GpuModelFiles::Open((dir.path() / "absent.gguf").string()).ok());
  const std::string packed = dir.Quantised("crd4(t)@64:absmax", "q4.safetensors");
  const std::string prefix = "owf-gpu-" + std::to_string(getpid()) + "-";
  auto skeletons = [&] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path()))
      n += e.path().filename().string().rfind(prefix, 0) == 0;
    return n;
  };
  {
    auto files = GpuModelFiles::Open(packed);
    ASSERT_TRUE(files.ok()) << files.status().ToString();
    EXPECT_EQ(skeletons(), 1);
    auto wrong = (*files)->ReadMatrix("blk.0.attn_q.weight", 64, 65, true);
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.status().message().find("has shape (64, 64), expected (64, 65)"), std::string::npos)
        << wrong.status().message();
    EXPECT_FALSE((*files)->ReadMatrix("blk.9.attn_q.weight", 64, 64, true).ok());
    EXPECT_FALSE((*files)->ReadVector("blk.0.attn_norm.weight", 63).ok());
    EXPECT_TRUE((*files)->ReadVector("blk.0.attn_q.bias", 64, /*optional=*/true)->empty());
    EXPECT_GT((*files)->EstimateWeightBytes(), 0);
  }
  EXPECT_EQ(skeletons(), 0);
}

TEST(GpuEval, WithoutAGpuTheErrorSaysSo) {
  std::string why;
  if (Available(&why)) GTEST_SKIP() << "a GPU is present";
  SKIP_WITHOUT_MODEL();
  EvalOptions o;
  o.device = "cuda";
  auto r = EvaluateOnGpu(ModelPath(), ModelPath(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(r.status().message(), "--device cuda: " + why);
  EXPECT_FALSE(LoadGpuTransformer(ModelPath()).ok());
}

// ---- On the GPU.

TEST(GpuTransformer, LogitsMatchTheCpuTransformer) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  std::unique_ptr<ModelReader> keep;
  auto cpu = CpuModel(ModelPath(), &keep);
  auto gpu = GpuModel(ModelPath());
  ASSERT_TRUE(cpu && gpu);
  EXPECT_EQ(gpu->config().vocab_size, 512);
  EXPECT_EQ(gpu->load_stats().dense_matrices, 1 + 1 + 5 * 7);
  const std::vector<int> tokens = StoryTokens(128);
  auto want = cpu->ForwardSequence(tokens);
  auto got = gpu->ForwardSequence(tokens);
  ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
  const Agreement a = Compare(*want, *got);
  ExpectClose(a);
  std::printf("bf16 model: max |dlogit| %.4f, KL mean %.2e max %.2e, same top-1 %.3f\n", a.max_abs, a.kl_mean,
              a.kl_max, a.same_top1);
}

TEST(GpuTransformer, QuantisedLogitsMatchTheCpuOnTheDequantisedModel) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  Dir dir;
  const std::string packed = dir.Quantised("crd4(t)@64:absmax+outliers(0.001)", "q4.safetensors");
  const std::string fake = (dir.path() / "q4_fake.gguf").string();
  ASSERT_TRUE(DequantiseModel(packed, fake).ok());
  std::unique_ptr<ModelReader> keep;
  auto cpu = CpuModel(fake, &keep);
  ASSERT_TRUE(cpu);
  // 20 tokens run on the codes (DeviceMatrix::Gemm), 128 through DequantiseBf16 + cuBLAS.
  for (const int n : {20, 128}) {
    SCOPED_TRACE(n);
    auto gpu = GpuModel(packed);
    ASSERT_TRUE(gpu);
    EXPECT_EQ(gpu->load_stats().quantised_matrices, 1 + 1 + 5 * 7);
    EXPECT_TRUE(gpu->load_stats().fallbacks.empty());
    const std::vector<int> tokens = StoryTokens(n);
    auto want = cpu->ForwardSequence(tokens);
    auto got = gpu->ForwardSequence(tokens);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    const Agreement a = Compare(*want, *got);
    ExpectClose(a);
    std::printf("crd4 model, %d tokens: max |dlogit| %.4f, KL mean %.2e max %.2e, same top-1 %.3f\n", n, a.max_abs,
                a.kl_mean, a.kl_max, a.same_top1);
  }
  // A rotated model (with outliers) runs on the kernels: each product rotates its activations
  // first (Gemm), or, with every product dequantised (code_gemm_max_batch 0), multiplies the
  // stored rotated matrices by rotated activations; both add the outliers' corrections.
  const std::string rot = dir.Quantised("int4@64:absmax+outliers(0.01)+rotate(hadamard)", "rot.safetensors");
  const std::string rot_fake = (dir.path() / "rot_fake.gguf").string();
  ASSERT_TRUE(DequantiseModel(rot, rot_fake).ok());
  std::unique_ptr<ModelReader> keep_rot;
  auto cpu_rot = CpuModel(rot_fake, &keep_rot);
  auto gpu_rot = GpuModel(rot);
  ASSERT_TRUE(cpu_rot && gpu_rot);
  EXPECT_EQ(gpu_rot->load_stats().quantised_matrices, 1 + 1 + 5 * 7);
  EXPECT_TRUE(gpu_rot->load_stats().fallbacks.empty());
  const std::vector<int> tokens = StoryTokens(64);
  auto want = cpu_rot->ForwardSequence(tokens);
  ASSERT_TRUE(want.ok());
  ExpectClose(Compare(*want, *gpu_rot->ForwardSequence(tokens)));
  GpuTransformerOptions dequantising;
  dequantising.code_gemm_max_batch = 0;
  auto gpu_rot_dense = GpuModel(rot, dequantising);
  ASSERT_TRUE(gpu_rot_dense);
  auto got = gpu_rot_dense->ForwardSequence(tokens);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectClose(Compare(*want, *got));
}

TEST(GpuTransformer, BatchesAndDecodingAgreeWithSingleSequences) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  GpuTransformerOptions o;
  o.max_batch_tokens = 100;  // the three sequences below run as two groups
  auto gpu = GpuModel(ModelPath(), o);
  ASSERT_TRUE(gpu);
  const std::vector<int> all = StoryTokens(70);
  const std::vector<std::vector<int>> seqs = {std::vector<int>(all.begin(), all.begin() + 30),
                                              std::vector<int>(all.begin() + 5, all.begin() + 70),
                                              std::vector<int>(all.begin(), all.begin() + 64)};
  auto batch = gpu->ForwardBatch(seqs);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  size_t row = 0;
  for (const auto& s : seqs) {
    auto one = gpu->ForwardSequence(s);
    ASSERT_TRUE(one.ok());
    // Same arithmetic in another batch shape: cuBLAS may sum in another order, which can move an
    // activation across a bf16 rounding boundary; logits (rms 10) stay within 0.02. A wrong cache
    // row or position would move them by whole units.
    EXPECT_LE(MaxDiff(batch->data() + row * 512, one->data(), one->size()), 0.02);
    row += s.size();
  }
  // Decoding three copies of seqs[2] one token at a time gives its prefill logits.
  auto prefill = gpu->ForwardSequence(seqs[2]);
  ASSERT_TRUE(prefill.ok());
  ASSERT_TRUE(gpu->StartDecoding(3, 64).ok());
  for (int p = 0; p < 64; ++p) {
    const int t = seqs[2][static_cast<size_t>(p)];
    auto step = gpu->DecodeStep(std::vector<int>{t, t, t});
    ASSERT_TRUE(step.ok()) << step.status().ToString();
    for (int s = 0; s < 3; ++s) {
      ASSERT_LE(MaxDiff(step->data() + s * 512, prefill->data() + p * 512, 512), 0.02) << p;
    }
  }
  EXPECT_EQ(gpu->decoded_positions(), 64);
  EXPECT_FALSE(gpu->DecodeStep(std::vector<int>{1, 1, 1}).ok());  // full
}

TEST(GpuTransformer, GreedyStoryFromBos) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  auto gpu = GpuModel(ModelPath());
  auto reader = OpenModel(ModelPath());
  auto tok = LoadTokenizer(**reader);
  ASSERT_TRUE(gpu && tok.ok());
  ASSERT_TRUE(gpu->StartDecoding(1, 64).ok());
  std::vector<int> generated;
  int token = (*tok)->bos_id();
  for (int pos = 0; pos < 30; ++pos) {
    auto logits = gpu->DecodeStep(std::vector<int>{token});
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
    token = static_cast<int>(std::max_element(logits->begin(), logits->end()) - logits->begin());
    generated.push_back(token);
  }
  const std::string text = (*tok)->Decode(generated);
  EXPECT_EQ(text.rfind("Once upon a time, there was a little girl named Lily. She loved to play outside in the park", 0),
            0u)
      << text;
}

TEST(GpuTransformer, RejectsBadTokensAndMisuse) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  auto gpu = GpuModel(ModelPath());
  ASSERT_TRUE(gpu);
  auto bad = gpu->ForwardSequence(std::vector<int>{1, 512});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token 1 = 512 is outside the vocabulary"), std::string::npos);
  EXPECT_FALSE(gpu->ForwardSequence(std::vector<int>{1, -1}).ok());
  EXPECT_FALSE(gpu->DecodeStep(std::vector<int>{1}).ok());  // not started
  ASSERT_TRUE(gpu->StartDecoding(2, 8).ok());
  EXPECT_FALSE(gpu->DecodeStep(std::vector<int>{1}).ok());  // one token for two sequences
  EXPECT_FALSE(gpu->StartDecoding(0, 8).ok());
  auto empty = gpu->ForwardSequence(std::vector<int>{});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(GpuEval, SameReportAsTheCpuOnTheSameTokens) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  Dir dir;
  const std::string packed = dir.Quantised("crd3(t)@64:absmax", "q3.safetensors");
  // Sequences sampled by the CPU, evaluated as given by both.
  std::unique_ptr<ModelReader> keep;
  auto cpu = CpuModel(ModelPath(), &keep);
  ASSERT_TRUE(cpu);
  const auto seqs = SampleSequences(*cpu, 1, 4, 128, 3);
  {
    std::ofstream f(dir.path() / "t.json");
    f << nlohmann::json(seqs).dump();
  }
  EvalOptions o;
  o.tokens_file = (dir.path() / "t.json").string();
  auto want = Evaluate(ModelPath(), packed, o);
  o.device = "cuda";
  auto got = EvaluateOnGpu(ModelPath(), packed, o);
  ASSERT_TRUE(want.ok() && got.ok()) << want.status().ToString() << got.status().ToString();
  EXPECT_EQ(got->report.positions, 4 * 128);
  EXPECT_EQ(got->report.targets, want->report.targets);
  EXPECT_NEAR(got->report.kl_full.mean, want->report.kl_full.mean, 0.05 * want->report.kl_full.mean + 1e-3);
  EXPECT_NEAR(got->report.kl_top128.mean, want->report.kl_top128.mean, 0.05 * want->report.kl_top128.mean + 1e-3);
  EXPECT_NEAR(got->report.ref_perplexity, want->report.ref_perplexity, 0.02 * want->report.ref_perplexity);
  EXPECT_NEAR(got->report.cand_perplexity, want->report.cand_perplexity, 0.02 * want->report.cand_perplexity);
  EXPECT_NEAR(got->report.same_top1_rate, want->report.same_top1_rate, 0.05);
  EXPECT_FALSE(got->phases.empty());
  // A model against itself: identical logits on the GPU, zero divergence.
  auto self = EvaluateOnGpu(ModelPath(), ModelPath(), o);
  ASSERT_TRUE(self.ok()) << self.status().ToString();
  EXPECT_NEAR(self->report.kl_full.mean, 0, 1e-9);
  EXPECT_DOUBLE_EQ(self->report.same_top1_rate, 1.0);
}

TEST(GpuEval, GpuSamplingIsDeterministicAndLikelyUnderTheCpuModel) {
  SKIP_WITHOUT_MODEL();
  SKIP_WITHOUT_GPU();
  auto gpu = GpuModel(ModelPath());
  std::unique_ptr<ModelReader> keep;
  auto cpu = CpuModel(ModelPath(), &keep);
  ASSERT_TRUE(gpu && cpu);
  auto a = SampleSequencesOnGpu(*gpu, 1, 3, 96, 5);
  auto b = SampleSequencesOnGpu(*gpu, 1, 3, 96, 5);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString();
  EXPECT_EQ(*a, *b);
  ASSERT_EQ(a->size(), 3u);
  // Sampled at temperature 1 from (nearly) the CPU model: its perplexity under the CPU model is low,
  // and the first tokens after BOS are the CPU sampler's (same draws, nearly the same logits).
  const auto cpu_seqs = SampleSequences(*cpu, 1, 3, 96, 5);
  double nll = 0;
  int count = 0, same_start = 0;
  for (size_t s = 0; s < a->size(); ++s) {
    const auto& seq = (*a)[s];
    ASSERT_EQ(seq.size(), 96u);
    EXPECT_EQ(seq[0], 1);
    same_start += seq[1] == cpu_seqs[s][1];
    auto logits = cpu->ForwardSequence(seq);
    ASSERT_TRUE(logits.ok());
    for (size_t i = 0; i + 1 < seq.size(); ++i) {
      const auto& l = (*logits)[i];
      const double mx = *std::max_element(l.begin(), l.end());
      double z = 0;
      for (float v : l) z += std::exp(v - mx);
      nll += -(l[static_cast<size_t>(seq[i + 1])] - mx - std::log(z));
      ++count;
    }
  }
  EXPECT_LT(std::exp(nll / count), 20.0);
  EXPECT_GE(same_start, 2);
}

}  // namespace
}  // namespace owf::cuda
