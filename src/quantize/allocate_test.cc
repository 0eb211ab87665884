#include "owf/quantize/allocate.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "owf/quantize/driver.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";

Result<ModelReport> Allocated(const std::string& spec, double budget) {
  QuantiseModelOptions o;
  o.output = (fs::temp_directory_path() / ("owf_alloc_" + std::to_string(getpid()) + ".safetensors")).string();
  o.bits_per_param = budget;
  auto r = QuantiseModel(kModel, *RulesFromFormat(spec), o);
  fs::remove(o.output);
  return r;
}

TEST(Allocate, ContinuousBitsHitTheBudget) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  for (double budget : {4.0, 5.5}) {
    auto r = Allocated("grid(4)@64:absmax+entropy(rans)", budget);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_NEAR(r->bits_per_param(), budget, 0.01) << budget;  // all-in, 1-D tensors at 32 bits
    std::set<std::string> specs;
    for (const auto& t : r->tensors)
      if (t.spec != "keep") specs.insert(t.spec);
    EXPECT_GT(specs.size(), 5u);  // bits really vary across tensors
  }
}

TEST(Allocate, WholeBitFamiliesStayWithinTheBudget) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  auto r = Allocated("crd4(t)@64:absmax", 4.6);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LE(r->bits_per_param(), 4.6 + 1e-9);
  EXPECT_GT(r->bits_per_param(), 4.6 - 0.12);  // one whole-bit step of the largest tensor
}

TEST(Allocate, FormatsWithFixedBitsAreRejected) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "model not found: " << kModel;
  auto r = Allocated("nf4@64:absmax", 4.5);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bits can vary"), std::string::npos);
}

}  // namespace
}  // namespace owf
