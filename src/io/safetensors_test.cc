// Tests for the safetensors reader and writer, MappedFile and OpenModel (directories, sharded
// indexes, .npy). Malformed images are built by hand in the tests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "owf/io/file.h"
#include "owf/io/mapped_file.h"
#include "owf/io/model.h"
#include "owf/io/npy.h"
#include "owf/io/packed.h"
#include "owf/io/safetensors_writer.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("owf_safetensors_test_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }
  std::vector<std::string> List() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

// 8-byte little-endian header size + header + data.
std::vector<uint8_t> Image(const std::string& header, const std::string& data,
                           uint64_t header_size_override = 0) {
  const uint64_t n = header_size_override ? header_size_override : header.size();
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}
std::vector<uint8_t> Image(const std::string& header, size_t data_bytes) {
  return Image(header, std::string(data_bytes, '\x11'));
}

std::string Entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

template <typename T>
std::vector<uint8_t> BytesOf(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

void WriteText(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomic(path, text).ok()) << path;
}

// ---------------------------------------------------------------------------------------------
// Writer -> reader round trip.

TEST(SafetensorsTest, RoundTripThroughWriter) {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  const std::vector<float> f32 = {1.5f, -2.25f, 0.0f, 3e-40f, 1e30f, -0.0f};
  const std::vector<uint16_t> bf16 = {0x3F80, 0xC020, 0x3E00, 0x0000};  // 1, -2.5, 0.125, 0
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3800};           // 1, -2, 0.5
  const std::vector<int64_t> i64 = {-7, 1LL << 40};
  {
    auto w = SafetensorsWriter::Create(path);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    SafetensorsWriter& writer = **w;
    ASSERT_TRUE(writer.Add("layer.w", "F32", {2, 3}, BytesOf(f32)).ok());
    ASSERT_TRUE(writer.Add("layer.b", "BF16", {4}, BytesOf(bf16)).ok());
    ASSERT_TRUE(writer.Add("norm", "F16", {3}, BytesOf(f16)).ok());
    ASSERT_TRUE(writer.Add("ids", "I64", {1, 2}, BytesOf(i64)).ok());
    // Rejected additions leave the writer usable.
    const Status dup = writer.Add("norm", "F16", {3}, BytesOf(f16));
    EXPECT_FALSE(dup.ok());
    EXPECT_NE(dup.message().find("already added"), std::string::npos) << dup.message();
    const Status size = writer.Add("x", "F32", {4}, BytesOf(f16));
    EXPECT_FALSE(size.ok());
    EXPECT_NE(size.message().find("needs 16 bytes, got 6"), std::string::npos) << size.message();
    EXPECT_FALSE(writer.Add("y", "F31", {1}, BytesOf(f32)).ok());
    EXPECT_FALSE(writer.Add("z", "F32", {-1}, {}).ok());
    writer.SetMetadata({{"format", "pt"}, {"owf", "test"}});
    ASSERT_TRUE(writer.Finish().ok());
    EXPECT_FALSE(writer.Finish().ok());  // only once
  }
  EXPECT_EQ(dir.List(), std::vector<std::string>{"model.safetensors"});  // no temporaries left

  // Layout: header padded with spaces so that the data starts at a multiple of 8.
  auto bytes = ReadFileBytes(path);
  ASSERT_TRUE(bytes.ok());
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ((*bytes)[0 + 8], '{');

  auto r = OpenSafetensors(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelReader& reader = **r;
  EXPECT_STREQ(reader.format(), "safetensors");
  EXPECT_EQ(reader.files(), std::vector<std::string>{path});
  ASSERT_EQ(reader.tensors().size(), 4u);
  EXPECT_EQ(reader.tensors()[0].name, "layer.w");  // file order = insertion order
  EXPECT_EQ(reader.tensors()[3].name, "ids");
  EXPECT_EQ(reader.metadata()["format"], "pt");
  EXPECT_EQ(reader.metadata()["owf"], "test");
  EXPECT_EQ(reader.tensors()[0].offset, 8 + n);

  const TensorInfo* w = reader.Find("layer.w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->dtype, DType::kF32);
  auto tw = reader.Read(*w);
  ASSERT_TRUE(tw.ok());
  ASSERT_EQ(tw->data.size(), f32.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(tw->data[i]), std::bit_cast<uint32_t>(f32[i])) << i;
  }
  auto tb = reader.Read(*reader.Find("layer.b"));
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(tb->data, (std::vector<float>{1.0f, -2.5f, 0.125f, 0.0f}));
  auto th = reader.Read(*reader.Find("norm"));
  ASSERT_TRUE(th.ok());
  EXPECT_EQ(th->data, (std::vector<float>{1.0f, -2.0f, 0.5f}));

  const TensorInfo* ids = reader.Find("ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->dtype, DType::kOther);
  EXPECT_EQ(ids->dtype_name, "I64");
  EXPECT_EQ(ids->nbytes, 16u);
  const auto raw = reader.RawBytes(*ids);
  EXPECT_EQ(std::vector<uint8_t>(raw.begin(), raw.end()), BytesOf(i64));
  auto ti = reader.Read(*ids);
  ASSERT_FALSE(ti.ok());
  EXPECT_EQ(ti.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(ti.status().message().find("'I64'"), std::string::npos) << ti.status().message();

  // The same image parsed from memory.
  auto p = ParseSafetensors(*bytes, "mem");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->tensors().size(), 4u);
}

TEST(SafetensorsTest, AcceptsPaddingEmptyAndZeroSizeTensors) {
  auto empty = ParseSafetensors(Image("{}      ", 0), "e");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE((*empty)->tensors().empty());

  const std::string h = "{\"z\":" + Entry("F32", "[0, 4]", "[8, 8]") +
                        ",\"a\":" + Entry("U8", "[8]", "[0, 8]") + "}   ";
  auto r = ParseSafetensors(Image(h, 8), "z");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)->tensors().size(), 2u);
  EXPECT_EQ((*r)->tensors()[0].name, "a");  // sorted by offset
  auto z = (*r)->Read(*(*r)->Find("z"));
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->numel(), 0);
}

// Integers in a packed tensor's description that are floats, out of range or strings are data
// errors: nlohmann would convert the first two with undefined behaviour (the fuzzer found a shape
// of 9.2e19, UBSan flagged the conversion).
TEST(PackedDescription, NumbersThatAreNotIntegersInRangeAreInvalidData) {
  auto r = ParseSafetensors(Image("{}      ", 0), "p.owf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const std::string shape : {"[9.2e19]", "[1.5]", "[18446744073709551615]", "[\"4\"]", "4"}) {
    SCOPED_TRACE(shape);
    const nlohmann::json d = nlohmann::json::parse(R"({"kind": "codes", "rows": 4, "cols": 1, "shape": )" + shape + "}");
    auto t = ReadPackedTensor(**r, "w", d);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidData) << t.status().ToString();
    // The shape itself is refused (not a later field: this description has no codebook).
    if (shape.find('"') == std::string::npos && shape != "4") {
      EXPECT_NE(t.status().message().find("expected an integer in range"), std::string::npos) << t.status().ToString();
    }
  }
  for (const std::string rows : {"1e300", "-1.0", "9223372036854775808"}) {
    SCOPED_TRACE(rows);
    const nlohmann::json d = nlohmann::json::parse(
        R"({"kind": "codes", "shape": [4], "codebook": [0.0, 1.0], "group": 1, "group_bits": 1, "cols": 1, "rows": )" + rows +
        "}");
    auto t = ReadPackedTensor(**r, "w", d);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidData) << t.status().ToString();
    EXPECT_NE(t.status().message().find("expected an integer in range"), std::string::npos) << t.status().ToString();
  }
}

TEST(SafetensorsTest, MappedFileHandlesEmptyFilesAndErrors) {
  TempDir dir;
  WriteText(dir / "empty", "");
  auto m = MappedFile::Open(dir / "empty");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->bytes().size(), 0u);
  EXPECT_FALSE(MappedFile::Open(dir / "missing").ok());
  auto d = MappedFile::Open(dir.path().string());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("directory"), std::string::npos);
  // An empty file is not a valid safetensors file.
  auto s = OpenSafetensors(dir / "empty");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("too short"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Must-reject corpus.

struct BadCase {
  const char* label;
  std::vector<uint8_t> image;
  const char* expect;  // substring of the message
};

std::vector<BadCase> BadCorpus() {
  const std::string ok8 = Entry("F32", "[2]", "[0, 8]");
  std::string deep = "{\"a\":";
  for (int i = 0; i < 200; ++i) deep += "[";
  for (int i = 0; i < 200; ++i) deep += "]";
  deep += "}";
  std::vector<BadCase> c;
  c.push_back(
      {"truncated before 8 bytes", {1, 0, 0, 0, 0}, "too short for the 8-byte header size"});
  c.push_back({"header size larger than file", Image("{}", "", 100), "header size 100 but only 2"});
  c.push_back(
      {"header size over cap", Image("{}", "", 200'000'000), "exceeds the limit of 100000000"});
  c.push_back({"header not JSON", Image("{not json}", 0), "header is not valid JSON"});
  c.push_back({"header JSON array", Image("[1, 2]", 0), "header is not a JSON object"});
  c.push_back({"empty header", Image("", 0), "header is not a JSON object"});
  c.push_back({"header leading space", Image(" {}", 0), "header is not a JSON object"});
  c.push_back({"garbage after JSON", Image("{} x", 0), "header is not valid JSON"});
  c.push_back({"invalid UTF-8 name", Image("{\"\xff\":" + ok8 + "}", 8), "not valid JSON"});
  c.push_back(
      {"entry not object", Image(R"({"a": 5})", 0), "tensor 'a': entry is not a JSON object"});
  c.push_back({"entry missing dtype", Image(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8),
               "tensor 'a': missing 'dtype'"});
  c.push_back({"entry extra key",
               Image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8),
               "unexpected key 'x'"});
  c.push_back({"dtype not string",
               Image(R"({"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}})", 8),
               "dtype is not a string"});
  c.push_back({"unknown dtype", Image("{\"a\":" + Entry("F31", "[2]", "[0, 8]") + "}", 8),
               "tensor 'a': unknown dtype 'F31'"});
  c.push_back({"negative shape entry", Image("{\"a\":" + Entry("F32", "[-2]", "[0, 8]") + "}", 8),
               "a negative dimension"});
  c.push_back({"fractional shape entry",
               Image("{\"a\":" + Entry("F32", "[2.5]", "[0, 8]") + "}", 8), "not an integer"});
  c.push_back({"shape entry 2^63",
               Image("{\"a\":" + Entry("F32", "[9223372036854775808]", "[0, 8]") + "}", 8),
               "not an integer in [0, 2^63)"});
  c.push_back({"shape not array", Image("{\"a\":" + Entry("F32", "2", "[0, 8]") + "}", 8),
               "shape is not a JSON array"});
  c.push_back({"offsets not a pair", Image("{\"a\":" + Entry("F32", "[2]", "[0, 8, 9]") + "}", 8),
               "is not a pair of non-negative integers"});
  c.push_back({"offsets negative", Image("{\"a\":" + Entry("F32", "[2]", "[-8, 0]") + "}", 8),
               "is not a pair of non-negative integers"});
  c.push_back({"offsets fractional", Image("{\"a\":" + Entry("F32", "[2]", "[0, 8.0]") + "}", 8),
               "is not a pair of non-negative integers"});
  c.push_back({"begin > end", Image("{\"a\":" + Entry("F32", "[2]", "[8, 0]") + "}", 8),
               "data_offsets [8, 0] has begin > end"});
  c.push_back({"offsets out of bounds", Image("{\"a\":" + Entry("F32", "[4]", "[0, 16]") + "}", 8),
               "data_offsets [0, 16] run past the end of the data buffer (8 bytes)"});
  c.push_back({"offsets overlapping",
               Image("{\"a\":" + ok8 + ",\"b\":" + Entry("F32", "[2]", "[4, 12]") + "}", 12),
               "tensor 'b': data_offsets [4, 12] overlaps tensor 'a' which ends at 8"});
  c.push_back({"gap between tensors",
               Image("{\"a\":" + ok8 + ",\"b\":" + Entry("F32", "[2]", "[12, 20]") + "}", 20),
               "leaves a gap of 4 bytes after tensor 'a'"});
  c.push_back({"gap at start", Image("{\"a\":" + Entry("F32", "[2]", "[4, 12]") + "}", 12),
               "gap of 4 bytes after the start of the data buffer"});
  c.push_back({"trailing bytes", Image("{\"a\":" + ok8 + "}", 12),
               "data buffer is 12 bytes but the tensors cover 8 (4 trailing bytes"});
  c.push_back({"shape x dtype overflow",
               Image("{\"a\":" + Entry("F32", "[1099511627776, 1099511627776]", "[0, 8]") + "}", 8),
               "more elements than fit in 64 bits"});
  c.push_back({"bytes overflow",
               Image("{\"a\":" + Entry("F64", "[4611686018427387904]", "[0, 8]") + "}", 8),
               "needs more bytes than fit in 64 bits"});
  c.push_back({"sub-byte remainder", Image("{\"a\":" + Entry("F4", "[3]", "[0, 2]") + "}", 2),
               "not a whole number of bytes"});
  c.push_back({"shape/offsets mismatch",
               Image("{\"lm_head.weight\":" + Entry("BF16", "[10, 10]", "[0, 100]") + "}", 100),
               "bad.safetensors: tensor 'lm_head.weight': data_offsets [0, 100] but shape [10, 10] "
               "BF16 needs 200 bytes"});
  c.push_back({"duplicate names", Image("{\"a\":" + ok8 + ",\"a\":" + ok8 + "}", 8),
               "duplicate key 'a' at the top level"});
  c.push_back({"duplicate key in entry",
               Image(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
               "duplicate key 'dtype' in a nested object"});
  c.push_back({"metadata non-string value",
               Image("{\"__metadata__\":{\"k\":1},\"a\":" + ok8 + "}", 8),
               "__metadata__ value for key 'k' is '1', not a string"});
  c.push_back({"metadata not object", Image("{\"__metadata__\":[],\"a\":" + ok8 + "}", 8),
               "__metadata__ is not a JSON object"});
  c.push_back({"deep nesting", Image(deep, 0), "nests JSON deeper than"});
  return c;
}

TEST(SafetensorsTest, RejectsMalformedImages) {
  const auto corpus = BadCorpus();
  EXPECT_GE(corpus.size(), 15u);
  for (const BadCase& c : corpus) {
    auto r = ParseSafetensors(c.image, "bad.safetensors");
    ASSERT_FALSE(r.ok()) << c.label;
    const std::string& msg = r.status().message();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidData) << c.label << ": " << msg;
    EXPECT_EQ(msg.rfind("bad.safetensors", 0), 0u) << c.label << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos)
        << c.label << ": expected '" << c.expect << "' in: " << msg;
  }
}

TEST(SafetensorsTest, MutatedImagesNeverCrash) {
  TempDir dir;
  const std::string path = dir / "fuzz.safetensors";
  {
    auto w = SafetensorsWriter::Create(path);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add("a", "F32", {3}, BytesOf(std::vector<float>{1, 2, 3})).ok());
    ASSERT_TRUE((*w)->Add("b", "BF16", {2, 2}, BytesOf(std::vector<uint16_t>{1, 2, 3, 4})).ok());
    ASSERT_TRUE((*w)->Add("c", "F16", {1}, BytesOf(std::vector<uint16_t>{0x3C00})).ok());
    ASSERT_TRUE((*w)->Add("d", "I8", {5}, BytesOf(std::vector<int8_t>{1, 2, 3, 4, 5})).ok());
    (*w)->SetMetadata({{"format", "pt"}});
    ASSERT_TRUE((*w)->Finish().ok());
  }
  auto valid = ReadFileBytes(path);
  ASSERT_TRUE(valid.ok());
  ASSERT_TRUE(ParseSafetensors(*valid, "fuzz").ok());

  std::mt19937_64 rng(20240607);
  const std::string digits = "0123456789-.e\"{}[],: ";
  int accepted = 0;
  for (int iter = 0; iter < 10000; ++iter) {
    std::vector<uint8_t> img = *valid;
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !img.empty(); ++m) {
      const size_t pos = rng() % img.size();
      switch (rng() % 6) {
        case 0:
          img[pos] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          img[pos] = static_cast<uint8_t>(rng());
          break;
        case 2:
          img.resize(pos);
          break;
        case 3:
          img.insert(img.begin() + static_cast<long>(pos), digits[rng() % digits.size()]);
          break;
        case 4:
          img.erase(img.begin() + static_cast<long>(pos));
          break;
        case 5:  // the header size field
          if (img.size() >= 8) img[rng() % 8] = static_cast<uint8_t>(rng());
          break;
      }
    }
    auto r = ParseSafetensors(img, "fuzz");
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++accepted;
    for (const TensorInfo& t : (*r)->tensors()) {
      const auto raw = (*r)->RawBytes(t);
      EXPECT_EQ(raw.size(), t.nbytes);
      EXPECT_LE(t.offset + t.nbytes, img.size());
      (void)(*r)->Read(t);
    }
  }
  RecordProperty("accepted", accepted);
}

// ---------------------------------------------------------------------------------------------
// Sharded models and OpenModel.

void WriteShard(const std::string& path,
                const std::vector<std::pair<std::string, std::vector<float>>>& tensors) {
  auto w = SafetensorsWriter::Create(path);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  for (const auto& [name, values] : tensors) {
    ASSERT_TRUE(
        (*w)->Add(name, "F32", {static_cast<int64_t>(values.size())}, BytesOf(values)).ok());
  }
  (*w)->SetMetadata({{"format", "pt"}});
  ASSERT_TRUE((*w)->Finish().ok());
}

// Two shards: a, b in the first, c in the second.
void WriteShardedModel(const TempDir& dir, const std::string& weight_map) {
  WriteShard(dir / "model-00001-of-00002.safetensors", {{"a", {1, 2}}, {"b", {3}}});
  WriteShard(dir / "model-00002-of-00002.safetensors", {{"c", {4, 5, 6}}});
  WriteText(dir / "model.safetensors.index.json",
            R"({"metadata": {"total_size": 24}, "weight_map": )" + weight_map + "}");
}

const char kGoodMap[] =
    R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"})";

TEST(SafetensorsTest, OpensShardedDirectoryWithConfig) {
  TempDir dir;
  WriteShardedModel(dir, kGoodMap);
  WriteText(dir / "config.json", R"({"model_type": "llama", "hidden_size": 8})");

  auto r = OpenModel(dir.path().string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelReader& reader = **r;
  EXPECT_STREQ(reader.format(), "safetensors");
  ASSERT_EQ(reader.files().size(), 2u);
  EXPECT_EQ(fs::path(reader.files()[1]).filename().string(), "model-00002-of-00002.safetensors");
  ASSERT_EQ(reader.tensors().size(), 3u);
  const TensorInfo* c = reader.Find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->shard, 1);
  EXPECT_EQ(reader.Find("a")->shard, 0);
  auto tc = reader.Read(*c);
  ASSERT_TRUE(tc.ok());
  EXPECT_EQ(tc->data, (std::vector<float>{4, 5, 6}));
  auto ta = reader.Read(*reader.Find("a"));
  ASSERT_TRUE(ta.ok());
  EXPECT_EQ(ta->data, (std::vector<float>{1, 2}));
  EXPECT_EQ(reader.metadata()["config"]["hidden_size"], 8);
  EXPECT_EQ(reader.metadata()["config"]["model_type"], "llama");
  EXPECT_EQ(reader.metadata()["format"], "pt");
  EXPECT_EQ(reader.metadata()["index"]["total_size"], 24);

  // The index path directly, through OpenModel and the specific opener.
  const std::string index = dir / "model.safetensors.index.json";
  for (int opener = 0; opener < 2; ++opener) {
    auto result = opener == 0 ? OpenModel(index) : OpenSafetensorsIndex(index);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result.value()->tensors().size(), 3u);
    EXPECT_FALSE(result.value()->metadata().contains("config"));
  }
}

TEST(SafetensorsTest, RejectsBadIndexes) {
  struct Case {
    std::string map;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {R"({"a": "../model-00001-of-00002.safetensors"})", "not a plain file name"},
      {R"({"a": "/etc/passwd"})", "not a plain file name"},
      {R"({"a": ".."})", "not a plain file name"},
      {R"({"a": 3})", "not a file name"},
      {R"({})", "'weight_map' is empty"},
      {R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
           "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"})",
       "weight_map puts tensor 'd' in 'model-00002-of-00002.safetensors', but that shard has no"},
      {R"({"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"})",
       "holds tensor 'b', which the weight_map does not list"},
      {R"({"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
           "c": "model-00002-of-00002.safetensors"})",
       "holds tensor 'b', which the weight_map puts in 'model-00002-of-00002.safetensors'"},
      {R"({"a": "model-00001-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"})",
       "duplicate key 'a'"},
      {R"({"a": "missing.safetensors"})", "shard 'missing.safetensors'"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    WriteShardedModel(dir, c.map);
    auto r = OpenModel(dir.path().string());
    ASSERT_FALSE(r.ok()) << c.map;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << "expected '" << c.expect << "' in: " << r.status().message();
    EXPECT_NE(r.status().message().find("model.safetensors.index.json"), std::string::npos);
  }
  TempDir dir;
  WriteText(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  auto r = OpenSafetensorsIndex(dir / "model.safetensors.index.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing 'weight_map'"), std::string::npos);
}

TEST(SafetensorsTest, DirectoryWithoutIndex) {
  TempDir dir;
  auto none = OpenModel(dir.path().string());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no *.safetensors file"), std::string::npos);

  WriteShard(dir / "one.safetensors", {{"w", {7, 8}}});
  auto one = OpenModel(dir.path().string());
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one.value()->tensors().size(), 1u);
  EXPECT_FALSE(one.value()->metadata().contains("config"));

  WriteShard(dir / "two.safetensors", {{"v", {9}}});
  auto two = OpenModel(dir.path().string());
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("several *.safetensors files"), std::string::npos);
  EXPECT_NE(two.status().message().find("one.safetensors, two.safetensors"), std::string::npos)
      << two.status().message();

  TempDir bad_config;
  WriteShard(bad_config / "m.safetensors", {{"w", {1}}});
  WriteText(bad_config / "config.json", "{oops");
  auto bc = OpenModel(bad_config.path().string());
  ASSERT_FALSE(bc.ok());
  EXPECT_NE(bc.status().message().find("config.json"), std::string::npos);
}

TEST(SafetensorsTest, OpenModelSniffsFiles) {
  TempDir dir;
  Tensor t;
  t.shape = {2, 2};
  t.data = {1.0f, -2.0f, 3.5f, 0.25f};
  ASSERT_TRUE(WriteNpy(dir / "weights.npy", t).ok());
  auto npy = OpenModel(dir / "weights.npy");
  ASSERT_TRUE(npy.ok()) << npy.status().ToString();
  EXPECT_STREQ(npy.value()->format(), "npy");
  ASSERT_EQ(npy.value()->tensors().size(), 1u);
  const TensorInfo& info = npy.value()->tensors()[0];
  EXPECT_EQ(info.name, "weights");
  EXPECT_EQ(info.dtype, DType::kF32);
  EXPECT_EQ(info.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(npy.value()->RawBytes(info).size(), 16u);
  auto back = npy.value()->Read(info);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->data, (std::vector<float>{1.0f, -2.0f, 3.5f, 0.25f}));

  // Any other file is read as safetensors, whatever its name.
  WriteShard(dir / "model.bin", {{"w", {1}}});
  auto st = OpenModel(dir / "model.bin");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_STREQ(st.value()->format(), "safetensors");

  WriteText(dir / "junk.safetensors", "not a model at all");
  auto junk = OpenModel(dir / "junk.safetensors");
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("junk.safetensors"), std::string::npos);

  auto missing = OpenModel(dir / "nope.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
}

// ---------------------------------------------------------------------------------------------
// Writer failure paths.

TEST(SafetensorsTest, AbandonedWriterLeavesNoFiles) {
  TempDir dir;
  {
    auto w = SafetensorsWriter::Create(dir / "out.safetensors");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add("a", "F32", {2}, BytesOf(std::vector<float>{1, 2})).ok());
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(SafetensorsTest, WriterIntoMissingDirectoryFailsCleanly) {
  TempDir dir;
  const std::string path = dir / "no/such/dir/out.safetensors";
  auto w = SafetensorsWriter::Create(path);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kIoError);
  EXPECT_NE(w.status().message().find(path), std::string::npos) << w.status().message();
  EXPECT_TRUE(dir.List().empty());
}

TEST(SafetensorsTest, WriterRejectsBadNames) {
  TempDir dir;
  auto w = SafetensorsWriter::Create(dir / "o.safetensors");
  ASSERT_TRUE(w.ok());
  const std::vector<uint8_t> four(4);
  EXPECT_FALSE((*w)->Add("", "F32", {1}, four).ok());
  EXPECT_FALSE((*w)->Add("__metadata__", "F32", {1}, four).ok());
  EXPECT_FALSE((*w)->Add("bad\xff", "F32", {1}, four).ok());
  ASSERT_TRUE((*w)->Add("ok", "F32", {1}, four).ok());
  (*w)->SetMetadata({{"k", "bad\xff"}});
  EXPECT_FALSE((*w)->Finish().ok());
  EXPECT_TRUE(dir.List().empty());
}

}  // namespace
}  // namespace owf
