// Recursive-descent parser and canonical printer for the format spec grammar (spec.h).
#include "owf/formats/spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

namespace owf {
namespace {

constexpr double kOneThird = 1.0 / 3.0;

struct NamedScaleFormat {
  const char* name;
  ScaleFormat format;
  int bits;
  bool is_signed;
};
constexpr NamedScaleFormat kScaleFormats[] = {
    {"bf16", ScaleFormat::kBf16, 16, true}, {"fp16", ScaleFormat::kFp16, 16, true},
    {"fp32", ScaleFormat::kFp32, 32, true}, {"e8m0", ScaleFormat::kE8m0, 8, false},
    {"e4m3", ScaleFormat::kE4m3, 8, true},
};
constexpr std::pair<const char*, ScaleKind> kScaleKinds[] = {
    {"absmax", ScaleKind::kAbsmax}, {"signmax", ScaleKind::kSignmax}, {"rms", ScaleKind::kRms},
    {"opt", ScaleKind::kOpt},       {"optmin", ScaleKind::kOptMin}};

// The fixed-length presets (README "Fixed-length presets"): one row each. Bits are all-in for
// rows that are a multiple of 256 long.
const std::vector<Preset> kPresets = {
    {"fixed2", "lloyd2@256:optmin:fp16/16:u4:u4", "Q2_K (2.625 bits)"},
    {"fixed3", "lloyd3.1699@256:opt:fp16/32:u5", "Q3_K (3.4375 bits)"},
    {"fixed4", "lloyd4@128:opt:e4m3/16:m3", "IQ4_XS (4.25 bits)"},
    {"fixed4.5", "lloyd4.0875@128:opt:e4m3/16:u4", "Q4_K (4.5 bits)"},
    {"fixed5", "lloyd5.248@256:opt:fp16/32:u4", "Q5_K (5.5 bits)"},
    {"fixed6", "lloyd6.3219@256:opt:fp16/32:u4", "Q6_K (6.5625 bits)"},
    {"fixed8", "lloyd8@256:opt:fp16/16:u7", "Q8_0 (8.5 bits)"},
};
constexpr std::pair<const char*, Distribution> kDistributions[] = {
    {"normal", Distribution::kNormal}, {"laplace", Distribution::kLaplace},
    {"t", Distribution::kStudentT}};
constexpr std::pair<const char*, CrdMode> kModes[] = {
    {"sym", CrdMode::kSymmetric}, {"asym", CrdMode::kAsymmetric}, {"zero", CrdMode::kRepeatZero}};
constexpr std::pair<const char*, Rounding> kRoundings[] = {
    {"rn", Rounding::kNearest}, {"rz", Rounding::kToZero}, {"ri", Rounding::kToInf}};
constexpr std::pair<const char*, ElementFamily> kCastFamilies[] = {
    {"bf16", ElementFamily::kBf16}, {"fp16", ElementFamily::kFp16}, {"fp32", ElementFamily::kFp32}};

template <typename T, size_t N>
const char* NameOf(const std::pair<const char*, T> (&table)[N], T value) {
  for (const auto& [name, v] : table)
    if (v == value) return name;
  return "?";
}

template <typename T, size_t N>
std::string Alternatives(const std::pair<const char*, T> (&table)[N]) {
  std::string s;
  for (size_t i = 0; i < N; ++i) s += std::string(i ? (i + 1 == N ? " or " : ", ") : "") + "'" + table[i].first + "'";
  return s;
}

// Cursor over the spec text; every error points at a column.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<FormatSpec> Parse() {
    FormatSpec spec;
    OWF_RETURN_IF_ERROR(ParseElement(&spec.element));
    if (Accept("@")) {
      ScalingSpec scaling;
      OWF_RETURN_IF_ERROR(ParseScaling(&scaling));
      spec.scaling = scaling;
    }
    while (Accept("+")) OWF_RETURN_IF_ERROR(ParseModifier(&spec));
    if (pos_ != text_.size()) return Error("expected '@', '+' or the end of the spec");
    OWF_RETURN_IF_ERROR(Validate(spec));
    return spec;
  }

 private:
  Status Error(const std::string& what, size_t at) const {
    std::string msg = "spec '" + std::string(text_) + "': at column " + std::to_string(at + 1) +
                      ": " + what + "\n  " + std::string(text_) + "\n  " + std::string(at, ' ') + "^";
    return InvalidArgument(msg);
  }
  Status Error(const std::string& what) const { return Error(what, pos_); }

  bool Accept(std::string_view token) {
    if (text_.substr(pos_).starts_with(token)) {
      pos_ += token.size();
      return true;
    }
    return false;
  }
  Status Expect(std::string_view token) {
    if (Accept(token)) return Status::Ok();
    return Error("expected '" + std::string(token) + "'");
  }

  template <typename T, size_t N>
  Status ParseName(const std::pair<const char*, T> (&table)[N], const char* what, T* out) {
    // Longest match first so that e.g. "asym" is not read as "a".
    size_t best = 0;
    for (const auto& [name, v] : table) {
      const std::string_view n(name);
      if (text_.substr(pos_).starts_with(n) && n.size() > best) {
        best = n.size();
        *out = v;
      }
    }
    if (best == 0) return Error(std::string("expected ") + what + ": " + Alternatives(table));
    pos_ += best;
    return Status::Ok();
  }

  Status ParseNumber(double* out, const char* what) {
    const char* begin = text_.data() + pos_;
    const char* end = text_.data() + text_.size();
    auto [ptr, ec] = std::from_chars(begin, end, *out);
    if (ec != std::errc() || !std::isfinite(*out))
      return Error(std::string("expected a number (") + what + ")");
    pos_ += static_cast<size_t>(ptr - begin);
    return Status::Ok();
  }

  Status ParseInteger(int64_t* out, const char* what) {
    const char* begin = text_.data() + pos_;
    const char* end = text_.data() + text_.size();
    auto [ptr, ec] = std::from_chars(begin, end, *out);
    if (ec != std::errc()) return Error(std::string("expected a positive integer (") + what + ")");
    pos_ += static_cast<size_t>(ptr - begin);
    return Status::Ok();
  }

  Status ParseBits(double* bits, double lo, double hi, const char* family) {
    const size_t at = pos_;
    OWF_RETURN_IF_ERROR(ParseNumber(bits, "bits per element"));
    if (*bits < lo || *bits > hi)
      return Error(std::string(family) + " bits must be in [" + FormatNumber(lo) + ", " +
                       FormatNumber(hi) + "], got " + FormatNumber(*bits),
                   at);
    return Status::Ok();
  }

  Status ParseElement(ElementSpec* e) {
    for (const auto& [name, family] : kCastFamilies) {
      if (Accept(name)) {
        e->family = family;
        return Status::Ok();
      }
    }
    if (Accept("nf4")) {
      e->family = ElementFamily::kNf4;
      return Status::Ok();
    }
    if (Accept("sf4")) {
      e->family = ElementFamily::kSf4;
      return Status::Ok();
    }
    if (Accept("int")) {
      e->family = ElementFamily::kInt;
      OWF_RETURN_IF_ERROR(ParseBits(&e->bits, 1, 16, "int"));
      if (Accept("(")) {
        OWF_RETURN_IF_ERROR(Expect("sym"));
        OWF_RETURN_IF_ERROR(Expect(")"));
        e->symmetric = true;
      }
      return Status::Ok();
    }
    if (Accept("lloyd")) {
      e->family = ElementFamily::kLloyd;
      return ParseBits(&e->bits, 1, 12, "lloyd");
    }
    if (Accept("grid(")) {
      e->family = ElementFamily::kGrid;
      OWF_RETURN_IF_ERROR(ParseBits(&e->bits, 0.5, 16, "grid"));
      return Expect(")");
    }
    if (Accept("lut(")) return ParseLut(e);
    if (Accept("crd")) return ParseCrd(e);
    if (text_.substr(pos_).starts_with("e")) return ParseFloat(e);
    return Error(
        "expected an element format: int<b>, e<E>m<M>, nf4, sf4, lut(...), crd<b>(...), "
        "lloyd<b>, grid(<b>), bf16, fp16 or fp32");
  }

  Status ParseFloat(ElementSpec* e) {
    ++pos_;  // 'e'
    e->family = ElementFamily::kFloat;
    int64_t exp = 0, man = 0;
    const size_t exp_at = pos_;
    OWF_RETURN_IF_ERROR(ParseInteger(&exp, "exponent bits"));
    OWF_RETURN_IF_ERROR(Expect("m"));
    const size_t man_at = pos_;
    OWF_RETURN_IF_ERROR(ParseInteger(&man, "mantissa bits"));
    if (exp < 2 || exp > 7)
      return Error("exponent bits must be 2..7 (e0/e1 formats are int<b>), got " +
                       std::to_string(exp), exp_at);
    if (man < 0 || man > 15 - exp)  // 1 + E + M <= 16, without overflowing on a huge M
      return Error("mantissa bits must be >= 0 with 1 + E + M <= 16", man_at);
    e->exponent_bits = static_cast<int>(exp);
    e->mantissa_bits = static_cast<int>(man);
    if (Accept("(")) {
      OWF_RETURN_IF_ERROR(ParseName(kRoundings, "a rounding", &e->rounding));
      OWF_RETURN_IF_ERROR(Expect(")"));
    }
    return Status::Ok();
  }

  Status ParseLut(ElementSpec* e) {
    e->family = ElementFamily::kLut;
    e->lut.clear();
    do {
      double v = 0;
      OWF_RETURN_IF_ERROR(ParseNumber(&v, "a codebook value"));
      e->lut.push_back(v);
    } while (Accept(","));
    const size_t close = pos_;
    OWF_RETURN_IF_ERROR(Expect(")"));
    if (e->lut.size() < 2 || e->lut.size() > 65536)
      return Error("lut(...) needs 2 to 65536 values", close);
    std::sort(e->lut.begin(), e->lut.end());
    if (std::adjacent_find(e->lut.begin(), e->lut.end()) != e->lut.end())
      return Error("lut(...) values must be distinct", close);
    return Status::Ok();
  }

  Status ParseCrd(ElementSpec* e) {
    e->family = ElementFamily::kCrd;
    const size_t bits_at = pos_;
    OWF_RETURN_IF_ERROR(ParseBits(&e->bits, 1, 12, "crd"));
    if (e->bits != std::floor(e->bits)) return Error("crd bits must be an integer", bits_at);
    OWF_RETURN_IF_ERROR(Expect("("));
    OWF_RETURN_IF_ERROR(ParseName(kDistributions, "a distribution", &e->dist));
    bool seen_df = false, seen_mode = false, seen_power = false;
    while (Accept(",")) {
      const size_t key_at = pos_;
      if (Accept("df=")) {
        if (seen_df) return Error("df given twice", key_at);
        if (e->dist != Distribution::kStudentT) return Error("df= applies to crd<b>(t,...) only", key_at);
        double df = 0;
        OWF_RETURN_IF_ERROR(ParseNumber(&df, "degrees of freedom"));
        if (df <= 2) return Error("df must be > 2 (finite variance)", key_at + 3);
        e->df = df;
        seen_df = true;
      } else if (Accept("mode=")) {
        if (seen_mode) return Error("mode given twice", key_at);
        OWF_RETURN_IF_ERROR(ParseName(kModes, "a mode", &e->mode));
        seen_mode = true;
      } else if (Accept("power=")) {
        if (seen_power) return Error("power given twice", key_at);
        OWF_RETURN_IF_ERROR(ParseNumber(&e->power, "density exponent"));
        if (e->power < 0 || e->power > 4) return Error("power must be in [0, 4]", key_at + 6);
        seen_power = true;
      } else {
        return Error("expected 'df=', 'mode=' or 'power='");
      }
    }
    return Expect(")");
  }

  Status ParseScaling(ScalingSpec* s) {
    if (Accept("tensor")) {
      s->block = BlockKind::kTensor;
    } else if (Accept("channel")) {
      s->block = BlockKind::kChannel;
    } else {
      const size_t at = pos_;
      int64_t n = 0;
      OWF_RETURN_IF_ERROR(ParseInteger(&n, "block size, or 'tensor' / 'channel'"));
      s->block = BlockKind::kBlock;
      s->block_rows = 1;
      s->block_cols = n;
      if (Accept("x")) {
        s->block_rows = n;
        OWF_RETURN_IF_ERROR(ParseInteger(&s->block_cols, "block columns"));
      }
      if (s->block_rows <= 0 || s->block_cols <= 0 || s->block_rows > (1 << 24) ||
          s->block_cols > (1 << 24))
        return Error("block sizes must be positive integers up to 2^24", at);
    }
    OWF_RETURN_IF_ERROR(Expect(":"));
    OWF_RETURN_IF_ERROR(ParseName(kScaleKinds, "a scaling", &s->kind));
    if (Accept(":")) {
      const size_t at = pos_;
      bool found = false;
      for (const auto& f : kScaleFormats) {
        if (Accept(f.name)) {
          s->format = f.format;
          found = true;
          break;
        }
      }
      if (!found) return Error("expected a scale format: 'bf16', 'fp16', 'fp32', 'e8m0' or 'e4m3'", at);
    }
    if (Accept("/")) {
      const size_t at = pos_;
      OWF_RETURN_IF_ERROR(ParseInteger(&s->sub_block, "sub-block size"));
      if (s->sub_block <= 0 || s->sub_block > (1 << 24)) return Error("sub-block size must be a positive integer up to 2^24", at);
      if (Accept(":h")) {
        s->sub_high = true;
        OWF_RETURN_IF_ERROR(ParseBitCount(&s->sub_bits, "sub-scale"));
      } else if (Accept(":m")) {
        s->sub_mid = true;
        OWF_RETURN_IF_ERROR(ParseBitCount(&s->sub_bits, "sub-scale"));
      } else {
        OWF_RETURN_IF_ERROR(ParseSubBits(&s->sub_bits, "sub-scale"));
      }
      if (text_.substr(pos_).starts_with(":u")) OWF_RETURN_IF_ERROR(ParseSubBits(&s->min_bits, "sub-block min"));
    }
    return Status::Ok();
  }

  // ":u<b>": an unsigned b-bit integer multiplier, 1 <= b <= 16.
  Status ParseSubBits(int* bits, const char* what) {
    if (!Accept(":u")) return Error("expected ':u<bits>' (or ':h<bits>' for sub-scales)");
    return ParseBitCount(bits, what);
  }
  Status ParseBitCount(int* bits, const char* what) {
    const size_t at = pos_;
    int64_t b = 0;
    OWF_RETURN_IF_ERROR(ParseInteger(&b, (std::string(what) + " bits").c_str()));
    if (b < 1 || b > 16) return Error(std::string(what) + " bits must be 1..16", at);
    *bits = static_cast<int>(b);
    return Status::Ok();
  }

  Status ParseModifier(FormatSpec* spec) {
    const size_t at = pos_;
    if (Accept("search")) {
      if (spec->search) return Error("'+search' given twice", at);
      spec->search = true;
      return Status::Ok();
    }
    if (Accept("rotate(")) {
      if (spec->rotate_seed) return Error("'+rotate' given twice", at);
      OWF_RETURN_IF_ERROR(Expect("hadamard"));
      int64_t seed = 0;
      if (Accept(",")) {
        const size_t seed_at = pos_;
        OWF_RETURN_IF_ERROR(ParseInteger(&seed, "rotation seed"));
        if (seed < 0) return Error("the rotation seed must be >= 0", seed_at);
      }
      OWF_RETURN_IF_ERROR(Expect(")"));
      spec->rotate_seed = static_cast<uint64_t>(seed);
      return Status::Ok();
    }
    if (Accept("outliers(")) {
      if (spec->outliers) return Error("'+outliers' given twice", at);
      OutlierSpec o;
      const size_t num_at = pos_;
      OWF_RETURN_IF_ERROR(ParseNumber(&o.fraction, "fraction of elements"));
      if (!(o.fraction > 0 && o.fraction < 1))
        return Error("outlier fraction must be in (0, 1)", num_at);
      if (Accept(",")) {
        bool found = false;
        for (const auto& [name, family] : kCastFamilies) {
          if (Accept(name)) {
            o.format = family;
            found = true;
            break;
          }
        }
        if (!found) return Error("expected an outlier format: 'bf16', 'fp16' or 'fp32'");
      }
      OWF_RETURN_IF_ERROR(Expect(")"));
      spec->outliers = o;
      return Status::Ok();
    }
    if (Accept("entropy(")) {
      if (spec->entropy != EntropyCoding::kNone) return Error("'+entropy' given twice", at);
      if (Accept("ideal")) {
        spec->entropy = EntropyCoding::kIdeal;
      } else if (Accept("huffman")) {
        spec->entropy = EntropyCoding::kHuffman;
      } else if (Accept("rans")) {
        spec->entropy = EntropyCoding::kRans;
      } else {
        return Error("expected a coder: 'ideal', 'huffman' or 'rans'");
      }
      return Expect(")");
    }
    return Error("expected a modifier: 'search', 'rotate(hadamard[,seed])', 'outliers(...)' or 'entropy(...)'");
  }

  Status Validate(const FormatSpec& spec) const {
    const ElementFamily f = spec.element.family;
    const bool cast = f == ElementFamily::kBf16 || f == ElementFamily::kFp16 || f == ElementFamily::kFp32;
    auto fail = [&](const std::string& what) {
      return InvalidArgument("spec '" + std::string(text_) + "': " + what);
    };
    if (cast && spec.scaling) return fail("bf16/fp16/fp32 elements take no '@' scaling");
    if (cast && spec.search) return fail("'+search' needs a low-bit element format");
    if (cast && spec.entropy != EntropyCoding::kNone) return fail("'+entropy' needs a codebook format");
    if (f == ElementFamily::kGrid && spec.entropy == EntropyCoding::kNone)
      return fail("grid(<b>) is sized for an entropy coder: add '+entropy(rans)' (or huffman, ideal)");
    if ((f == ElementFamily::kGrid || f == ElementFamily::kLloyd) && spec.search)
      return fail("'+search' does not apply to grid/lloyd, which are fitted to the tensor already");
    if (spec.search && spec.entropy != EntropyCoding::kNone)
      return fail("'+search' and '+entropy' cannot be combined");
    if (spec.scaling && spec.scaling->kind == ScaleKind::kSignmax &&
        spec.scaling->format == ScaleFormat::kE8m0)
      return fail("signmax scales are signed: use a signed scale format (bf16, fp16, fp32, e4m3)");
    if (spec.scaling) OWF_RETURN_IF_ERROR(ValidateScaling(spec, fail));
    if (f == ElementFamily::kCrd && spec.element.mode != CrdMode::kSymmetric &&
        static_cast<int64_t>(std::exp2(spec.element.bits)) % 2 != 0)
      return fail("crd modes asym/zero need an even number of levels");
    return Status::Ok();
  }

  template <typename Fail>
  Status ValidateScaling(const FormatSpec& spec, Fail fail) const {
    const ScalingSpec& s = *spec.scaling;
    const ElementSpec& e = spec.element;
    if (!s.two_level() && (s.sub_bits || s.min_bits || s.sub_high || s.sub_mid)) return fail("sub-scale bits without sub-blocks");
    if (s.two_level()) {
      if (!s.optimised()) return fail("sub-block scales ('/<m>:u<b>') need an 'opt' or 'optmin' scaling");
      if (s.block != BlockKind::kBlock || s.block_rows != 1)
        return fail("sub-block scales need 1 x n super-blocks ('@<n>:opt...')");
      if (s.sub_block >= s.block_cols || s.block_cols % s.sub_block != 0)
        return fail("the sub-block size must divide the super-block size and be smaller");
      if (s.with_min() != (s.min_bits > 0))
        return fail(s.with_min() ? "optmin sub-blocks need min bits: '/<m>:u<b>:u<b>'"
                                 : "sub-block min bits (a second ':u<b>') need 'optmin'");
    }
    if (!s.optimised()) return Status::Ok();
    if (s.block == BlockKind::kTensor || (s.block == BlockKind::kBlock && s.block_rows != 1))
      return fail("opt/optmin scaling needs 1 x n blocks or 'channel'");
    if (spec.search) return fail("'+search' does not apply to opt/optmin scaling, which fits every block's scale");
    if (spec.entropy != EntropyCoding::kNone) return fail("'+entropy' cannot be combined with opt/optmin scaling");
    if (e.family == ElementFamily::kGrid) return fail("grid(<b>) does not apply to opt/optmin scaling");
    if (e.family == ElementFamily::kFloat && e.rounding != Rounding::kNearest)
      return fail("opt/optmin scaling snaps to the nearest value: use a round-to-nearest element format");
    if (e.family == ElementFamily::kCrd && e.dist == Distribution::kStudentT && !e.df)
      return fail("crd<b>(t) with opt scaling needs df= (or use lloyd<b>, fitted to the tensor)");
    return Status::Ok();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::string FormatNumber(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, ptr) : std::string("nan");
}

const char* ScaleFormatName(ScaleFormat f) {
  for (const auto& s : kScaleFormats)
    if (s.format == f) return s.name;
  return "?";
}
std::optional<ScaleFormat> ScaleFormatFromName(std::string_view name) {
  for (const auto& s : kScaleFormats)
    if (name == s.name) return s.format;
  return std::nullopt;
}
int ScaleFormatBits(ScaleFormat f) {
  for (const auto& s : kScaleFormats)
    if (s.format == f) return s.bits;
  return 0;
}
const char* ScaleKindName(ScaleKind k) { return NameOf(kScaleKinds, k); }
const char* DistributionName(Distribution d) { return NameOf(kDistributions, d); }
const char* CrdModeName(CrdMode m) { return NameOf(kModes, m); }

const std::vector<Preset>& Presets() { return kPresets; }

Result<FormatSpec> ParseSpec(std::string_view text) {
  // A preset name (longest match), alone or followed by modifiers, stands for its full spec.
  const Preset* match = nullptr;
  for (const Preset& p : kPresets) {
    const std::string_view name(p.name);
    if (text.starts_with(name) && (text.size() == name.size() || text[name.size()] == '+') &&
        (!match || name.size() > std::string_view(match->name).size()))
      match = &p;
  }
  if (match) {
    const std::string expanded = std::string(match->spec) + std::string(text.substr(std::string_view(match->name).size()));
    return Parser(expanded).Parse();
  }
  return Parser(text).Parse();
}

std::optional<double> ScaleBitsPerElement(const ScalingSpec& s) {
  if (s.block != BlockKind::kBlock) return std::nullopt;
  const double block = static_cast<double>(s.block_rows * s.block_cols);
  const double per_block = ScaleFormatBits(s.format) * (s.with_min() ? 2.0 : 1.0);
  double bits = per_block / block;
  if (s.two_level()) bits += static_cast<double>(s.sub_bits + s.min_bits) / static_cast<double>(s.sub_block);
  return bits;
}

std::string ToString(const ElementSpec& e) {
  switch (e.family) {
    case ElementFamily::kInt:
      return "int" + FormatNumber(e.bits) + (e.symmetric ? "(sym)" : "");
    case ElementFamily::kFloat: {
      std::string s = "e" + std::to_string(e.exponent_bits) + "m" + std::to_string(e.mantissa_bits);
      if (e.rounding != Rounding::kNearest) s += std::string("(") + NameOf(kRoundings, e.rounding) + ")";
      return s;
    }
    case ElementFamily::kNf4: return "nf4";
    case ElementFamily::kSf4: return "sf4";
    case ElementFamily::kLut: {
      std::string s = "lut(";
      for (size_t i = 0; i < e.lut.size(); ++i) s += (i ? "," : "") + FormatNumber(e.lut[i]);
      return s + ")";
    }
    case ElementFamily::kCrd: {
      std::string s = "crd" + FormatNumber(e.bits) + "(" + DistributionName(e.dist);
      if (e.df) s += ",df=" + FormatNumber(*e.df);
      if (e.mode != CrdMode::kSymmetric) s += std::string(",mode=") + CrdModeName(e.mode);
      if (e.power != kOneThird) s += ",power=" + FormatNumber(e.power);
      return s + ")";
    }
    case ElementFamily::kLloyd: return "lloyd" + FormatNumber(e.bits);
    case ElementFamily::kGrid: return "grid(" + FormatNumber(e.bits) + ")";
    case ElementFamily::kBf16:
    case ElementFamily::kFp16:
    case ElementFamily::kFp32: return NameOf(kCastFamilies, e.family);
  }
  return "?";
}

std::string ToString(const ScalingSpec& s) {
  std::string block;
  switch (s.block) {
    case BlockKind::kTensor: block = "tensor"; break;
    case BlockKind::kChannel: block = "channel"; break;
    case BlockKind::kBlock:
      block = s.block_rows == 1 ? std::to_string(s.block_cols)
                                : std::to_string(s.block_rows) + "x" + std::to_string(s.block_cols);
      break;
  }
  std::string out = block + ":" + ScaleKindName(s.kind) + ":" + ScaleFormatName(s.format);
  if (s.two_level()) {
    out += "/" + std::to_string(s.sub_block) + (s.sub_high ? ":h" : s.sub_mid ? ":m" : ":u") + std::to_string(s.sub_bits);
    if (s.min_bits) out += ":u" + std::to_string(s.min_bits);
  }
  return out;
}

std::string ToString(const FormatSpec& spec) {
  std::string s = ToString(spec.element);
  if (spec.scaling) s += "@" + ToString(*spec.scaling);
  if (spec.search) s += "+search";
  if (spec.rotate_seed) s += *spec.rotate_seed ? "+rotate(hadamard," + std::to_string(*spec.rotate_seed) + ")" : "+rotate(hadamard)";
  if (spec.outliers) {
    s += "+outliers(" + FormatNumber(spec.outliers->fraction) + "," +
         NameOf(kCastFamilies, spec.outliers->format) + ")";
  }
  switch (spec.entropy) {
    case EntropyCoding::kNone: break;
    case EntropyCoding::kIdeal: s += "+entropy(ideal)"; break;
    case EntropyCoding::kHuffman: s += "+entropy(huffman)"; break;
    case EntropyCoding::kRans: s += "+entropy(rans)"; break;
  }
  return s;
}

const std::vector<SyntaxEntry>& ElementSyntax() {
  static const std::vector<SyntaxEntry> kRows = {
      {"int<b>[(sym)]", "integer grid with round(2^b) levels; asymmetric (one more negative) or symmetric half-integers"},
      {"e<E>m<M>[(rn|rz|ri)]", "ExMy float, no inf/NaN codes; round nearest (ties toward zero), toward zero, or away"},
      {"nf4", "QLoRA NormalFloat4 table"},
      {"sf4", "Student-t (df=5) float4 table"},
      {"lut(v1,v2,...)", "explicit codebook"},
      {"crd<b>(normal|laplace|t[,df=][,mode=sym|asym|zero][,power=])",
       "cube-root-density codebook (Panter-Dite); block designs truncated for the block size; t without df: df fitted"},
      {"lloyd<b>", "Lloyd-Max codebook trained on the tensor (exact 1-D k-means)"},
      {"grid(<b>)", "uniform grid whose entropy-coded indices take <b> bits per element (needs +entropy)"},
      {"bf16 | fp16 | fp32", "plain casts (round to nearest even)"},
  };
  return kRows;
}

const std::vector<SyntaxEntry>& ScalingSyntax() {
  static const std::vector<SyntaxEntry> kRows = {
      {"@tensor:<kind>[:<fmt>]", "one scale for the whole tensor"},
      {"@channel:<kind>[:<fmt>]", "one scale per output row"},
      {"@<n>:<kind>[:<fmt>]", "blocks of n along the last axis (a partial last block where n does not divide)"},
      {"@<r>x<c>:<kind>[:<fmt>]", "r x c tiles"},
      {"kind absmax", "block max |x| maps to the format's range"},
      {"kind signmax", "block's largest-magnitude value maps exactly to the format's long side (signed scale)"},
      {"kind rms", "block root-mean-square maps to 1"},
      {"kind opt", "each block's scale minimises its squared error for the codebook (candidates + least-squares refit)"},
      {"kind optmin", "value = code x scale - min, with each block's scale and min fitted (affine, as ggml's Q4_K)"},
      {"@<n>:opt[min]:<fmt>/<m>:u<b>[:u<b>]",
       "two-level: one <fmt> scale (and min scale) per n, a b-bit multiplier of it per sub-block of m (and of the min)"},
      {"fmt bf16 | fp16 | fp32 | e8m0 | e4m3", "scale format (default bf16); e8m0 = power of two rounded up"},
  };
  return kRows;
}

const std::vector<SyntaxEntry>& ModifierSyntax() {
  static const std::vector<SyntaxEntry> kRows = {
      {"+search", "search the format scale (and df for crd(t)) to minimise the tensor's error"},
      {"+rotate(hadamard[,seed])", "randomised Hadamard rotation along the last axis before quantising (undone on dequantise)"},
      {"+outliers(f[,bf16|fp16|fp32])", "keep the largest-|x| fraction f exactly-ish, 32-bit index each"},
      {"+entropy(ideal|huffman|rans)", "entropy-code the indices: ideal static code length, or real Huffman / rANS streams (size incl. tables)"},
  };
  return kRows;
}

}  // namespace owf
