// `owf inspect`, end to end: a real GGUF model and a .npy tensor, text and JSON output, errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

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
const std::string kStories = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";


const nlohmann::json* FindTensor(const nlohmann::json& j, const std::string& name) {
  for (const auto& t : j["tensors"])
    if (t["name"] == name) return &t;
  return nullptr;
}

class CliInspect : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("owf_cli_inspect_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CliInspect, Stories260KJson) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "model not found at " << kStories;
  CliRun r = Owf("inspect " + kStories + " --json --threads 2", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "gguf");
  const nlohmann::json* emb = FindTensor(j, "token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ((*emb)["shape"], nlohmann::json({512, 64}));
  EXPECT_EQ((*emb)["dtype"], "F32");
  EXPECT_EQ((*emb)["params"], 512 * 64);
  ASSERT_TRUE((*emb)["t_df"].is_number());
  EXPECT_GE((*emb)["t_df"].get<double>(), 1);
  EXPECT_LE((*emb)["t_df"].get<double>(), 100);
  EXPECT_GT((*emb)["rms"].get<double>(), 0);
  EXPECT_GE((*emb)["absmax"].get<double>(), (*emb)["rms"].get<double>());
  EXPECT_TRUE((*emb)["excess_kurtosis"].is_number());

  int64_t params = 0, bytes = 0;
  for (const auto& t : j["tensors"]) {
    int64_t numel = 1;
    for (const auto& d : t["shape"]) numel *= d.get<int64_t>();
    EXPECT_EQ(t["params"].get<int64_t>(), numel) << t["name"];
    params += numel;
    bytes += t["bytes"].get<int64_t>();
  }
  const auto& totals = j["totals"];
  EXPECT_EQ(totals["tensors"].get<size_t>(), j["tensors"].size());
  EXPECT_EQ(totals["params"].get<int64_t>(), params);
  EXPECT_EQ(totals["bytes"].get<int64_t>(), bytes);
  // All F32 (shared/models/README.md): the one dtype row holds everything.
  ASSERT_TRUE(totals["by_dtype"].contains("F32"));
  EXPECT_EQ(totals["by_dtype"]["F32"]["params"].get<int64_t>(), params);
  EXPECT_EQ(totals["by_dtype"]["F32"]["bytes"].get<int64_t>(), 4 * params);
}

TEST_F(CliInspect, Stories260KTableAndThreadIndependence) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "model not found at " << kStories;
  CliRun r = Owf("inspect " + kStories);
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"token_embd.weight", "[512, 64]", "F32", "kurtosis", "t df", "total"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  EXPECT_EQ(Owf("inspect " + kStories + " --json --threads 1").out,
            Owf("inspect " + kStories + " --json --threads 3").out);
}

TEST_F(CliInspect, NpyInput) {
  Tensor t;
  t.shape = {3, 4};
  for (int i = 0; i < 12; ++i) t.data.push_back(static_cast<float>(i % 2 ? i : -i));
  ASSERT_TRUE(WriteNpy(Path("w.npy"), t).ok());
  CliRun r = Owf("inspect " + Path("w.npy") + " --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "npy");
  ASSERT_EQ(j["tensors"].size(), 1u);
  const auto& w = j["tensors"][0];
  EXPECT_EQ(w["name"], "w");
  EXPECT_EQ(w["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(w["dtype"], "F32");
  EXPECT_EQ(w["params"], 12);
  EXPECT_DOUBLE_EQ(w["absmax"].get<double>(), 11);
  EXPECT_NEAR(w["rms"].get<double>(), std::sqrt(506.0 / 12), 1e-12);  // sum i^2, i < 12 = 506
  EXPECT_TRUE(w["t_df"].is_number());
  EXPECT_EQ(j["totals"]["params"], 12);
  EXPECT_EQ(j["totals"]["bytes"], 48);
}

TEST_F(CliInspect, NonFloatTensorsAreListedWithoutStats) {
  // A hand-built safetensors file: an F32 [2, 2] tensor and an I64 [3] one.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("ids":{"dtype":"I64","shape":[3],"data_offsets":[16,40]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header;
  const float w[4] = {0.5f, -1.0f, 0.25f, 2.0f};
  const int64_t ids[3] = {1, 2, 3};
  bytes.append(reinterpret_cast<const char*>(w), sizeof(w));
  bytes.append(reinterpret_cast<const char*>(ids), sizeof(ids));
  {
    std::ofstream f(Path("m.safetensors"), std::ios::binary);
    f << bytes;
  }
  CliRun r = Owf("inspect " + Path("m.safetensors") + " --json", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "safetensors");
  const nlohmann::json* id = FindTensor(j, "ids");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ((*id)["dtype"], "I64");
  EXPECT_EQ((*id)["params"], 3);
  EXPECT_TRUE((*id)["rms"].is_null());
  EXPECT_TRUE((*id)["t_df"].is_null());
  const nlohmann::json* wt = FindTensor(j, "w");
  ASSERT_NE(wt, nullptr);
  EXPECT_DOUBLE_EQ((*wt)["absmax"].get<double>(), 2);
  EXPECT_EQ(j["totals"]["params"], 7);
  EXPECT_EQ(j["totals"]["bytes"], 40);
  EXPECT_EQ(j["totals"]["by_dtype"]["I64"]["bytes"], 24);
  EXPECT_EQ(j["totals"]["by_dtype"]["F32"]["tensors"], 1);

  r = Owf("inspect " + Path("m.safetensors"));
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t line = r.out.find("ids");
  ASSERT_NE(line, std::string::npos) << r.out;
  const std::string row = r.out.substr(line, r.out.find('\n', line) - line);
  EXPECT_NE(row.find("I64"), std::string::npos) << row;
  EXPECT_NE(row.find(" -"), std::string::npos) << row;
}

TEST_F(CliInspect, ErrorsGoToStderr) {
  CliRun r = Owf("inspect " + Path("missing.gguf"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out.rfind("owf: error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("missing.gguf"), std::string::npos) << r.out;
  EXPECT_EQ(Owf("inspect").code, 106);  // CLI11: required MODEL missing
}

}  // namespace
}  // namespace owf
