#include "owf/eval/sensitivity.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

namespace owf {
namespace {

const std::string kModel = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";

TEST(Sensitivity, TwoNoiseLevelsAgreeInTheQuadraticRegime) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  SensitivityOptions o;
  o.sequences.generate = 2;
  o.sequences.context = 64;
  auto s = EstimateSensitivity(kModel, o);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->size(), 37u);  // every 2-D tensor: 35 layer weights + embedding + output
  int agree = 0;
  for (const auto& t : *s) {
    EXPECT_GT(t.kl[1], t.kl[0]) << t.name;  // more noise, more divergence
    EXPECT_GT(t.fisher_mean_value(), 0) << t.name;
    if (std::fabs(t.agreement() - 1) < 0.2) ++agree;
  }
  EXPECT_GE(agree, static_cast<int>(0.8 * s->size()));  // "within 20% for most tensors"
}

}  // namespace
}  // namespace owf
