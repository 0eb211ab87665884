// Importance (imatrix) files and what they do to quantisation: the file round trips, per-column
// weights broadcast over rows, a spec with nothing to choose ignores them bit for bit, fitted
// formats lower the weighted error, outliers are picked by weighted error, and the driver warns
// on a missing entry and fails on a length mismatch.
#include "owf/quantize/importance.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "owf/formats/quantise.h"
#include "owf/io/npy.h"
#include "owf/io/safetensors_writer.h"
#include "owf/quantize/driver.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

class Importance : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("owf_importance_test_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& n) const { return (dir_ / n).string(); }
  fs::path dir_;
};

// A (rows, cols) Student-t(4) weight.
Tensor MakeWeight(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> td(4.0f);
  Tensor x;
  x.shape = {rows, cols};
  x.data.resize(static_cast<size_t>(rows * cols));
  for (float& v : x.data) v = 0.02f * td(rng);
  return x;
}

// Column weights: the first `hot` columns matter 1000x more than the rest.
std::vector<float> HotColumns(int64_t cols, int64_t hot) {
  std::vector<float> c(static_cast<size_t>(cols), 0.01f);
  for (int64_t i = 0; i < hot; ++i) c[static_cast<size_t>(i)] = 10.0f;
  return c;
}

double WeightedError(const Tensor& x, const Tensor& q, const std::vector<float>& w) {
  double e = 0;
  for (size_t i = 0; i < x.data.size(); ++i) {
    const double d = static_cast<double>(q.data[i]) - x.data[i];
    e += w[i] * d * d;
  }
  return e;
}

TEST_F(Importance, FileRoundTripsAndRejectsOthers) {
  Imatrix m;
  m.columns["blk.0.attn_q.weight"] = {0.5f, 1.25f, 3.0f};
  m.columns["output.weight"] = {2.0f, 0.0f};
  m.tokens = 1234;
  m.sequences = 5;
  m.model = "some/model.gguf";
  ASSERT_TRUE(WriteImatrix(Path("i.safetensors"), m).ok());
  auto back = ReadImatrix(Path("i.safetensors"));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->columns, m.columns);
  EXPECT_EQ(back->tokens, 1234);
  EXPECT_EQ(back->sequences, 5);
  EXPECT_EQ(back->model, "some/model.gguf");

  // A safetensors file that is not an imatrix.
  {
    auto w = SafetensorsWriter::Create(Path("other.safetensors"));
    ASSERT_TRUE(w.ok());
    const float v = 1.0f;
    ASSERT_TRUE((*w)->Add("x", "F32", {1}, std::span(reinterpret_cast<const uint8_t*>(&v), 4)).ok());
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto bad = ReadImatrix(Path("other.safetensors"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not an owf imatrix"), std::string::npos) << bad.status().message();

  // A negative mean square names the tensor and column.
  m.columns["output.weight"] = {2.0f, -1.0f};
  ASSERT_TRUE(WriteImatrix(Path("neg.safetensors"), m).ok());
  auto neg = ReadImatrix(Path("neg.safetensors"));
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("'output.weight' column 1"), std::string::npos) << neg.status().message();
}

TEST_F(Importance, BroadcastColumnsOverRows) {
  auto w = BroadcastColumns({1, 2, 3}, {2, 3}, "t");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<float>{1, 2, 3, 1, 2, 3}));
  auto bad = BroadcastColumns({1, 2}, {3, 4}, "blk.0.ffn_down.weight");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'blk.0.ffn_down.weight' has 2 values"), std::string::npos);
  EXPECT_NE(bad.status().message().find("4 input columns"), std::string::npos) << bad.status().message();
}

// A fixed spec (absmax scales, nearest rounding) has nothing to choose: importance must not
// change a single value. lloyd fits its codebook to the weighted sample: lower weighted error
// (and, as the price, higher plain error).
TEST_F(Importance, ChangesOnlyWhatIsChosenAndLowersWeightedError) {
  const Tensor x = MakeWeight(128, 256, 3);
  auto w = BroadcastColumns(HotColumns(256, 16), x.shape, "w");
  ASSERT_TRUE(w.ok());
  std::vector<float> ones(x.data.size(), 1.0f);

  auto fixed = ParseSpec("int4@64:absmax");
  ASSERT_TRUE(fixed.ok());
  auto a = QuantiseTensor(*fixed, x, {1, nullptr});
  auto b = QuantiseTensor(*fixed, x, {1, &*w});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->values.data, b->values.data);

  for (const char* text : {"lloyd3@tensor:absmax", "lloyd3@64:absmax", "crd3(t)@tensor:absmax+search"}) {
    auto spec = ParseSpec(text);
    ASSERT_TRUE(spec.ok()) << text;
    auto plain = QuantiseTensor(*spec, x, {1, nullptr});
    auto weighted = QuantiseTensor(*spec, x, {1, &*w});
    ASSERT_TRUE(plain.ok() && weighted.ok()) << text;
    EXPECT_EQ(plain->total_bits(), weighted->total_bits()) << text;
    EXPECT_LT(WeightedError(x, weighted->values, *w), WeightedError(x, plain->values, *w)) << text;
    EXPECT_GT(WeightedError(x, weighted->values, ones), WeightedError(x, plain->values, ones)) << text;
  }
}

// Outliers: with importance, the elements of largest w x^2, not of largest |x|.
TEST_F(Importance, OutliersArePickedByWeightedError) {
  Tensor x;
  x.shape = {4, 8};
  x.data.assign(32, 0.01f);
  x.data[3] = 5.0f;    // the largest |x|, in a column that never activates
  x.data[12] = 0.5f;   // column 4: w x^2 = 100 * 0.25 = 25
  x.data[29] = -0.3f;  // column 5: 100 * 0.09 = 9
  std::vector<float> cols = {1, 1, 1, 0, 100, 100, 1, 1};
  auto w = BroadcastColumns(cols, x.shape, "x");
  ASSERT_TRUE(w.ok());
  auto spec = ParseSpec("int4@tensor:absmax+outliers(0.0625)");  // 2 of 32
  ASSERT_TRUE(spec.ok());
  auto plain = QuantiseTensor(*spec, x, {1, nullptr});
  auto weighted = QuantiseTensor(*spec, x, {1, &*w});
  ASSERT_TRUE(plain.ok() && weighted.ok());
  EXPECT_EQ(plain->outlier_indices, (std::vector<int64_t>{3, 12}));
  EXPECT_EQ(weighted->outlier_indices, (std::vector<int64_t>{12, 29}));
}

TEST_F(Importance, DriverUsesEntriesWarnsOnMissingAndFailsOnMismatch) {
  const Tensor x = MakeWeight(64, 128, 5);
  ASSERT_TRUE(WriteNpy(Path("w.npy"), x).ok());
  auto rules = RulesFromFormat("lloyd3@tensor:absmax");
  ASSERT_TRUE(rules.ok());
  auto run = [&](const std::string& importance, const std::string& out) {
    QuantiseModelOptions o;
    o.output = Path(out);
    o.emit = Emit::kFake;
    o.threads = 1;
    o.importance = importance;
    return QuantiseModel(Path("w.npy"), *rules, o);
  };
  auto plain = run("", "plain.npy");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_TRUE(plain->warnings.empty());

  Imatrix m;
  m.columns["w"] = HotColumns(128, 8);
  ASSERT_TRUE(WriteImatrix(Path("i.safetensors"), m).ok());
  auto weighted = run(Path("i.safetensors"), "weighted.npy");
  ASSERT_TRUE(weighted.ok()) << weighted.status().ToString();
  EXPECT_TRUE(weighted->warnings.empty());
  ASSERT_EQ(weighted->tensors.size(), 1u);
  EXPECT_TRUE(weighted->tensors[0].importance);
  auto qp = ReadNpy(Path("plain.npy"));
  auto qw = ReadNpy(Path("weighted.npy"));
  ASSERT_TRUE(qp.ok() && qw.ok());
  auto w = BroadcastColumns(m.columns["w"], x.shape, "w");
  ASSERT_TRUE(w.ok());
  EXPECT_LT(WeightedError(x, *qw, *w), WeightedError(x, *qp, *w));

  // No entry for the tensor: a warning naming it, and the plain result.
  Imatrix other;
  other.columns["something.else"] = {1.0f};
  ASSERT_TRUE(WriteImatrix(Path("other.safetensors"), other).ok());
  auto missing = run(Path("other.safetensors"), "missing.npy");
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  ASSERT_EQ(missing->warnings.size(), 1u);
  EXPECT_NE(missing->warnings[0].find("'w'"), std::string::npos) << missing->warnings[0];
  EXPECT_FALSE(missing->tensors[0].importance);
  auto qm = ReadNpy(Path("missing.npy"));
  ASSERT_TRUE(qm.ok());
  EXPECT_EQ(qm->data, qp->data);

  // Under a rotation, importance is not used (and said so): the plain result, bit for bit.
  {
    auto rot = RulesFromFormat("lloyd3@tensor:absmax+rotate(hadamard,5)");
    ASSERT_TRUE(rot.ok());
    QuantiseModelOptions o;
    o.emit = Emit::kFake;
    o.threads = 1;
    o.output = Path("rot_plain.npy");
    ASSERT_TRUE(QuantiseModel(Path("w.npy"), *rot, o).ok());
    o.output = Path("rot_imp.npy");
    o.importance = Path("i.safetensors");
    auto r = QuantiseModel(Path("w.npy"), *rot, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->warnings.size(), 1u);
    EXPECT_NE(r->warnings[0].find("rotate"), std::string::npos) << r->warnings[0];
    auto a = ReadNpy(Path("rot_plain.npy"));
    auto b = ReadNpy(Path("rot_imp.npy"));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->data, b->data);
  }

  // Wrong length: an error naming the tensor and both lengths.
  Imatrix wrong;
  wrong.columns["w"] = std::vector<float>(64, 1.0f);
  ASSERT_TRUE(WriteImatrix(Path("wrong.safetensors"), wrong).ok());
  auto mismatch = run(Path("wrong.safetensors"), "wrong.npy");
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("'w' has 64 values"), std::string::npos) << mismatch.status().message();
  EXPECT_NE(mismatch.status().message().find("128 input columns"), std::string::npos) << mismatch.status().message();
  EXPECT_FALSE(fs::exists(Path("wrong.npy")));
}

}  // namespace
}  // namespace owf
