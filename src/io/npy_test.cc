#include "owf/io/npy.h"

#include <gtest/gtest.h>

#include <span>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "owf/io/file.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }

// Builds a .npy image by hand: magic, version, little-endian header length, the given header
// dict padded with spaces to `align` and ended by '\n' (or left exactly as given when
// `raw_header` is set), then `data`.
std::vector<uint8_t> MakeNpy(const std::string& dict, const std::string& data, int major = 1,
                             size_t align = 64, bool raw_header = false) {
  std::string out = "\x93NUMPY";
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  if (!raw_header) {
    const size_t unpadded = 8 + len_bytes + header.size() + 1;
    header.append((align - unpadded % align) % align, ' ');
    header.push_back('\n');
  }
  for (size_t i = 0; i < len_bytes; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xFF));
  }
  out += header;
  out += data;
  return Bytes(out);
}

std::string F32Data(const std::vector<float>& v) {
  std::string s;
  for (const float f : v) {
    const uint32_t b = std::bit_cast<uint32_t>(f);
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((b >> (8 * i)) & 0xFF));
  }
  return s;
}

std::string Dict(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

Tensor MakeTensor(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t;
  t.shape = std::move(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  t.data.resize(static_cast<size_t>(t.numel()));
  for (float& x : t.data) x = dist(rng);
  return t;
}

void ExpectBitEqual(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape, b.shape);
  ASSERT_EQ(a.data.size(), b.data.size());
  for (size_t i = 0; i < a.data.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(a.data[i]), std::bit_cast<uint32_t>(b.data[i])) << i;
  }
}

// A fresh directory under the gtest temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::path(::testing::TempDir()) /
            ("owf_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::vector<std::string> Entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
    return names;
  }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------------------------
// Serialisation and round trips.

TEST(SerializeNpy, HeaderIsNumpyStyleAndAligned) {
  Tensor t;
  t.shape = {2, 3};
  t.data = {1, 2, 3, 4, 5, 6};
  const std::string img = SerializeNpy(t);
  ASSERT_GE(img.size(), 10u);
  EXPECT_EQ(img.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = static_cast<uint8_t>(img[8]) | (static_cast<uint8_t>(img[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(img.size(), 10 + header_len + 6 * 4);
  const std::string header = img.substr(10, header_len);
  EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0), 0u)
      << header;
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(img.substr(10 + header_len), F32Data(std::vector<float>(t.data.begin(), t.data.end())));
}

TEST(SerializeNpy, OneDAndScalarShapes) {
  Tensor v;
  v.shape = {7};
  v.data.assign(7, 0.5f);
  EXPECT_NE(SerializeNpy(v).find("'shape': (7,), }"), std::string::npos);
  Tensor s;
  s.data = {3.0f};
  EXPECT_NE(SerializeNpy(s).find("'shape': (), }"), std::string::npos);
}

TEST(SerializeNpy, UsesVersion2WhenHeaderExceeds64K) {
  Tensor t;
  t.shape.assign(30000, 1);  // "1, " x 30000 = 90000 header bytes.
  t.data = {1.0f};
  const std::string img = SerializeNpy(t);
  ASSERT_GE(img.size(), 12u);
  EXPECT_EQ(img[6], 2);
  EXPECT_EQ(img[7], 0);
  uint32_t header_len = 0;
  for (int i = 0; i < 4; ++i)
    header_len |= static_cast<uint32_t>(static_cast<uint8_t>(img[8 + i])) << (8 * i);
  EXPECT_GT(header_len, 65535u);
  EXPECT_EQ((12 + header_len) % 64, 0u);
  EXPECT_EQ(img.size(), 12 + header_len + 4);
  EXPECT_EQ(img[12 + header_len - 1], '\n');
  // owf itself refuses such a rank when reading, with a clear message.
  const auto r = ParseNpy(Bytes(img), "big.npy");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rank above 64"), std::string::npos) << r.status().message();
}

TEST(NpyRoundTrip, SeveralShapesInMemoryAndOnDisk) {
  const std::vector<std::vector<int64_t>> shapes = {
      {256, 1024}, {4, 5}, {17}, {1}, {2, 3, 4}, {}, {0}, {3, 0}, {0, 5, 2}, {1, 1, 1, 1, 3}};
  TempDir dir;
  uint32_t seed = 1;
  for (const auto& shape : shapes) {
    const Tensor t = MakeTensor(shape, seed++);
    SCOPED_TRACE(t.ShapeString());
    const auto parsed = ParseNpy(Bytes(SerializeNpy(t)), "mem.npy");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ExpectBitEqual(*parsed, t);

    const std::string path = (dir.path() / "t.npy").string();
    ASSERT_TRUE(WriteNpy(path, t).ok());
    const auto read = ReadNpy(path);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    ExpectBitEqual(*read, t);
    EXPECT_EQ(dir.Entries(), std::vector<std::string>{"t.npy"});  // no temporaries left
  }
}

TEST(NpyRoundTrip, SpecialValuesAreBitExact) {
  Tensor t;
  t.shape = {8};
  t.data = {0.0f,
            -0.0f,
            std::numeric_limits<float>::infinity(),
            -std::numeric_limits<float>::infinity(),
            std::numeric_limits<float>::denorm_min(),
            std::numeric_limits<float>::max(),
            std::bit_cast<float>(0x7FC00123u),
            std::bit_cast<float>(0xFF800001u)};
  const auto r = ParseNpy(Bytes(SerializeNpy(t)), "special.npy");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectBitEqual(*r, t);  // NaN/Inf pass through: the caller decides what to do with them.
}

// ---------------------------------------------------------------------------------------------
// Accepted variants of the header.

TEST(ParseNpy, AcceptsHeaderVariants) {
  const std::string data = F32Data({1, 2, 3, 4, 5, 6});
  const std::vector<std::string> dicts = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}",
      "{'shape': (2, 3), 'descr': '<f4', 'fortran_order': False}",
      "{\"fortran_order\": False, \"shape\": (2,3,), \"descr\": \"<f4\",}",
      "{'descr':'|f4','fortran_order':False,'shape':(2,3)}",
      "{'descr': '=f4', 'fortran_order': False, 'shape': ( 2 , 3 ) }",
      "  {\t'descr': '<f4',  'fortran_order' : False , 'shape' : (2, 3) ,\t}  ",
  };
  for (const auto& dict : dicts) {
    SCOPED_TRACE(dict);
    for (size_t align : {64u, 16u, 1u}) {
      const auto r = ParseNpy(MakeNpy(dict, data, 1, align), "v.npy");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->shape, (std::vector<int64_t>{2, 3}));
      EXPECT_EQ(r->data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
    }
  }
}

TEST(ParseNpy, AcceptsVersions2And3) {
  for (int major : {2, 3}) {
    const auto r = ParseNpy(MakeNpy(Dict("<f4", "(3,)"), F32Data({1, -2, 3}), major), "v.npy");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->shape, std::vector<int64_t>{3});
    EXPECT_EQ(r->data, (std::vector<float>{1, -2, 3}));
  }
}

TEST(ParseNpy, ScalarAndEmpty) {
  auto r = ParseNpy(MakeNpy(Dict("<f4", "()"), F32Data({42.5f})), "s.npy");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->shape.empty());
  EXPECT_EQ(r->data, std::vector<float>{42.5f});

  r = ParseNpy(MakeNpy(Dict("<f8", "(0, 1024)"), ""), "e.npy");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{0, 1024}));
  EXPECT_TRUE(r->data.empty());
}

// ---------------------------------------------------------------------------------------------
// float16 and float64 inputs, bytes written by hand.

TEST(ParseNpy, Float16DecodesExactly) {
  const std::vector<std::pair<uint16_t, float>> cases = {
      {0x3C00, 1.0f},       {0xC000, -2.0f},    {0x7BFF, 65504.0f},   {0x0001, 0x1p-24f},
      {0x03FF, 0x3FFp-24f}, {0x0400, 0x1p-14f}, {0x3555, 0x555p-12f}, {0x7C00, INFINITY},
      {0xFC00, -INFINITY},  {0x0000, 0.0f},     {0x8000, -0.0f},      {0xBC01, -(1.0f + 0x1p-10f)},
  };
  std::string data;
  for (const auto& [h, f] : cases) {
    data.push_back(static_cast<char>(h & 0xFF));
    data.push_back(static_cast<char>(h >> 8));
  }
  data += std::string("\x00\x7E", 2);  // 0x7E00: a quiet NaN
  const auto r = ParseNpy(MakeNpy(Dict("<f2", "(13,)"), data), "h.npy");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->data.size(), 13u);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(r->data[i]), std::bit_cast<uint32_t>(cases[i].second))
        << "half 0x" << std::hex << cases[i].first;
  }
  EXPECT_TRUE(std::isnan(r->data[12]));
}

TEST(ParseNpy, Float64DecodesWithCorrectRounding) {
  constexpr double kFltMax = std::numeric_limits<float>::max();
  const std::vector<std::pair<double, float>> cases = {
      {1.0, 1.0f},
      {-0.5, -0.5f},
      {0x1.5555555555555p-2, 0x1.555556p-2f},  // 1/3: rounds up in the last float bit
      {0x1.000001p0, 1.0f},                    // exact tie -> even
      {0x1.000003p0, 0x1.000004p0f},           // exact tie -> even (up)
      {0x1p-149, 0x1p-149f},                   // smallest float subnormal
      {0x1p-151, 0.0f},                        // underflow
      {-0.0, -0.0f},
      {kFltMax, std::numeric_limits<float>::max()},
      {kFltMax + 0x1p102, std::numeric_limits<float>::max()},  // below half an ulp
      {kFltMax + 0x1p103, INFINITY},                           // tie at overflow -> inf
      {1e300, INFINITY},
      {-1e300, -INFINITY},
      {INFINITY, INFINITY},
  };
  std::string data;
  for (const auto& [d, f] : cases) {
    const uint64_t b = std::bit_cast<uint64_t>(d);
    for (int i = 0; i < 8; ++i) data.push_back(static_cast<char>((b >> (8 * i)) & 0xFF));
  }
  const auto r = ParseNpy(MakeNpy(Dict("<f8", "(2, 7)"), data), "d.npy");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{2, 7}));
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(r->data[i]), std::bit_cast<uint32_t>(cases[i].second))
        << "double " << cases[i].first;
  }
}

// ---------------------------------------------------------------------------------------------
// The must-reject corpus.

struct BadCase {
  std::string label;
  std::vector<uint8_t> bytes;
  StatusCode code;
  std::string expect;  // a substring the message must contain
};

std::vector<BadCase> BadCorpus() {
  const std::string f4x6 = F32Data({1, 2, 3, 4, 5, 6});
  const auto good = MakeNpy(Dict("<f4", "(2, 3)"), f4x6);
  std::vector<BadCase> c;
  const auto kData = StatusCode::kInvalidData;
  const auto kUnsup = StatusCode::kUnsupported;

  c.push_back({"empty file", {}, kData, "too short"});
  c.push_back({"short preamble", Bytes("\x93NUMPY\x01"), kData, "too short"});
  {
    auto b = good;
    b[5] = 'X';
    c.push_back({"bad magic", b, kData, "not a .npy file: magic"});
  }
  c.push_back({"png", Bytes(std::string("\x89PNG\r\n\x1a\n\0\0\0\0", 12)), kData,
               "expected 93 4e 55 4d 50 59"});
  {
    auto b = good;
    b[6] = 4;
    c.push_back({"version 4.0", b, kUnsup, "unsupported .npy format version 4.0"});
    b[6] = 1;
    b[7] = 1;
    c.push_back({"version 1.1", b, kUnsup, "version 1.1"});
    b[6] = 0;
    b[7] = 0;
    c.push_back({"version 0.0", b, kUnsup, "version 0.0"});
  }
  {
    auto b = good;
    b[8] = 0xFF;
    b[9] = 0xFF;
    c.push_back(
        {"header length past EOF", b, kData, "header length 65535 at byte offset 8 runs past"});
  }
  c.push_back({"v2 header length 4G",
               Bytes(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff{}\n", 15)), kData,
               "header length 4294967295"});
  c.push_back({"v2 short preamble", Bytes(std::string("\x93NUMPY\x02\x00\x05\x00", 10)), kData,
               "too short for a version 2.0"});
  c.push_back({"zero header length", Bytes(std::string("\x93NUMPY\x01\x00\x00\x00", 10)), kData,
               "does not end with a newline"});
  c.push_back({"missing newline", MakeNpy(Dict("<f4", "(2, 3)") + "   ", f4x6, 1, 64, true), kData,
               "does not end with a newline"});
  c.push_back({"not a dict", MakeNpy("[1, 2, 3]", f4x6), kData, "expected '{'"});
  c.push_back({"unclosed dict",
               MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", f4x6), kData,
               "expected a quoted key or '}', found end of header"});
  c.push_back({"missing key shape", MakeNpy("{'descr': '<f4', 'fortran_order': False}", f4x6),
               kData, "missing key 'shape'"});
  c.push_back({"missing key descr", MakeNpy("{'fortran_order': False, 'shape': (2, 3)}", f4x6),
               kData, "missing key 'descr'"});
  c.push_back({"unknown key",
               MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'foo': 1}", f4x6),
               kData, "unknown header key 'foo'"});
  c.push_back(
      {"duplicate key",
       MakeNpy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", f4x6),
       kData, "duplicate header key 'descr'"});
  c.push_back({"missing colon",
               MakeNpy("{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3)}", f4x6), kData,
               "expected ':' after key 'descr'"});
  c.push_back({"unquoted key",
               MakeNpy("{descr: '<f4', 'fortran_order': False, 'shape': (2, 3)}", f4x6), kData,
               "expected a quoted key"});
  c.push_back(
      {"unterminated string", MakeNpy("{'descr': '<f4}", f4x6), kData, "unterminated string"});
  c.push_back({"backslash escape", MakeNpy(Dict("<f\\x34", "(2, 3)"), f4x6), kData, "backslash"});
  c.push_back({"garbage after dict", MakeNpy(Dict("<f4", "(2, 3)") + " x", f4x6), kData,
               "unexpected 'x' after the header dict"});
  c.push_back({"non-ASCII header", MakeNpy(Dict("<f4", "(2, 3)") + "\xc3\xa9", f4x6), kData,
               "non-ASCII or control byte 0xc3"});
  c.push_back({"NUL in header", MakeNpy(Dict("<f4", std::string("(2,\0 3)", 7)), f4x6), kData,
               "control byte 0x00"});
  c.push_back({"big-endian f4", MakeNpy(Dict(">f4", "(2, 3)"), f4x6), kUnsup,
               "unsupported dtype '>f4' (big-endian); owf reads little-endian"});
  c.push_back({"big-endian f8", MakeNpy(Dict(">f8", "(3,)"), std::string(24, '\0')), kUnsup,
               "'>f8' (big-endian)"});
  c.push_back({"int32", MakeNpy(Dict("<i4", "(2, 3)"), f4x6), kUnsup, "unsupported dtype '<i4'"});
  c.push_back({"bool", MakeNpy(Dict("|b1", "(6,)"), std::string(6, '\1')), kUnsup,
               "unsupported dtype '|b1'"});
  c.push_back({"complex64", MakeNpy(Dict("<c8", "(3,)"), f4x6), kUnsup, "unsupported dtype '<c8'"});
  c.push_back(
      {"bfloat16 by name", MakeNpy(Dict("<V2", "(12,)"), f4x6), kUnsup, "unsupported dtype '<V2'"});
  c.push_back({"long double", MakeNpy(Dict("<f16", "(1,)"), std::string(16, '\0')), kUnsup,
               "unsupported dtype '<f16'"});
  c.push_back({"structured dtype",
               MakeNpy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}", f4x6),
               kUnsup, "structured dtype"});
  c.push_back({"descr not a string",
               MakeNpy("{'descr': 4, 'fortran_order': False, 'shape': (6,)}", f4x6), kData,
               "expected a quoted string for 'descr'"});
  c.push_back({"fortran_order True",
               MakeNpy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", f4x6), kUnsup,
               "fortran_order True"});
  c.push_back({"fortran_order 0",
               MakeNpy("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", f4x6), kData,
               "expected True or False for 'fortran_order', found '0'"});
  c.push_back({"fortran_order Falsey",
               MakeNpy("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3)}", f4x6), kData,
               "found 'Falsey'"});
  c.push_back(
      {"negative dim", MakeNpy(Dict("<f4", "(-3, 2)"), f4x6), kData, "negative dimension -3"});
  c.push_back({"dim product overflow", MakeNpy(Dict("<f4", "(1099511627776, 1099511627776)"), f4x6),
               kData, "shape (1099511627776, 1099511627776) has more elements than fit in int64"});
  c.push_back({"bytes overflow", MakeNpy(Dict("<f8", "(4611686018427387904,)"), f4x6), kData,
               "size overflow"});
  c.push_back({"overflow before a zero dim",
               MakeNpy(Dict("<f4", "(4294967296, 4294967296, 0)"), ""), kData,
               "more elements than fit in int64"});
  c.push_back({"dim beyond int64", MakeNpy(Dict("<f4", "(99999999999999999999,)"), f4x6), kData,
               "does not fit in int64"});
  c.push_back({"shape not a tuple", MakeNpy(Dict("<f4", "(6)"), f4x6), kData,
               "'shape' (6) is not a tuple"});
  c.push_back({"shape is a list", MakeNpy(Dict("<f4", "[2, 3]"), f4x6), kData,
               "expected a tuple '(' for 'shape'"});
  c.push_back({"float dim", MakeNpy(Dict("<f4", "(2.0, 3)"), f4x6), kData,
               "expected ',' or ')' in 'shape', found '.'"});
  c.push_back({"hex dim", MakeNpy(Dict("<f4", "(0x6,)"), f4x6), kData, "found 'x'"});
  c.push_back({"leading zero dim", MakeNpy(Dict("<f4", "(06,)"), f4x6), kData, "leading zero"});
  c.push_back({"double comma in shape", MakeNpy(Dict("<f4", "(2,, 3)"), f4x6), kData,
               "expected an integer in 'shape', found ','"});
  {
    std::string shape = "(";
    for (int i = 0; i < 1000; ++i) shape += "1, ";
    shape += ")";
    c.push_back(
        {"absurd rank", MakeNpy(Dict("<f4", shape), F32Data({1})), kUnsup, "rank above 64"});
  }
  c.push_back({"data truncated", MakeNpy(Dict("<f4", "(256, 1024)"), std::string(1000, '\0')),
               kData, "is 1000 bytes, shape (256, 1024) float32 needs 1048576 (truncated)"});
  c.push_back({"data truncated by one byte", MakeNpy(Dict("<f2", "(2, 3)"), std::string(11, '\0')),
               kData, "at byte offset 128 is 11 bytes, shape (2, 3) float16 needs 12"});
  c.push_back({"trailing garbage", MakeNpy(Dict("<f4", "(2, 3)"), f4x6 + "junk"), kData,
               "needs 24 (4 trailing bytes)"});
  c.push_back({"scalar with no data", MakeNpy(Dict("<f4", "()"), ""), kData,
               "is 0 bytes, shape () float32 needs 4"});
  c.push_back({"empty with data", MakeNpy(Dict("<f4", "(0,)"), "abcd"), kData,
               "shape (0,) float32 needs 0 (4 trailing bytes)"});
  c.push_back(
      {"no data at all", MakeNpy(Dict("<f4", "(2, 3)"), ""), kData, "needs 24 (truncated)"});
  return c;
}

TEST(ParseNpy, RejectsMalformedCorpus) {
  const auto corpus = BadCorpus();
  ASSERT_GE(corpus.size(), 15u);
  for (const auto& bad : corpus) {
    SCOPED_TRACE(bad.label);
    const auto r = ParseNpy(bad.bytes, "x.npy");
    ASSERT_FALSE(r.ok());
    const std::string& msg = r.status().message();
    EXPECT_EQ(r.status().code(), bad.code) << r.status().ToString();
    EXPECT_EQ(msg.rfind("x.npy: ", 0), 0u) << "message does not name the file: " << msg;
    EXPECT_NE(msg.find(bad.expect), std::string::npos)
        << "message: " << msg << "\nexpected to contain: " << bad.expect;
  }
}

TEST(ParseNpy, ErrorsReportByteOffsets) {
  const auto r = ParseNpy(
      MakeNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'foo': 1}", ""), "o.npy");
  ASSERT_FALSE(r.ok());
  // 10-byte preamble + 58 characters before 'foo'.
  EXPECT_NE(r.status().message().find("at byte offset 68: unknown header key 'foo'"),
            std::string::npos)
      << r.status().message();
}

TEST(ParseNpy, EveryTruncationIsRejected) {
  Tensor t = MakeTensor({3, 5}, 7);
  const std::vector<uint8_t> img = Bytes(SerializeNpy(t));
  for (size_t n = 0; n < img.size(); ++n) {
    const auto r = ParseNpy(std::span<const uint8_t>(img.data(), n), "cut.npy");
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes was accepted";
  }
  // Same with the exact-size allocation, so that sanitizers catch any over-read.
  for (size_t n = 0; n < img.size(); ++n) {
    std::vector<uint8_t> prefix(img.begin(), img.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(ParseNpy(prefix, "cut.npy").ok());
  }
}

TEST(ParseNpy, RandomMutationsNeverCrash) {
  Tensor t = MakeTensor({2, 3}, 9);
  const std::vector<uint8_t> img = Bytes(SerializeNpy(t));
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> m = img;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly mutate the preamble and header, where the parser lives.
      const size_t pos = rng() % 4 ? rng() % 64 : rng() % m.size();
      m[pos] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) m.resize(rng() % (m.size() + 1));
    const auto r = ParseNpy(m, "fuzz.npy");
    if (r.ok()) {
      ++accepted;
      ASSERT_EQ(static_cast<int64_t>(r->data.size()), r->numel());
    } else {
      ASSERT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_GT(accepted, 0);  // harmless mutations (padding, data bytes) still parse
}

// ---------------------------------------------------------------------------------------------
// Files.

TEST(ReadNpy, MissingFileIsIoErrorNamingPath) {
  TempDir dir;
  const std::string path = (dir.path() / "nope.npy").string();
  const auto r = ReadNpy(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("No such file or directory"), std::string::npos)
      << r.status().message();
}

TEST(ReadNpy, ParseErrorsNameThePath) {
  TempDir dir;
  const std::string path = (dir.path() / "bad.npy").string();
  ASSERT_TRUE(WriteFileAtomic(path, "\x93NUMPY\x01").ok());
  const auto r = ReadNpy(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidData);
  EXPECT_EQ(r.status().message().rfind(path + ": ", 0), 0u) << r.status().message();
}

TEST(WriteNpy, NonexistentDirectoryFailsAndLeavesNothing) {
  TempDir dir;
  const fs::path missing = dir.path() / "no_such_dir";
  const std::string path = (missing / "x.npy").string();
  const Status s = WriteNpy(path, MakeTensor({4, 4}, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_TRUE(dir.Entries().empty());
}

TEST(WriteNpy, ReplacesExistingFileAtomically) {
  TempDir dir;
  const std::string path = (dir.path() / "w.npy").string();
  ASSERT_TRUE(WriteNpy(path, MakeTensor({10, 10}, 1)).ok());
  const Tensor second = MakeTensor({3}, 2);
  ASSERT_TRUE(WriteNpy(path, second).ok());
  const auto r = ReadNpy(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectBitEqual(*r, second);
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"w.npy"});
}

TEST(WriteNpy, RejectsInconsistentTensor) {
  TempDir dir;
  const std::string path = (dir.path() / "bad.npy").string();
  Tensor t;
  t.shape = {2, 3};
  t.data = {1, 2, 3};
  Status s = WriteNpy(path, t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("has 6 elements but the tensor holds 3"), std::string::npos)
      << s.message();
  t.shape = {-1, -3};
  s = WriteNpy(path, t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(dir.Entries().empty());
}

TEST(WriteFileAtomic, RenameFailureRemovesTemporary) {
  TempDir dir;
  // The target is a non-empty directory: the temporary is written, but rename() must fail.
  const fs::path target = dir.path() / "target";
  fs::create_directories(target / "child");
  const Status s = WriteFileAtomic(target.string(), "hello");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("rename"), std::string::npos) << s.message();
  EXPECT_EQ(dir.Entries(), std::vector<std::string>{"target"});
  EXPECT_TRUE(fs::is_directory(target / "child"));
}

TEST(ReadFileBytes, ReadsExactContents) {
  TempDir dir;
  const std::string path = (dir.path() / "b.bin").string();
  std::string contents;
  for (int i = 0; i < 300000; ++i) contents.push_back(static_cast<char>(i * 7));
  ASSERT_TRUE(WriteFileAtomic(path, contents).ok());
  const auto r = ReadFileBytes(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, Bytes(contents));
  ASSERT_TRUE(WriteFileAtomic(path, "").ok());
  const auto empty = ReadFileBytes(path);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ReadFileBytes, DirectoryIsIoError) {
  TempDir dir;
  const auto r = ReadFileBytes(dir.path().string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find(dir.path().string()), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The shared golden data (written by NumPy).

TEST(ReadNpy, GoldenNormal) {
  const std::string path = std::string(OWF_SHARED_DIR) + "/golden/data/normal.npy";
  if (!fs::exists(path)) GTEST_SKIP() << "golden file not found at " << path << "; skipping";
  const auto r = ReadNpy(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{256, 1024}));
  ASSERT_EQ(r->data.size(), 256u * 1024u);
  double sum = 0, sum_sq = 0;
  for (const float x : r->data) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum_sq += static_cast<double>(x) * x;
  }
  const double n = static_cast<double>(r->data.size());
  const double mean = sum / n;
  const double std = std::sqrt(sum_sq / n - mean * mean);
  // 0.02 * N(0, 1): the standard error of the mean is 0.02 / 512 ~ 4e-5.
  EXPECT_LT(std::fabs(mean), 5e-4) << "mean " << mean;
  EXPECT_NEAR(std, 0.02, 0.02 * 0.03) << "std " << std;
  // Re-serialising gives back the same values bit for bit.
  const auto again = ParseNpy(Bytes(SerializeNpy(*r)), "again.npy");
  ASSERT_TRUE(again.ok());
  ExpectBitEqual(*again, *r);
}

}  // namespace
}  // namespace owf
