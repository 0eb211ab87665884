// The owf command line, end to end: exit codes, JSON fields, messages on bad input, and that
// --output writes a tensor that reads back to the reported error.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "owf/io/npy.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
const std::string kGolden = std::string(OWF_SHARED_DIR) + "/golden";


class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("owf_cli_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, FormatShowsTheCodebook) {
  CliRun r = Owf("format 'crd3(t,df=7)@64:absmax' --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["spec"], "crd3(t,df=7)@64:absmax:bf16");
  EXPECT_DOUBLE_EQ(j["bits_per_element"].get<double>(), 3.25);
  // reference-spec 2.3: crd_block_t(3, 64, 7) = +-{0.089614, 0.284030, 0.539125, 1}.
  const double want[] = {-1, -0.539125, -0.284030, -0.089614, 0.089614, 0.284030, 0.539125, 1};
  ASSERT_EQ(j["values"].size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(j["values"][i].get<double>(), want[i], 1e-6);
  r = Owf("format e2m1");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("values (15)"), std::string::npos) << r.out;
}

TEST_F(Cli, FormatsListsEveryFamily) {
  CliRun r = Owf("formats");
  ASSERT_EQ(r.code, 0);
  for (const char* name : {"int<b>", "e<E>m<M>", "nf4", "sf4", "lut(", "crd<b>", "lloyd<b>", "grid(<b>)", "signmax",
                           "e8m0", "+search", "+outliers", "+entropy"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name;
}

TEST_F(Cli, BadSpecPointsAtTheCharacter) {
  CliRun r = Owf("format 'crd4(t,df=x)@64:absmax'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("at column 11: expected a number"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("          ^"), std::string::npos) << r.out;
  EXPECT_EQ(Owf("format 'nf4@0:absmax'").code, 1);
  EXPECT_EQ(Owf("frobnicate").code, 109);  // CLI11: unknown subcommand / extra argument
}

TEST_F(Cli, MeasureReportsAndWritesTheDequantisedTensor) {
  if (!fs::exists(kGolden + "/data/normal.npy")) GTEST_SKIP() << "golden data not found at " << kGolden;
  const std::string in = kGolden + "/data/normal.npy";
  CliRun r = Owf("measure 'nf4@64:absmax' " + in + " --json --threads 1 --output " + Path("q1.npy"));
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"spec", "rmse_norm", "bits_per_element", "elements", "seconds"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["spec"], "nf4@64:absmax:bf16");
  EXPECT_EQ(j["elements"], 262144);
  EXPECT_DOUBLE_EQ(j["bits_per_element"].get<double>(), 4.25);
  EXPECT_NEAR(j["rmse_norm"].get<double>(), 0.09191295504570007, 1e-5);  // golden
  // The written tensor reproduces the reported error.
  auto x = ReadNpy(in);
  auto q = ReadNpy(Path("q1.npy"));
  ASSERT_TRUE(x.ok() && q.ok());
  ASSERT_EQ(q->shape, x->shape);
  double num = 0, den = 0;
  for (size_t i = 0; i < x->data.size(); ++i) {
    num += std::pow(double(q->data[i]) - x->data[i], 2);
    den += std::pow(double(x->data[i]), 2);
  }
  EXPECT_NEAR(std::sqrt(num / den), j["rmse_norm"].get<double>(), 1e-9);
  // Same bytes with more threads.
  ASSERT_EQ(Owf("measure 'nf4@64:absmax' " + in + " --threads 3 -o " + Path("q3.npy")).code, 0);
  std::ifstream a(Path("q1.npy"), std::ios::binary), b(Path("q3.npy"), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
}

TEST_F(Cli, BadInputFilesGiveClearErrors) {
  CliRun r = Owf("measure nf4 " + Path("missing.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("missing.npy"), std::string::npos) << r.out;

  Tensor t;
  t.shape = {2, 64};
  t.data.assign(128, 0.5f);
  t.data[70] = NAN;
  ASSERT_TRUE(WriteNpy(Path("nan.npy"), t).ok());
  r = Owf("measure 'nf4@64:absmax' " + Path("nan.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("(row 1, column 6) is NaN"), std::string::npos) << r.out;

  std::ofstream(Path("trunc.npy"), std::ios::binary) << SerializeNpy(t).substr(0, 200);
  r = Owf("measure nf4 " + Path("trunc.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("trunc.npy"), std::string::npos) << r.out;

  t.data[70] = 1.0f;
  ASSERT_TRUE(WriteNpy(Path("small.npy"), t).ok());
  r = Owf("measure 'nf4@128:absmax' " + Path("small.npy"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("larger than the tensor"), std::string::npos) << r.out;
  // A failed run leaves no output behind.
  r = Owf("measure 'nf4@128:absmax' " + Path("small.npy") + " -o " + Path("out.npy"));
  EXPECT_FALSE(fs::exists(Path("out.npy")));
}

TEST_F(Cli, QuantiseAndDequantiseAModel) {
  const std::string model = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";
  if (!fs::exists(model)) GTEST_SKIP() << "model not found: " << model;
  std::ofstream(Path("rules.json")) << R"j({"token_embd*": "crd6(t)@64:absmax", "output.weight": "keep"})j";
  CliRun r = Owf("quantise " + model + " --format 'nf4@64:absmax' --rules " + Path("rules.json") + " -o " +
                 Path("q.safetensors") + " --report " + Path("report.json") + " --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("bits per param"), std::string::npos) << r.out;
  std::ifstream in(Path("report.json"));
  const auto report = nlohmann::json::parse(in);
  bool saw_embedding = false;
  for (const auto& t : report["tensors"]) {
    if (t["name"] == "token_embd.weight") {
      saw_embedding = true;
      EXPECT_EQ(t["spec"], "crd6(t)@64:absmax:bf16");
      EXPECT_DOUBLE_EQ(t["bits_per_param"].get<double>(), 6.25);
    }
    if (t["name"] == "output.weight") {
      EXPECT_EQ(t["spec"], "keep");
    }
    if (t["name"] == "blk.0.attn_q.weight") {
      EXPECT_EQ(t["spec"], "nf4@64:absmax:bf16");
    }
  }
  EXPECT_TRUE(saw_embedding);
  ASSERT_EQ(Owf("dequantise " + Path("q.safetensors") + " -o " + Path("d.gguf")).code, 0);
  r = Owf("quantise " + model + " --format 'nf4@64:absmax' --rules " + Path("rules.json") + " -o " + Path("f.gguf") +
          " --emit fake --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream a(Path("d.gguf"), std::ios::binary), b(Path("f.gguf"), std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
  // One tensor of a model file.
  r = Owf("measure 'crd4(t)@64:absmax+search' " + model + " --tensor blk.0.ffn_down.weight --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["elements"], 64 * 172);
  EXPECT_EQ(Owf("measure nf4 " + model + " --tensor no.such.tensor").code, 1);
  // The dequantised GGUF is a model owf (and llama.cpp) can read.
  r = Owf("inspect " + Path("d.gguf") + " --json");
  EXPECT_EQ(r.code, 0) << r.out;
  // Errors: bad rule, missing --format, unreadable model; nothing written.
  std::ofstream(Path("bad.json")) << R"j({"blk.*": "crd4(t,df=1)"})j";
  r = Owf("quantise " + model + " --rules " + Path("bad.json") + " -o " + Path("x.safetensors"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("rule 'blk.*'"), std::string::npos) << r.out;
  EXPECT_EQ(Owf("quantise " + model + " -o " + Path("x.safetensors")).code, 1);
  r = Owf("quantise " + Path("rules.json") + " --format nf4 -o " + Path("x.safetensors"));
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(Path("x.safetensors")));
}

TEST_F(Cli, SweepDrawsRateDistortionCurves) {
  if (!fs::exists(kGolden + "/data/normal.npy")) GTEST_SKIP() << "golden data not found at " << kGolden;
  CliRun r = Owf("sweep " + kGolden + "/data/normal.npy --bits 3,4 -f 'crd{b}(normal)@tensor:rms' " +
                 "-f 'grid({b})@tensor:absmax+entropy(ideal)' --json --svg " + Path("rd.svg"));
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["rows"].size(), 4u);
  // Gaussian data: differential entropy ~ that of a Gaussian of std 0.02, 0.5 log2(2 pi e 0.02^2).
  EXPECT_NEAR(j["differential_entropy_bits"].get<double>(), 0.5 * std::log2(2 * M_PI * std::exp(1.0) * 4e-4), 0.02);
  for (const auto& row : j["rows"]) {
    const double gap = row["shannon_gap_bits"].get<double>();
    if (row["template"].get<std::string>().starts_with("grid")) {
      EXPECT_NEAR(gap, 0.2546, 0.05) << row["spec"];  // Gish-Pierce: entropy-coded uniform
    } else {
      EXPECT_NEAR(gap, 0.5, 0.15) << row["spec"];  // Panter-Dite fixed length, 3-4 bits
    }
  }
  std::ifstream svg(Path("rd.svg"));
  const std::string text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("Shannon bound (Gaussian)"), std::string::npos);
  EXPECT_EQ(Owf("sweep " + kGolden + "/data/normal.npy --bits 3,x").code, 1);
}

TEST_F(Cli, DemoPrintsTheRateDistortionTable) {
  CliRun r = Owf("demo --json");
  ASSERT_EQ(r.code, 0) << r.out.substr(0, 500);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 45u);
  for (const auto& row : j) {
    // Nothing beats the Shannon bound of a Gaussian on Gaussian data; entropy-coded grids come
    // within ~0.25 bit (Gish-Pierce 0.2546 asymptotically).
    if (row["data"] == "normal") {
      EXPECT_GT(row["shannon_gap_bits"].get<double>(), 0.2) << row["spec"];
      if (row["spec"].get<std::string>().starts_with("grid")) {
        EXPECT_LT(row["shannon_gap_bits"].get<double>(), 0.3) << row["spec"];
      }
    }
  }
}

}  // namespace
}  // namespace owf
