#include "owf/quantize/plan.h"

#include <gtest/gtest.h>

namespace owf {
namespace {

class FakeModel : public ModelReader {
 public:
  FakeModel() {
    auto add = [&](std::string name, std::vector<int64_t> shape, DType d, std::string dn) {
      TensorInfo t;
      t.name = std::move(name);
      t.shape = std::move(shape);
      t.dtype = d;
      t.dtype_name = std::move(dn);
      tensors_.push_back(t);
    };
    add("model.embed_tokens.weight", {512, 64}, DType::kBF16, "BF16");
    add("model.layers.0.self_attn.q_proj.weight", {64, 64}, DType::kBF16, "BF16");
    add("model.layers.0.input_layernorm.weight", {64}, DType::kBF16, "BF16");
    add("model.vision_model.patch.weight", {64, 64}, DType::kBF16, "BF16");
    add("model.position_ids", {1, 64}, DType::kOther, "I64");
    add("lm_head.weight", {512, 64}, DType::kF32, "F32");
  }
  const char* format() const override { return "safetensors"; }
  std::span<const uint8_t> RawBytes(const TensorInfo&) const override { return {}; }
};

TEST(Plan, DefaultSelectsEvery2DFloatWeightLikeTheReference) {
  FakeModel m;
  auto plan = MakePlan(m, *RulesFromFormat("nf4@64:absmax"));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  ASSERT_EQ(plan->size(), 6u);
  EXPECT_TRUE((*plan)[0].spec);   // embeddings included
  EXPECT_TRUE((*plan)[1].spec);
  EXPECT_FALSE((*plan)[2].spec);  // 1-D norm kept
  EXPECT_EQ((*plan)[2].why, "1-D");
  EXPECT_FALSE((*plan)[3].spec);  // vision tower ignored
  EXPECT_EQ((*plan)[3].why, "ignored");
  EXPECT_FALSE((*plan)[4].spec);  // integer buffer kept
  EXPECT_EQ((*plan)[4].why, "dtype I64");
  EXPECT_TRUE((*plan)[5].spec);   // lm_head included
}

TEST(Plan, RulesAreDataAndTheFirstMatchWins) {
  FakeModel m;
  auto rules = ParseRules(R"j({"*embed_tokens*": "crd6(t)@64:absmax", "*.weight": "keep",
                             "default": "int4@64:absmax"})j", "rules.json", std::nullopt);
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  auto plan = MakePlan(m, *rules);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(ToString(*(*plan)[0].spec), "crd6(t)@64:absmax:bf16");
  EXPECT_EQ((*plan)[0].why, "rule '*embed_tokens*'");
  EXPECT_FALSE((*plan)[1].spec);  // "*.weight": keep matched before the default
  EXPECT_FALSE((*plan)[5].spec);
}

TEST(Plan, FormatFlagIsTheDefaultUnlessTheFileSetsOne) {
  auto r = ParseRules(R"j({"lm_head*": "keep"})j", "r.json", std::string("nf4@64:absmax"));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->default_spec);
  EXPECT_EQ(ToString(*r->default_spec), "nf4@64:absmax:bf16");
}

TEST(Plan, BadRulesNameTheRule) {
  auto r = ParseRules(R"j({"*q_proj*": "crd4(t,df=1)"})j", "r.json", std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("r.json: rule '*q_proj*'"), std::string::npos) << r.status().message();
  EXPECT_FALSE(ParseRules("[1, 2]", "r.json", std::nullopt).ok());
  EXPECT_FALSE(ParseRules(R"j({"x": 4})j", "r.json", std::nullopt).ok());
  EXPECT_FALSE(ParseRules("{", "r.json", std::nullopt).ok());
  FakeModel m;
  auto q = ParseRules(R"j({"*position_ids": "nf4"})j", "r.json", std::nullopt);
  ASSERT_TRUE(q.ok());
  auto plan = MakePlan(m, *q);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("dtype I64"), std::string::npos);
}

}  // namespace
}  // namespace owf
