#include "owf/formats/spec.h"

#include <gtest/gtest.h>

namespace owf {
namespace {

TEST(Spec, CanonicalFormParsesBackToTheSameSpec) {
  const char* specs[] = {
      "int4@64:absmax:bf16", "int4(sym)@32:absmax:bf16", "int2.3219@channel:rms:fp16",
      "e2m1@32:absmax:e8m0", "e2m1(rz)@32:absmax:e4m3", "e5m2(ri)", "nf4@64:absmax:bf16",
      "sf4@2x2:signmax:fp32", "lut(-1,-0.25,0.5,1)@tensor:absmax:bf16",
      "crd4(t,df=7)@64:absmax:bf16", "crd4(t)@64:absmax:bf16+search",
      "crd3(normal,mode=asym)@channel:rms:bf16", "crd3(laplace,mode=zero,power=0.5)@128:absmax:bf16",
      "crd4(t,df=5,mode=asym)@64:signmax:bf16", "lloyd4@64:absmax:bf16", "lloyd3.5@tensor:rms:bf16",
      "grid(3.5)@tensor:absmax:bf16+entropy(ideal)", "bf16", "fp16", "fp32",
      "e2m1@channel:absmax:bf16+outliers(0.001,bf16)", "int4@64:absmax:bf16+search+outliers(0.01,fp32)",
      "crd4(normal)@64:absmax:bf16+entropy(ideal)", "grid(3.5)@tensor:absmax:bf16+entropy(rans)",
      "lloyd5@tensor:rms:bf16+entropy(huffman)", "e2m1@32:absmax:e8m0+rotate(hadamard)",
      "int4@64:absmax:bf16+search+rotate(hadamard,42)+outliers(0.001,bf16)",
      "lloyd4@256:opt:fp16/32:u6", "int4@64:optmin:bf16", "lloyd2@256:optmin:fp16/16:u4:u4",
      "nf4@128:opt:e4m3/16:h3", "nf4@128:opt:e4m3/16:m3", "crd4(normal)@channel:opt:bf16", "int8@256:opt:fp16/16:u7+rotate(hadamard)"};
  for (const char* text : specs) {
    auto spec = ParseSpec(text);
    ASSERT_TRUE(spec.ok()) << text << ": " << spec.status().message();
    EXPECT_EQ(ToString(*spec), text);
    auto again = ParseSpec(ToString(*spec));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *spec);
  }
}

TEST(Spec, DefaultsAreFilledIn) {
  auto spec = ParseSpec("nf4@64:absmax");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(ToString(*spec), "nf4@64:absmax:bf16");
  EXPECT_EQ(spec->scaling->block_cols, 64);
  EXPECT_EQ(spec->scaling->block_rows, 1);
  // Modifiers in any order print in canonical order; lut values are sorted.
  EXPECT_EQ(ToString(*ParseSpec("int4@64:absmax+outliers(0.5)+search")),
            "int4@64:absmax:bf16+search+outliers(0.5,bf16)");
  EXPECT_EQ(ToString(*ParseSpec("lut(1,-1,0)")), "lut(-1,0,1)");
  EXPECT_EQ(ToString(*ParseSpec("crd4(t,mode=sym,df=7.5)")), "crd4(t,df=7.5)");
}

struct BadSpec {
  const char* text;
  const char* expected;  // substring of the message
  int column;            // 1-based column the caret points at, 0 = not positional
};

TEST(Spec, ErrorsPointAtTheOffendingCharacter) {
  const BadSpec cases[] = {
      {"", "expected an element format", 1},
      {"int", "expected a number", 4},
      {"int0.5", "int bits must be in [1, 16]", 4},
      {"int4(symm)", "expected ')'", 9},
      {"e1m2", "exponent bits must be 2..7", 2},
      {"e2x1", "expected 'm'", 3},
      {"e2m1(up)", "expected a rounding", 6},
      {"crd4(gauss)", "expected a distribution", 6},
      {"crd4(t,df=x)", "expected a number", 11},
      {"crd4(t,df=2)", "df must be > 2", 11},
      {"crd4(normal,df=7)", "df= applies to crd<b>(t,...) only", 13},
      {"crd4(t,foo=1)", "expected 'df=', 'mode=' or 'power='", 8},
      {"crd4.5(t)", "crd bits must be an integer", 4},
      {"nf4@0:absmax", "block sizes must be positive", 5},
      {"nf4@-64:absmax", "block sizes must be positive", 5},
      {"nf4@64", "expected ':'", 7},
      {"nf4@64:max", "expected a scaling", 8},
      {"nf4@64:absmax:bf17", "expected a scale format", 15},
      {"nf4@64:absmax+serch", "expected a modifier", 15},
      {"nf4+outliers(1.5)", "outlier fraction must be in (0, 1)", 14},
      {"nf4+entropy(zstd)", "expected a coder", 13},
      {"nf4 @64:absmax", "expected '@', '+' or the end", 4},
      {"lut(1,1)", "distinct", 8},
      {"foo4", "expected an element format", 1},
      {"nf4+search+search", "given twice", 12},
      {"nf4+rotate(dct)", "expected 'hadamard'", 12},
      {"nf4+rotate(hadamard,-1)", "the rotation seed must be >= 0", 21},
      {"nf4@256:opt/0:u4", "sub-block size must be a positive integer", 13},
      {"nf4@256:opt/16:x4", "expected ':u<bits>'", 15},
      {"nf4@256:opt/16:u17", "sub-scale bits must be 1..16", 17},
      {"nf4@256:optmin/16:u4:u0", "sub-block min bits must be 1..16", 23},
  };
  for (const auto& c : cases) {
    auto spec = ParseSpec(c.text);
    ASSERT_FALSE(spec.ok()) << c.text;
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    const std::string& m = spec.status().message();
    EXPECT_NE(m.find(c.expected), std::string::npos) << c.text << " -> " << m;
    if (c.column) {
      EXPECT_NE(m.find("at column " + std::to_string(c.column) + ":"), std::string::npos) << c.text << " -> " << m;
      // The caret line puts '^' under that column.
      const size_t caret = m.rfind('^');
      const size_t line_start = m.rfind('\n', caret) + 1;
      EXPECT_EQ(caret - line_start, static_cast<size_t>(c.column + 1)) << m;
    }
  }
}

TEST(Spec, CombinationsThatCannotWorkAreRejected) {
  for (const char* text : {"bf16@64:absmax", "grid(3)@tensor:absmax", "lloyd4+search",
                           "nf4@64:signmax:e8m0", "grid(3)+entropy(ideal)+search", "fp16+search",
                           "nf4@64:absmax/16:u4", "nf4@64:opt/48:u4", "nf4@64:opt/64:u4", "nf4@64:optmin/16:u4",
                           "nf4@64:opt/16:u4:u4", "nf4@tensor:opt", "nf4@2x64:opt", "nf4@64:opt+search",
                           "grid(3)@64:opt+entropy(rans)", "nf4@64:opt+entropy(ideal)", "crd4(t)@64:opt",
                           "e2m1(rz)@32:opt", "fixed4x", "fixed4@64:absmax"}) {
    auto spec = ParseSpec(text);
    EXPECT_FALSE(spec.ok()) << text;
  }
}

TEST(Spec, PresetsExpandToTheirFullSpec) {
  ASSERT_GE(Presets().size(), 7u);
  for (const Preset& p : Presets()) {
    auto preset = ParseSpec(p.name);
    auto full = ParseSpec(p.spec);
    ASSERT_TRUE(preset.ok() && full.ok()) << p.name;
    EXPECT_EQ(*preset, *full) << p.name;
    EXPECT_EQ(ToString(*preset), p.spec) << "a preset's spec must be canonical";
    // Modifiers may follow a preset name.
    auto rotated = ParseSpec(std::string(p.name) + "+rotate(hadamard)");
    ASSERT_TRUE(rotated.ok()) << p.name;
    EXPECT_EQ(ToString(*rotated), std::string(p.spec) + "+rotate(hadamard)");
  }
  // fixed4.5 is not fixed4 followed by ".5".
  EXPECT_NE(*ParseSpec("fixed4.5"), *ParseSpec("fixed4"));
}

TEST(Spec, ScaleBitsPerElementCountsEveryLevel) {
  EXPECT_DOUBLE_EQ(*ScaleBitsPerElement(ParseSpec("nf4@64:absmax")->scaling.value()), 16.0 / 64);
  EXPECT_DOUBLE_EQ(*ScaleBitsPerElement(ParseSpec("nf4@256:opt:fp16/32:u6")->scaling.value()), 16.0 / 256 + 6.0 / 32);
  EXPECT_DOUBLE_EQ(*ScaleBitsPerElement(ParseSpec("nf4@256:optmin:fp16/16:u4:u4")->scaling.value()), 32.0 / 256 + 8.0 / 16);
  EXPECT_DOUBLE_EQ(*ScaleBitsPerElement(ParseSpec("nf4@32:optmin:bf16")->scaling.value()), 32.0 / 32);
  EXPECT_FALSE(ScaleBitsPerElement(ParseSpec("nf4@channel:opt")->scaling.value()).has_value());
}

}  // namespace
}  // namespace owf
