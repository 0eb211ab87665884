// owf imatrix on stories260K: one entry per linear weight of the right length, positive; the
// first layer's attention input, computed here directly as RMSNorm(embedding row) * attn_norm,
// gives the same mean squares; the same result for any thread count.
#include "owf/eval/imatrix.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "owf/io/model.h"
#include "owf/model/config.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";

// Two fixed token sequences, written as an owf eval --tokens file.
std::vector<std::vector<int>> WriteTokens(const std::string& path) {
  std::vector<std::vector<int>> seqs = {{1, 403, 407, 261, 378, 429, 270, 312, 491, 46, 274},
                                        {1, 20, 33, 500, 7, 7, 7, 280, 511, 0, 3, 99, 150}};
  std::ofstream out(path);
  out << nlohmann::json(seqs).dump();
  return seqs;
}

TEST(Imatrix, OneEntryPerLinearWeightMatchingADirectComputation) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  const std::string tokens = (fs::temp_directory_path() / ("owf_imatrix_tokens_" + std::to_string(getpid()) + ".json")).string();
  const auto seqs = WriteTokens(tokens);
  EvalOptions o;
  o.tokens_file = tokens;
  o.threads = 1;
  auto m = CollectImatrix(kModel, o);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  o.threads = 2;
  auto m2 = CollectImatrix(kModel, o);
  fs::remove(tokens);
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(m->columns, m2->columns);  // bit-identical for any thread count
  EXPECT_EQ(m->tokens, 24);
  EXPECT_EQ(m->sequences, 2);

  auto reader = OpenModel(kModel);
  ASSERT_TRUE(reader.ok());
  auto config = ReadTransformerConfig(**reader);
  ASSERT_TRUE(config.ok());
  // Every linear weight, named as in the file, with its input width; no embedding (untied).
  std::set<std::string> expected = {"output.weight"};
  for (int l = 0; l < config->n_layers; ++l) {
    const TensorNames n = NamesFor(config->naming, l);
    for (const std::string& w : {n.wq, n.wk, n.wv, n.wo, n.gate, n.up, n.down}) expected.insert(w);
  }
  std::set<std::string> got;
  for (const auto& [name, col] : m->columns) {
    got.insert(name);
    const TensorInfo* t = (*reader)->Find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(static_cast<int64_t>(col.size()), t->shape.back()) << name;
    for (float v : col) EXPECT_GT(v, 0.0f) << name;
  }
  EXPECT_EQ(got, expected);

  // Layer 0's q/k/v input depends on the token only: RMSNorm(embedding row) * attn_norm.
  auto emb = (*reader)->Read(*(*reader)->Find("token_embd.weight"));
  auto norm = (*reader)->Read(*(*reader)->Find("blk.0.attn_norm.weight"));
  ASSERT_TRUE(emb.ok() && norm.ok());
  const int dim = config->dim;
  std::vector<double> sq(dim, 0.0);
  int64_t count = 0;
  for (const auto& seq : seqs) {
    for (int tok : seq) {
      const float* x = emb->data.data() + static_cast<size_t>(tok) * dim;
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += static_cast<double>(x[i]) * x[i];
      const double inv = 1.0 / std::sqrt(ss / dim + config->norm_eps);
      for (int i = 0; i < dim; ++i) {
        const double y = x[i] * inv * norm->data[i];
        sq[i] += y * y;
      }
      ++count;
    }
  }
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}) {
    const std::vector<float>& col = m->columns[name];
    ASSERT_EQ(static_cast<int>(col.size()), dim);
    for (int i = 0; i < dim; ++i) EXPECT_NEAR(col[i], sq[i] / count, 1e-5 * (sq[i] / count)) << name << " column " << i;
  }
}

TEST(Imatrix, ErrorsNameTheInput) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  EvalOptions o;
  o.tokens_file = "/nonexistent/tokens.json";
  auto m = CollectImatrix(kModel, o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/tokens.json"), std::string::npos) << m.status().message();
  auto bad = CollectImatrix("/nonexistent/model.gguf", EvalOptions{});
  ASSERT_FALSE(bad.ok());
}

}  // namespace
}  // namespace owf
