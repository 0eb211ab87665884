#include "owf/io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "owf/io/file.h"
#include "owf/io/model.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

// Value type ids of the GGUF format.
enum : uint32_t {
  kU8 = 0,
  kI8,
  kU16,
  kI16,
  kU32,
  kI32,
  kF32,
  kBool,
  kStr,
  kArr,
  kU64,
  kI64,
  kF64,
};
// ggml tensor type ids.
constexpr uint32_t kTypeF32 = 0, kTypeF16 = 1, kTypeQ4_0 = 2, kTypeQ4_K = 12, kTypeI32 = 26,
                   kTypeBF16 = 30;

// Little-endian byte sink for hand-built GGUF images.
struct Sink {
  std::vector<uint8_t> b;
  template <typename T>
  Sink& Put(T v) {
    const size_t n = b.size();
    b.resize(n + sizeof(T));
    std::memcpy(b.data() + n, &v, sizeof(T));
    return *this;
  }
  Sink& Str(std::string_view s) {
    Put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Sink& Raw(const std::vector<uint8_t>& r) {
    b.insert(b.end(), r.begin(), r.end());
    return *this;
  }
};

struct Kv {
  std::string key;
  uint32_t type;
  std::vector<uint8_t> value;  // encoded value (for arrays: element type, count, elements)
};

template <typename T>
Kv KvNum(const std::string& key, uint32_t type, T v) {
  return {key, type, Sink().Put(v).b};
}
Kv KvStr(const std::string& key, std::string_view s) { return {key, kStr, Sink().Str(s).b}; }
// An array value body: element type, count, then the encoded elements.
std::vector<uint8_t> ArrayBody(uint32_t elem, uint64_t count, const std::vector<uint8_t>& elems) {
  return Sink().Put(elem).Put(count).Raw(elems).b;
}

struct TTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  std::vector<uint8_t> data;
  std::optional<uint64_t> offset;  // default: packed in order, aligned
};

// Builds a GGUF image: header, kvs, tensor infos, padding to `alignment`, tensor data.
struct Builder {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::vector<Kv> kvs;
  std::vector<TTensor> tensors;
  uint32_t alignment = 32;  // layout only: add a general.alignment kv to change the file's
  std::optional<uint64_t> tensor_count, kv_count;

  std::vector<uint8_t> Build() const {
    Sink s;
    s.b.insert(s.b.end(), magic.begin(), magic.end());
    s.Put(version).Put<uint64_t>(tensor_count.value_or(tensors.size()));
    s.Put<uint64_t>(kv_count.value_or(kvs.size()));
    for (const Kv& kv : kvs) s.Str(kv.key).Put(kv.type).Raw(kv.value);
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const TTensor& t : tensors) {
      const uint64_t off = t.offset.value_or(next);
      offsets.push_back(off);
      next = (off + t.data.size() + alignment - 1) / alignment * alignment;
      s.Str(t.name).Put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) s.Put(d);
      s.Put(t.type).Put(off);
    }
    if (tensors.empty()) return s.b;
    s.b.resize((s.b.size() + alignment - 1) / alignment * alignment);
    const size_t base = s.b.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const size_t at = base + offsets[i];
      if (s.b.size() < at + tensors[i].data.size()) s.b.resize(at + tensors[i].data.size());
      std::copy(tensors[i].data.begin(), tensors[i].data.end(),
                s.b.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return s.b;
  }
};

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  Sink s;
  for (float x : v) s.Put(x);
  return s.b;
}
std::vector<uint8_t> U16Bytes(const std::vector<uint16_t>& v) {
  Sink s;
  for (uint16_t x : v) s.Put(x);
  return s.b;
}

// A small valid file exercising every value type and F32/F16/BF16/Q4_0 tensors.
Builder ValidBuilder() {
  Builder b;
  b.kvs.push_back(KvStr("general.architecture", "llama"));
  b.kvs.push_back(KvNum<uint8_t>("t.u8", kU8, 200));
  b.kvs.push_back(KvNum<int8_t>("t.i8", kI8, -100));
  b.kvs.push_back(KvNum<uint16_t>("t.u16", kU16, 60000));
  b.kvs.push_back(KvNum<int16_t>("t.i16", kI16, -30000));
  b.kvs.push_back(KvNum<uint32_t>("t.u32", kU32, 4000000000u));
  b.kvs.push_back(KvNum<int32_t>("t.i32", kI32, -2000000000));
  b.kvs.push_back(KvNum<float>("t.f32", kF32, 0.5f));
  b.kvs.push_back(KvNum<uint8_t>("t.bool", kBool, 1));
  b.kvs.push_back(KvNum<uint64_t>("t.u64", kU64, 18000000000000000000ull));
  b.kvs.push_back(KvNum<int64_t>("t.i64", kI64, -9000000000000000000ll));
  b.kvs.push_back(KvNum<double>("t.f64", kF64, -1.25));
  b.kvs.push_back(KvStr("t.bad_utf8",
                        "a\xFF"
                        "b"));
  b.kvs.push_back({"t.strs", kArr, ArrayBody(kStr, 3, Sink().Str("a").Str("").Str("ccc").b)});
  b.kvs.push_back({"t.i32s", kArr,
                   ArrayBody(kI32, 3, Sink().Put<int32_t>(-1).Put<int32_t>(2).Put<int32_t>(3).b)});
  // [[1, 2], []] of UINT16, and [[["x"]]].
  b.kvs.push_back(
      {"t.nested", kArr,
       ArrayBody(kArr, 2,
                 Sink()
                     .Raw(ArrayBody(kU16, 2, Sink().Put<uint16_t>(1).Put<uint16_t>(2).b))
                     .Raw(ArrayBody(kU16, 0, {}))
                     .b)});
  b.kvs.push_back({"t.deep", kArr,
                   ArrayBody(kArr, 1, ArrayBody(kArr, 1, ArrayBody(kStr, 1, Sink().Str("x").b)))});
  Sink longs, strs, bools;
  for (int i = 0; i < 100; ++i) {
    longs.Put(0.25f * static_cast<float>(i));
    strs.Str("tok" + std::to_string(i));
    bools.Put<uint8_t>(i % 2);
  }
  b.kvs.push_back({"t.long_f32", kArr, ArrayBody(kF32, 100, longs.b)});
  b.kvs.push_back({"t.long_str", kArr, ArrayBody(kStr, 100, strs.b)});
  b.kvs.push_back({"t.long_bool", kArr, ArrayBody(kBool, 100, bools.b)});
  b.tensors.push_back({"w.f32", {3, 2}, kTypeF32, F32Bytes({0, 1, 2, 3, 4, -5.5f}), std::nullopt});
  b.tensors.push_back(
      {"w.f16", {4}, kTypeF16, U16Bytes({0x3C00, 0xC000, 0x3800, 0x0000}), std::nullopt});
  b.tensors.push_back({"w.bf16", {2, 1, 1}, kTypeBF16, U16Bytes({0x3F80, 0xC040}), std::nullopt});
  b.tensors.push_back(
      {"w.q4_0", {64, 2}, kTypeQ4_0, std::vector<uint8_t>(4 * 18, 0x11), std::nullopt});
  b.tensors.push_back(
      {"w.i32", {2}, kTypeI32, Sink().Put<int32_t>(7).Put<int32_t>(8).b, std::nullopt});
  b.tensors.push_back({"w.empty", {0, 5}, kTypeF32, {}, std::nullopt});
  return b;
}

Result<std::unique_ptr<ModelReader>> Parse(const std::vector<uint8_t>& image) {
  return ParseGguf(image, "test.gguf");
}

TEST(GgufTest, RoundTripSmallFile) {
  auto r = Parse(ValidBuilder().Build());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ModelReader& m = **r;
  EXPECT_STREQ(m.format(), "gguf");
  ASSERT_EQ(m.tensors().size(), 6u);
  EXPECT_EQ(m.files(), std::vector<std::string>{"test.gguf"});

  const TensorInfo* f32 = m.Find("w.f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f32->dtype, DType::kF32);
  EXPECT_EQ(f32->nbytes, 24u);
  EXPECT_EQ(f32->offset % 32, 0u);
  auto t = m.Read(*f32);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->data, (std::vector<float>{0, 1, 2, 3, 4, -5.5f}));

  const TensorInfo* f16 = m.Find("w.f16");
  ASSERT_NE(f16, nullptr);
  EXPECT_EQ(f16->dtype, DType::kF16);
  EXPECT_EQ(f16->dtype_name, "F16");
  auto h = m.Read(*f16);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->data, (std::vector<float>{1.0f, -2.0f, 0.5f, 0.0f}));

  const TensorInfo* bf = m.Find("w.bf16");
  ASSERT_NE(bf, nullptr);
  EXPECT_EQ(bf->dtype, DType::kBF16);
  EXPECT_EQ(bf->shape, (std::vector<int64_t>{1, 1, 2}));
  auto bv = m.Read(*bf);
  ASSERT_TRUE(bv.ok());
  EXPECT_EQ(bv->data, (std::vector<float>{1.0f, -3.0f}));

  const TensorInfo* q = m.Find("w.q4_0");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kOther);
  EXPECT_EQ(q->dtype_name, "Q4_0");
  EXPECT_TRUE(q->quantised);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(q->nbytes, 72u);
  EXPECT_EQ(m.RawBytes(*q).size(), 72u);
  EXPECT_EQ(m.RawBytes(*q)[0], 0x11);
  auto qr = m.Read(*q);
  ASSERT_FALSE(qr.ok());
  EXPECT_EQ(qr.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(qr.status().message(),
            "tensor 'w.q4_0' is already quantised (Q4_0); owf needs F32, F16 or BF16 weights");

  const TensorInfo* i32 = m.Find("w.i32");
  ASSERT_NE(i32, nullptr);
  EXPECT_FALSE(i32->quantised);
  auto ir = m.Read(*i32);
  ASSERT_FALSE(ir.ok());
  EXPECT_NE(ir.status().message().find("dtype 'I32'"), std::string::npos) << ir.status().message();

  const TensorInfo* empty = m.Find("w.empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_EQ(empty->nbytes, 0u);
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{5, 0}));
  auto er = m.Read(*empty);
  ASSERT_TRUE(er.ok()) << er.status().ToString();
  EXPECT_TRUE(er->data.empty());
}

TEST(GgufTest, MetadataEveryValueType) {
  auto r = Parse(ValidBuilder().Build());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const nlohmann::json& md = (*r)->metadata();
  EXPECT_EQ(md["gguf.version"], 3);
  EXPECT_EQ(md["gguf.alignment"], 32);
  EXPECT_EQ(md["general.architecture"], "llama");
  EXPECT_EQ(md["t.u8"], 200);
  EXPECT_EQ(md["t.i8"], -100);
  EXPECT_EQ(md["t.u16"], 60000);
  EXPECT_EQ(md["t.i16"], -30000);
  EXPECT_EQ(md["t.u32"], 4000000000u);
  EXPECT_EQ(md["t.i32"], -2000000000);
  EXPECT_EQ(md["t.f32"], 0.5);
  EXPECT_EQ(md["t.bool"], true);
  EXPECT_EQ(md["t.u64"], 18000000000000000000ull);
  EXPECT_EQ(md["t.i64"], -9000000000000000000ll);
  EXPECT_EQ(md["t.f64"], -1.25);
  EXPECT_EQ(md["t.bad_utf8"],
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(md["t.strs"], nlohmann::json({"a", "", "ccc"}));
  EXPECT_EQ(md["t.i32s"], nlohmann::json({-1, 2, 3}));
  EXPECT_EQ(md["t.nested"], nlohmann::json::parse("[[1, 2], []]"));
  EXPECT_EQ(md["t.deep"], nlohmann::json::parse(R"([[["x"]]])"));
  EXPECT_EQ(md["t.long_f32"], nlohmann::json::parse(R"({"type": "FLOAT32", "length": 100})"));
  EXPECT_EQ(md["t.long_str"], nlohmann::json::parse(R"({"type": "STRING", "length": 100})"));
  EXPECT_EQ(md["t.long_bool"], nlohmann::json::parse(R"({"type": "BOOL", "length": 100})"));
  EXPECT_NO_THROW((void)md.dump());

  // Full arrays through the GGUF API.
  auto strs = GgufStringArray(**r, "t.long_str");
  ASSERT_TRUE(strs.ok()) << strs.status().ToString();
  ASSERT_EQ(strs->size(), 100u);
  EXPECT_EQ((*strs)[99], "tok99");
  auto floats = GgufFloatArray(**r, "t.long_f32");
  ASSERT_TRUE(floats.ok());
  ASSERT_EQ(floats->size(), 100u);
  EXPECT_EQ((*floats)[10], 2.5f);
  auto ints = GgufIntArray(**r, "t.i32s");
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(*ints, (std::vector<int32_t>{-1, 2, 3}));
  auto bools = GgufIntArray(**r, "t.long_bool");
  ASSERT_TRUE(bools.ok());
  EXPECT_EQ((*bools)[3], 1);

  EXPECT_FALSE(GgufStringArray(**r, "t.i32s").ok());
  EXPECT_NE(GgufFloatArray(**r, "t.strs").status().message().find("array of STRING"),
            std::string::npos);
  EXPECT_FALSE(GgufIntArray(**r, "t.nested").ok());
  EXPECT_NE(GgufIntArray(**r, "missing").status().message().find("no key 'missing'"),
            std::string::npos);
  EXPECT_NE(GgufIntArray(**r, "t.u8").status().message().find("not an array"), std::string::npos);
}

TEST(GgufTest, CustomAlignmentAndVersion2) {
  Builder b = ValidBuilder();
  b.version = 2;
  b.alignment = 64;
  b.kvs.push_back(KvNum<uint32_t>("general.alignment", kU32, 64));
  auto r = Parse(b.Build());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->metadata()["gguf.alignment"], 64);
  EXPECT_EQ((*r)->metadata()["gguf.version"], 2);
  for (const TensorInfo& t : (*r)->tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  auto t = (*r)->Read(*(*r)->Find("w.f32"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data[5], -5.5f);
}

TEST(GgufTest, OpenGgufFromFile) {
  const fs::path dir = fs::temp_directory_path() / ("owf_gguf_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::vector<uint8_t> image = ValidBuilder().Build();
  const std::string path = (dir / "small.gguf").string();
  ASSERT_TRUE(WriteFileAtomic(
                  path, std::string_view(reinterpret_cast<const char*>(image.data()), image.size()))
                  .ok());
  auto r = OpenGguf(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->files(), std::vector<std::string>{path});
  auto t = (*r)->Read(*(*r)->Find("w.f16"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data[1], -2.0f);
  auto missing = OpenGguf((dir / "missing.gguf").string());
  EXPECT_FALSE(missing.ok());
  fs::remove_all(dir);
}

struct BadCase {
  const char* label;
  std::vector<uint8_t> image;
  const char* expect;  // substring of the message
};

std::vector<BadCase> MustRejectCorpus() {
  std::vector<BadCase> cases;
  const auto add = [&](const char* label, const Builder& b, const char* expect) {
    cases.push_back({label, b.Build(), expect});
  };
  const Builder valid = ValidBuilder();
  const std::vector<uint8_t> image = valid.Build();
  {
    Builder b = valid;
    b.magic = "GGUX";
    add("bad magic", b, "bad magic");
  }
  {
    Builder b = valid;
    b.version = 1;
    add("version 1", b, "version 1 is not supported");
  }
  {
    Builder b = valid;
    b.version = 4;
    add("version 4", b, "unsupported GGUF version 4");
  }
  {
    Builder b = valid;
    b.version = 0x03000000;
    add("big-endian", b, "big-endian");
  }
  cases.push_back({"empty", {}, "truncated"});
  cases.push_back(
      {"truncated header", std::vector<uint8_t>(image.begin(), image.begin() + 10), "truncated"});
  cases.push_back({"truncated kv count", std::vector<uint8_t>(image.begin(), image.begin() + 20),
                   "at byte 16: truncated"});
  {
    Builder b;
    b.kvs.push_back({"general.name", kStr, Sink().Put<uint64_t>(99999999).b});
    b.kvs.back().value.resize(8 + 100);
    add("string length past EOF", b,
        "string length 99999999 exceeds the 100 bytes left (key 'general.name')");
  }
  {
    Builder b;
    b.kvs.push_back({"general.name", kStr, Sink().Str("llama").b});
    b.kvs.push_back({"k", kStr, Sink().Str("v").b});
    std::vector<uint8_t> img = b.Build();
    img.resize(img.size() - 1);
    cases.push_back({"value string cut short", img, "exceeds the 0 bytes left (key 'k')"});
  }
  {
    Builder b;
    b.kvs.push_back(KvNum<uint32_t>("x", kU32, 1));
    b.kvs[0].key = std::string(40, 'k');
    std::vector<uint8_t> img = b.Build();
    std::memcpy(img.data() + 24, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
    cases.push_back({"key length past EOF", img, "(the name of key #0)"});
  }
  {
    Builder b;
    b.kvs.push_back(
        {"tokenizer.ggml.tokens", kArr, ArrayBody(kStr, 1ull << 40, Sink().Str("a").b)});
    add("array count past EOF", b, "array count 1099511627776 of STRING exceeds");
  }
  {
    Builder b;
    b.kvs.push_back({"a", kArr, ArrayBody(kU64, 3, Sink().Put<uint64_t>(1).Put<uint64_t>(2).b)});
    add("array of u64 past EOF", b, "array count 3 of UINT64");
  }
  {
    Builder b;
    b.kvs.push_back({"weird", 13, Sink().Put<uint32_t>(0).b});
    add("unknown value type", b, "unknown value type 13 (key 'weird')");
  }
  {
    Builder b;
    b.kvs.push_back({"weird", kArr, ArrayBody(77, 0, {})});
    add("unknown element type", b, "unknown array element type 77");
  }
  {
    Builder b;
    b.kvs.push_back(KvNum<uint8_t>("flag", kBool, 2));
    add("bool 2", b, "bool value 2 is not 0 or 1");
  }
  {
    Builder b = valid;
    b.tensors[0].type = 4;  // Q4_2, removed
    add("removed ggml type", b, "unknown ggml type 4");
  }
  {
    Builder b = valid;
    b.tensors[1].type = 1000;
    add("unknown ggml type", b, "tensor 'w.f16': unknown ggml type 1000");
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {1, 1, 1, 1, 24};
    add("n_dims 5", b, "n_dims 5 exceeds the maximum of 4");
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {1ull << 32, 1ull << 32};
    add("ne product overflow", b, "size overflows");
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {1ull << 31, 1ull << 31};  // numel fits, bytes (x4) overflow int64? no: 2^64
    add("byte size overflow", b, "size overflows");
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {(1ull << 62) + 2};  // 1-D: ne[0] x 4 bytes wraps to 8
    add("1-D byte size overflow", b, "size overflows");
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {0xFFFFFFFFFFFFFFFFull, 1};
    add("negative ne", b, "is negative as int64");
  }
  {
    Builder b = valid;
    b.tensors[1].offset = 40;
    add("offset not aligned", b, "offset 40 is not a multiple of the alignment 32");
  }
  {
    Builder b = valid;
    std::vector<uint8_t> img = b.Build();
    img.resize(img.size() - 1);
    cases.push_back({"tensor data past EOF", img, "lies past the end of the file"});
  }
  {
    Builder b = valid;
    b.tensors[0].ne = {1024, 1024};
    add("tensor bigger than file", b, "tensor 'w.f32': data [0, +4194304 bytes)");
  }
  {
    Builder b = valid;
    b.tensors[2].offset = 0;
    add("overlapping tensors", b, "overlaps tensor 'w.f32'");
  }
  {
    Builder b = valid;
    b.tensors[2].name = "w.f32";
    add("duplicate tensor name", b, "duplicate tensor name 'w.f32'");
  }
  {
    Builder b = valid;
    b.kvs.push_back(KvStr("t.u8", "again"));
    add("duplicate key", b, "duplicate key 't.u8'");
  }
  {
    Builder b = valid;
    b.kvs.push_back(KvNum<uint32_t>("general.alignment", kU32, 0));
    add("alignment 0", b, "general.alignment 0 is not a power of two");
  }
  {
    Builder b = valid;
    b.kvs.push_back(KvNum<uint32_t>("general.alignment", kU32, 48));
    add("alignment 48", b, "general.alignment 48 is not a power of two");
  }
  {
    Builder b = valid;
    b.kvs.push_back(KvNum<uint64_t>("general.alignment", kU64, 32));
    add("alignment wrong type", b, "general.alignment has type UINT64, expected UINT32");
  }
  {
    Builder b = valid;
    b.tensors[3].ne = {48, 2};
    add("ne[0] not a multiple of the block", b,
        "ne[0] = 48 is not a multiple of the block size 32");
  }
  {
    Builder b;
    b.tensors.push_back({"q", {300}, kTypeQ4_K, std::vector<uint8_t>(144), std::nullopt});
    add("ne[0] not a multiple of 256", b, "tensor 'q' (Q4_K): ne[0] = 300");
  }
  {
    Builder b;
    std::vector<uint8_t> v = ArrayBody(kU8, 0, {});
    for (int i = 0; i < 9; ++i) v = ArrayBody(kArr, 1, v);  // 10 levels of arrays
    b.kvs.push_back({"deep", kArr, v});
    add("too deep nesting", b, "nested deeper than 8");
  }
  {
    Builder b = valid;
    b.tensor_count = 1ull << 60;
    add("tensor count huge", b, "tensor count 1152921504606846976 exceeds");
  }
  {
    Builder b = valid;
    b.kv_count = 1ull << 62;
    add("kv count huge", b, "metadata key-value count");
  }
  {
    Builder b = valid;
    b.kv_count = valid.kvs.size() + 1;  // reads into the tensor infos
    add("kv count too big", b, "at byte");
  }
  return cases;
}

TEST(GgufTest, MustRejectCorpus) {
  const std::vector<BadCase> cases = MustRejectCorpus();
  ASSERT_GE(cases.size(), 15u);
  for (const BadCase& c : cases) {
    auto r = ParseGguf(c.image, "bad.gguf");
    ASSERT_FALSE(r.ok()) << c.label;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidData) << c.label;
    const std::string& msg = r.status().message();
    EXPECT_EQ(msg.rfind("bad.gguf: at byte ", 0), 0u) << c.label << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.label << ": " << msg;
  }
}

// Everything a caller might do with a reader that parsed.
void Exercise(const ModelReader& m) {
  for (const TensorInfo& t : m.tensors()) {
    const auto raw = m.RawBytes(t);
    EXPECT_EQ(raw.size(), t.nbytes);
    auto v = m.Read(t);
    if (v.ok()) {
      EXPECT_EQ(static_cast<int64_t>(v->data.size()), t.numel());
    }
  }
  (void)m.metadata().dump();
  for (const auto& [key, value] : m.metadata().items()) {
    (void)GgufStringArray(m, key);
    (void)GgufFloatArray(m, key);
    (void)GgufIntArray(m, key);
  }
}

TEST(GgufTest, FuzzNeverCrashes) {
  const std::vector<uint8_t> base = ValidBuilder().Build();
  std::mt19937_64 rng(20240611);
  const uint64_t interesting[] = {0,          1,          2,     4,           5,
                                  8,          9,          13,    31,          32,
                                  33,         64,         255,   0x7FFFFFFF,  0xFFFFFFFF,
                                  1ull << 32, 1ull << 63, ~0ull, base.size(), base.size() - 8};
  int accepted = 0;
  for (int iter = 0; iter < 10000; ++iter) {
    std::vector<uint8_t> img = base;
    const int kind = static_cast<int>(rng() % 4);
    const auto pos = [&] {
      // Favour the header, metadata and tensor infos over the tensor data.
      return static_cast<size_t>(rng() % 2 ? rng() % std::min<size_t>(img.size(), 1200)
                                           : rng() % img.size());
    };
    if (kind == 0 || kind == 3) {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) img[pos()] = static_cast<uint8_t>(rng());
    }
    if (kind == 1) {
      const size_t at = pos();
      const uint64_t v = interesting[rng() % std::size(interesting)];
      const size_t width = rng() % 2 ? 8 : 4;
      if (at + width <= img.size()) std::memcpy(img.data() + at, &v, width);
    }
    if (kind == 2 || kind == 3) img.resize(rng() % (img.size() + 1));
    auto r = ParseGguf(img, "fuzz.gguf");
    if (r.ok()) {
      ++accepted;
      Exercise(**r);
    } else {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  // Some mutations hit tensor data or metadata values only and still parse.
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 10000);
}

// The real 260K-parameter TinyStories Llama model.
class GgufStoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf";
    if (!fs::exists(path_)) GTEST_SKIP() << "real model not found at " << path_;
    auto r = OpenGguf(path_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    reader_ = std::move(r).value();
  }
  std::string path_;
  std::unique_ptr<ModelReader> reader_;
};

TEST_F(GgufStoriesTest, Metadata) {
  const nlohmann::json& md = reader_->metadata();
  EXPECT_EQ(md["gguf.version"], 3);
  EXPECT_EQ(md["general.architecture"], "llama");
  EXPECT_EQ(md["llama.block_count"], 5);
  EXPECT_EQ(md["llama.embedding_length"], 64);
  EXPECT_EQ(md["llama.feed_forward_length"], 172);
  EXPECT_EQ(md["llama.attention.head_count"], 8);
  EXPECT_EQ(md["llama.attention.head_count_kv"], 4);
  EXPECT_EQ(md["tokenizer.ggml.tokens"]["length"], 512);
  auto tokens = GgufStringArray(*reader_, "tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(tokens->size(), 512u);
  auto scores = GgufFloatArray(*reader_, "tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  EXPECT_EQ(scores->size(), 512u);
  auto types = GgufIntArray(*reader_, "tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok()) << types.status().ToString();
  EXPECT_EQ(types->size(), 512u);
}

TEST_F(GgufStoriesTest, Tensors) {
  int64_t params = 0;
  bool ffn_172 = false;
  for (const TensorInfo& t : reader_->tensors()) {
    EXPECT_EQ(t.dtype, DType::kF32) << t.name;
    EXPECT_EQ(t.nbytes, static_cast<uint64_t>(t.numel()) * 4) << t.name;
    params += t.numel();
    if (t.name.find("ffn") != std::string::npos && t.shape.size() == 2 &&
        (t.shape[0] == 172 || t.shape[1] == 172)) {
      ffn_172 = true;
    }
  }
  EXPECT_TRUE(ffn_172);
  EXPECT_EQ(reader_->tensors().size(), 48u);  // 3 + 5 layers x 9
  // output.weight is stored although it is a byte copy of token_embd.weight (tied classifier):
  // 292,800 stored values, 260,032 distinct parameters.
  const TensorInfo* out = reader_->Find("output.weight");
  const TensorInfo* emb = reader_->Find("token_embd.weight");
  ASSERT_NE(out, nullptr);
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(params, 292800);
  EXPECT_EQ(params - out->numel(), 260032);
  ASSERT_EQ(reader_->RawBytes(*out).size(), reader_->RawBytes(*emb).size());
  EXPECT_EQ(
      std::memcmp(reader_->RawBytes(*out).data(), reader_->RawBytes(*emb).data(), emb->nbytes), 0);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  const TensorInfo* down = reader_->Find("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{64, 172}));

  for (const char* name : {"token_embd.weight", "blk.4.ffn_up.weight", "output_norm.weight"}) {
    const TensorInfo* t = reader_->Find(name);
    ASSERT_NE(t, nullptr) << name;
    auto v = reader_->Read(*t);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    ASSERT_EQ(static_cast<int64_t>(v->data.size()), t->numel());
    for (float x : v->data) ASSERT_TRUE(std::isfinite(x)) << name;
    const auto raw = reader_->RawBytes(*t);
    ASSERT_EQ(raw.size(), v->data.size() * 4);
    EXPECT_EQ(std::memcmp(raw.data(), v->data.data(), raw.size()), 0) << name;
  }
}

TEST_F(GgufStoriesTest, InMemoryCopyMatchesMapping) {
  auto bytes = ReadFileBytes(path_);
  ASSERT_TRUE(bytes.ok());
  auto r = ParseGguf(*bytes, "stories260K.gguf");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)->tensors().size(), reader_->tensors().size());
  for (size_t i = 0; i < reader_->tensors().size(); ++i) {
    EXPECT_EQ((*r)->tensors()[i].offset, reader_->tensors()[i].offset);
  }
  EXPECT_EQ((*r)->metadata(), reader_->metadata());
}

}  // namespace
}  // namespace owf
