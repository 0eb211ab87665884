// Whole-model runs on the real stories260K GGUF and on a generated sharded bf16 safetensors
// model: packed size vs reported bits, dequantise == --emit fake bit for bit, thread-count
// independence, and no output left behind by a failed run.
#include "owf/quantize/driver.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "owf/core/numeric.h"
#include "owf/io/model.h"
#include "owf/io/safetensors_writer.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
const std::string kStories = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every file under a directory (or the file itself), by relative name.
std::map<std::string, std::string> Snapshot(const fs::path& p) {
  std::map<std::string, std::string> files;
  if (fs::is_directory(p)) {
    for (const auto& e : fs::directory_iterator(p)) files[e.path().filename().string()] = ReadAll(e.path());
  } else {
    files[""] = ReadAll(p);
  }
  return files;
}

class Driver : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("owf_driver_test_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!getenv("OWF_KEEP_TEST_FILES")) fs::remove_all(dir_);
  }
  std::string Path(const std::string& n) const { return (dir_ / n).string(); }

  // A Llama-shaped bf16 model in two shards with an index, config.json and tokenizer.json.
  std::string MakeShardedModel() {
    const fs::path model = dir_ / "model";
    fs::create_directories(model);
    std::mt19937 rng(1);
    std::student_t_distribution<float> td(5.0f);
    auto bf16 = [&](int64_t n, float scale) {
      std::vector<uint8_t> b(static_cast<size_t>(n) * 2);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = Bf16FromFloat(scale * td(rng));
        std::memcpy(&b[2 * i], &h, 2);
      }
      return b;
    };
    nlohmann::json weight_map;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> shard_tensors[2] = {
        {{"model.embed_tokens.weight", {256, 128}}, {"model.layers.0.self_attn.q_proj.weight", {128, 128}},
         {"model.layers.0.input_layernorm.weight", {128}}},
        {{"model.layers.0.mlp.down_proj.weight", {128, 344}}, {"model.norm.weight", {128}},
         {"lm_head.weight", {256, 128}}}};
    for (int s = 0; s < 2; ++s) {
      const std::string name = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
      auto w = SafetensorsWriter::Create((model / name).string());
      EXPECT_TRUE(w.ok());
      for (const auto& [tname, shape] : shard_tensors[s]) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        EXPECT_TRUE((*w)->Add(tname, "BF16", shape, bf16(n, shape.size() == 1 ? 1.0f : 0.02f)).ok());
        weight_map[tname] = name;
      }
      (*w)->SetMetadata({{"format", "pt"}});
      EXPECT_TRUE((*w)->Finish().ok());
    }
    std::ofstream(model / "model.safetensors.index.json") << nlohmann::json{{"metadata", {{"total_size", 0}}},
                                                                            {"weight_map", weight_map}}.dump();
    std::ofstream(model / "config.json") << R"j({"architectures": ["LlamaForCausalLM"], "hidden_size": 128})j";
    std::ofstream(model / "tokenizer.json") << R"j({"model": {"type": "BPE"}})j";
    return model.string();
  }

  fs::path dir_;
};

Result<ModelReport> RunModel(const std::string& in, const std::string& spec, const std::string& out, Emit emit,
                        int threads = 0) {
  QuantiseModelOptions o;
  o.output = out;
  o.emit = emit;
  o.threads = threads;
  return QuantiseModel(in, *RulesFromFormat(spec), o);
}

TEST_F(Driver, Stories260KRoundTrips) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "model not found: " << kStories;
  const std::string spec = "crd4(t)@64:absmax:bf16+search";
  auto packed = RunModel(kStories, spec, Path("q.owf.safetensors"), Emit::kPacked, 1);
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  int quantised = 0, partial = 0;
  for (const auto& t : packed->tensors) {
    if (t.shape.size() == 2) {
      EXPECT_EQ(t.spec, spec) << t.name;
      EXPECT_GT(t.rmse_norm, 0.0);
      EXPECT_LT(t.rmse_norm, 0.2) << t.name;
      ++quantised;
      if (t.shape[1] % 64 != 0) ++partial;  // rows of 172 columns
    } else {
      EXPECT_EQ(t.spec, "keep") << t.name;
    }
  }
  EXPECT_GT(quantised, 10);
  EXPECT_GT(partial, 0);
  // The container's payload is the reported bits (within 1%); 1-D tensors count at 32 bits.
  EXPECT_NEAR(packed->payload_bytes * 8.0, packed->bits, 0.01 * packed->bits);
  EXPECT_GT(packed->bits_per_param(), 4.0);
  EXPECT_LT(packed->bits_per_param(), 5.0);

  auto fake = RunModel(kStories, spec, Path("fake.gguf"), Emit::kFake, 2);
  ASSERT_TRUE(fake.ok()) << fake.status().message();
  ASSERT_TRUE(DequantiseModel(Path("q.owf.safetensors"), Path("deq.gguf")).ok());
  EXPECT_EQ(ReadAll(Path("deq.gguf")), ReadAll(Path("fake.gguf")));
  // The fake output is a GGUF with the original names and dtypes, and the quantised values.
  auto src = OpenModel(kStories), out = OpenModel(Path("fake.gguf"));
  ASSERT_TRUE(src.ok() && out.ok()) << out.status().message();
  ASSERT_EQ((*out)->tensors().size(), (*src)->tensors().size());
  for (size_t i = 0; i < (*src)->tensors().size(); ++i) {
    const auto& a = (*src)->tensors()[i];
    const auto& b = (*out)->tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.dtype_name, b.dtype_name);
    EXPECT_EQ(a.shape, b.shape);
    const bool same = std::equal((*src)->RawBytes(a).begin(), (*src)->RawBytes(a).end(), (*out)->RawBytes(b).begin());
    EXPECT_EQ(same, a.shape.size() != 2) << a.name;
  }
  // Identical bytes for any thread count.
  ASSERT_TRUE(RunModel(kStories, spec, Path("q2.owf.safetensors"), Emit::kPacked, 2).ok());
  EXPECT_EQ(ReadAll(Path("q2.owf.safetensors")), ReadAll(Path("q.owf.safetensors")));
}

// The fixed-length presets (opt / optmin scaling, two-level scales, fitted codebooks, mixed-radix
// codes) are stored for real: dequantise == --emit fake bit for bit, payload == reported bits.
TEST_F(Driver, FixedPresetsRoundTripThroughTheContainer) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "model not found: " << kStories;
  for (const char* spec : {"fixed2", "fixed4", "fixed4.5", "lloyd3@64:optmin:bf16", "int4@32:opt:fp16"}) {
    SCOPED_TRACE(spec);
    auto packed = RunModel(kStories, spec, Path("q.owf.safetensors"), Emit::kPacked, 2);
    ASSERT_TRUE(packed.ok()) << packed.status().message();
    EXPECT_NEAR(packed->payload_bytes * 8.0, packed->bits, 0.01 * packed->bits);
    auto fake = RunModel(kStories, spec, Path("fake.gguf"), Emit::kFake, 1);
    ASSERT_TRUE(fake.ok()) << fake.status().message();
    ASSERT_TRUE(DequantiseModel(Path("q.owf.safetensors"), Path("deq.gguf")).ok());
    EXPECT_EQ(ReadAll(Path("deq.gguf")), ReadAll(Path("fake.gguf")));
    ASSERT_TRUE(RunModel(kStories, spec, Path("q1.owf.safetensors"), Emit::kPacked, 1).ok());
    EXPECT_EQ(ReadAll(Path("q1.owf.safetensors")), ReadAll(Path("q.owf.safetensors")));
  }
}

TEST_F(Driver, ShardedSafetensorsDirectoryRoundTrips) {
  const std::string model = MakeShardedModel();
  QuantiseModelOptions o;
  o.output = Path("packed.safetensors");
  auto rules = ParseRules(R"j({"*embed_tokens*": "keep", "lm_head*": "int4@32:absmax:e8m0+outliers(0.01)",
                               "*q_proj*": "nf4@64:absmax+rotate(hadamard,7)+outliers(0.001)",
                               "*down_proj*": "grid(3.5)@channel:absmax+entropy(rans)",
                               "*self_attn*": "lloyd4@tensor:rms+entropy(huffman)"})j", "r",
                          std::string("crd4(t,df=5)@64:absmax"));
  ASSERT_TRUE(rules.ok());
  auto packed = QuantiseModel(model, *rules, o);
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  EXPECT_NEAR(packed->payload_bytes * 8.0, packed->bits, 0.01 * packed->bits);
  o.output = Path("fake");
  o.emit = Emit::kFake;
  ASSERT_TRUE(QuantiseModel(model, *rules, o).ok());
  ASSERT_TRUE(DequantiseModel(Path("packed.safetensors"), Path("deq")).ok());
  const auto fake = Snapshot(Path("fake")), deq = Snapshot(Path("deq")), src = Snapshot(model);
  ASSERT_EQ(fake.size(), deq.size());
  for (const auto& [name, bytes] : fake) {
    ASSERT_TRUE(deq.count(name)) << name;
    const std::string& other = deq.at(name);
    EXPECT_EQ(bytes.size(), other.size()) << name;
    const auto diff = std::mismatch(bytes.begin(), bytes.end(), other.begin(), other.end());
    EXPECT_TRUE(diff.first == bytes.end()) << name << " differs at byte " << (diff.first - bytes.begin());
  }
  // Same files; config, tokenizer and index carried verbatim; the kept embedding unchanged.
  ASSERT_EQ(fake.size(), src.size());
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors.index.json"}) EXPECT_EQ(fake.at(f), src.at(f));
  auto a = OpenModel(model), b = OpenModel(Path("fake"));
  ASSERT_TRUE(a.ok() && b.ok());
  const auto* emb = (*b)->Find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_TRUE(std::ranges::equal((*a)->RawBytes(*(*a)->Find(emb->name)), (*b)->RawBytes(*emb)));
  auto q = (*b)->Read(*(*b)->Find("model.layers.0.mlp.down_proj.weight"));  // 344 columns: partial blocks
  auto x = (*a)->Read(*(*a)->Find("model.layers.0.mlp.down_proj.weight"));
  ASSERT_TRUE(q.ok() && x.ok());
  double num = 0, den = 0;
  for (size_t i = 0; i < x->data.size(); ++i) {
    num += std::pow(double(q->data[i]) - x->data[i], 2);
    den += std::pow(double(x->data[i]), 2);
  }
  EXPECT_GT(std::sqrt(num / den), 0.05);
  EXPECT_LT(std::sqrt(num / den), 0.15);
}

TEST_F(Driver, FailedRunLeavesNothingBehind) {
  const std::string model = MakeShardedModel();
  for (Emit emit : {Emit::kPacked, Emit::kFake}) {
    // Blocks of 256 columns do not fit the 128-column tensors: the run fails part way.
    auto r = RunModel(model, "nf4@256:absmax", Path("out"), emit);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("larger than the tensor"), std::string::npos) << r.status().message();
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(dir_)) left.push_back(e.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{"model"});
  }
}

TEST_F(Driver, CorruptPackedFilesAreRejected) {
  const std::string model = MakeShardedModel();
  ASSERT_TRUE(RunModel(model, "nf4@64:absmax", Path("p.safetensors"), Emit::kPacked).ok());
  // Not a packed file at all.
  auto r = DequantiseModel(model + "/model-00001-of-00002.safetensors", Path("x"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("not an owf packed file"), std::string::npos) << r.message();
  EXPECT_FALSE(fs::exists(Path("x")));
}

}  // namespace
}  // namespace owf
