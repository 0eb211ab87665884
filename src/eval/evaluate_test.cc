// owf eval on the real stories260K model: a model against itself, and quantised copies whose KL
// must fall as bits rise.
#include "owf/eval/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "owf/quantize/driver.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";

class Eval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
    dir_ = fs::temp_directory_path() / ("owf_eval_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Quantised(const std::string& spec, const std::string& name) {
    QuantiseModelOptions o;
    o.output = (dir_ / name).string();
    EXPECT_TRUE(QuantiseModel(kModel, *RulesFromFormat(spec), o).ok());
    return o.output;
  }
  fs::path dir_;
};

TEST_F(Eval, ModelAgainstItselfHasZeroDivergence) {
  EvalOptions o;
  o.generate = 2;
  o.context = 64;
  auto r = Evaluate(kModel, kModel, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->report.positions, 128);
  EXPECT_NEAR(r->report.kl_full.mean, 0, 1e-9);
  EXPECT_DOUBLE_EQ(r->report.same_top1_rate, 1.0);
  EXPECT_DOUBLE_EQ(r->report.ref_perplexity, r->report.cand_perplexity);
  EXPECT_GT(r->report.ref_perplexity, 1.0);
  EXPECT_LT(r->report.ref_perplexity, 20.0);  // sampled from the model itself: low perplexity
}

TEST_F(Eval, DivergenceFallsAsBitsRise) {
  const std::string q3 = Quantised("crd3(t)@64:absmax+search", "q3.safetensors");
  const std::string q5 = Quantised("crd5(t)@64:absmax+search", "q5.safetensors");
  EvalOptions o;
  o.generate = 4;
  o.context = 128;
  auto r3 = Evaluate(kModel, q3, o), r5 = Evaluate(kModel, q5, o);
  ASSERT_TRUE(r3.ok() && r5.ok()) << r3.status().message() << r5.status().message();
  EXPECT_GT(r3->report.kl_full.mean, 2 * r5->report.kl_full.mean);
  EXPECT_GT(r5->report.kl_full.mean, 0);
  EXPECT_GT(r5->report.same_top1_rate, r3->report.same_top1_rate);
  // The paper's top-128 + tail estimate is close to the full KL on a 512-token vocabulary.
  EXPECT_NEAR(r5->report.kl_top128.mean, r5->report.kl_full.mean, 0.05 * r5->report.kl_full.mean);
}

TEST_F(Eval, TokensFileIsEvaluatedAsGiven) {
  std::ofstream(dir_ / "t.json") << "[[1, 403, 407, 261, 378], [1, 403]]";
  EvalOptions o;
  o.tokens_file = (dir_ / "t.json").string();
  auto r = Evaluate(kModel, kModel, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->report.positions, 7);
  EXPECT_EQ(r->report.targets, 5);
  std::ofstream(dir_ / "bad.json") << "[[1, 99999]]";
  o.tokens_file = (dir_ / "bad.json").string();
  auto bad = Evaluate(kModel, kModel, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a token id"), std::string::npos);
}

// SampleSequences' step: the first token whose cumulative probability exceeds u.
TEST(SampleToken, DrawsByCumulativeProbability) {
  const std::vector<float> logits = {0.0f, 0.0f, std::log(2.0f)};  // p = 1/4, 1/4, 1/2
  EXPECT_EQ(SampleToken(logits, 0.0), 0);
  EXPECT_EQ(SampleToken(logits, 0.2), 0);
  EXPECT_EQ(SampleToken(logits, 0.3), 1);
  EXPECT_EQ(SampleToken(logits, 0.6), 2);
  EXPECT_EQ(SampleToken(logits, 0.999999), 2);
}

TEST(ReadSequences, TextNeedsATokenizerAndNoFileMeansNone) {
  EvalOptions o;
  o.text_file = "story.txt";
  auto text = ReadSequences(o, nullptr, 512);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("tokenizer"), std::string::npos);
  o.text_file.clear();
  auto none = ReadSequences(o, nullptr, 512);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  o.context = 1;
  EXPECT_FALSE(ReadSequences(o, nullptr, 512).ok());
}

}  // namespace
}  // namespace owf
