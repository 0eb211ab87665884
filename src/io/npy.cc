// .npy reader and writer, written from the format description (NumPy NEP 1 and the
// numpy.lib.format documentation):
//
//   offset 0: magic "\x93NUMPY"
//   offset 6: major, minor version bytes (1.0, 2.0 or 3.0)
//   offset 8: header length, uint16 LE (1.0) or uint32 LE (2.0, 3.0)
//   then the header: a Python dict literal with keys 'descr', 'fortran_order' and 'shape',
//   padded with spaces and ended by '\n'; the array data follows it directly.
//
// The reader treats every byte as hostile: all lengths are checked against the image size before
// use, arithmetic on file-controlled numbers is overflow-checked, and nothing is allocated until
// the data size is known to match the shape exactly (so allocations are bounded by the input).

#include "owf/io/npy.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <string_view>
#include <vector>

#include "owf/core/numeric.h"
#include "owf/io/file.h"

namespace owf {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kVersionOffset = 6;
constexpr size_t kHeaderLenOffset = 8;
// NumPy 2 allows up to 64 dimensions; anything beyond that is not a real array.
constexpr size_t kMaxRank = 64;
constexpr size_t kAlign = 64;

// Python-style tuple repr: "()", "(5,)", "(2, 3)".
std::string ShapeRepr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// A short, printable description of a header character for error messages.
std::string DescribeChar(std::string_view text, size_t pos) {
  if (pos >= text.size()) return "end of header";
  const unsigned char c = static_cast<unsigned char>(text[pos]);
  if (c >= 0x21 && c <= 0x7e) return std::string("'") + static_cast<char>(c) + "'";
  static const char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

// Quotes untrusted text for a message, truncating long values.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 40;
  std::string out = "'";
  out.append(s.substr(0, kMaxShown));
  if (s.size() > kMaxShown) out.append("...");
  out.push_back('\'');
  return out;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsIdentChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool MulOverflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// A strict recursive-descent parser for the header dict. Accepts exactly
//   '{' [ key ':' value { ',' key ':' value } [','] ] '}'
// with optional whitespace between tokens, where the keys are 'descr' (a quoted string),
// 'fortran_order' (True or False) and 'shape' (a tuple of non-negative integers), each exactly
// once, in any order, quoted with ' or ".
class HeaderParser {
 public:
  // `text` is the header without its final '\n'; `base` is its byte offset in the file.
  HeaderParser(std::string_view text, size_t base, const std::string& name)
      : text_(text), base_(base), name_(name) {}

  Result<NpyHeader> Parse() {
    // Every byte must be printable ASCII or whitespace. (3.0 headers may be UTF-8, but none of
    // the keys or values owf accepts contain non-ASCII characters.)
    for (size_t i = 0; i < text_.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(text_[i]);
      if ((c < 0x20 && !IsSpace(static_cast<char>(c))) || c >= 0x7f) {
        return Error(i, "header contains non-ASCII or control " + DescribeChar(text_, i));
      }
    }
    NpyHeader header;
    bool have_descr = false, have_fortran = false, have_shape = false;
    SkipSpace();
    if (!Consume('{')) return Error(pos_, "expected '{' starting the header dict, found " + Here());
    SkipSpace();
    while (!Peek('}')) {
      const size_t key_pos = pos_;
      if (!Peek('\'') && !Peek('"')) {
        return Error(pos_, "expected a quoted key or '}', found " + Here());
      }
      OWF_ASSIGN_OR_RETURN(const std::string key, ParseString());
      SkipSpace();
      if (!Consume(':'))
        return Error(pos_, "expected ':' after key " + Quote(key) + ", found " + Here());
      SkipSpace();
      bool* seen = nullptr;
      if (key == "descr") {
        seen = &have_descr;
      } else if (key == "fortran_order") {
        seen = &have_fortran;
      } else if (key == "shape") {
        seen = &have_shape;
      } else {
        return Error(key_pos, "unknown header key " + Quote(key) +
                                  "; expected 'descr', 'fortran_order' and 'shape'");
      }
      if (*seen) return Error(key_pos, "duplicate header key " + Quote(key));
      *seen = true;
      if (key == "descr") {
        if (Peek('[')) {
          return Status(StatusCode::kUnsupported,
                        Where(pos_) +
                            "structured dtype (list 'descr') is unsupported; owf reads "
                            "little-endian float16/float32/float64");
        }
        if (!Peek('\'') && !Peek('"')) {
          return Error(pos_, "expected a quoted string for 'descr', found " + Here());
        }
        OWF_ASSIGN_OR_RETURN(header.descr, ParseString());
      } else if (key == "fortran_order") {
        OWF_ASSIGN_OR_RETURN(header.fortran_order, ParseBool());
      } else {
        OWF_ASSIGN_OR_RETURN(header.shape, ParseShape());
      }
      SkipSpace();
      if (Consume(',')) {
        SkipSpace();
        continue;
      }
      if (!Peek('}')) return Error(pos_, "expected ',' or '}' in header dict, found " + Here());
    }
    ++pos_;  // '}'
    SkipSpace();
    if (pos_ != text_.size()) {
      return Error(pos_, "unexpected " + DescribeChar(text_, pos_) + " after the header dict");
    }
    if (!have_descr) return Error(0, "header dict is missing key 'descr'");
    if (!have_fortran) return Error(0, "header dict is missing key 'fortran_order'");
    if (!have_shape) return Error(0, "header dict is missing key 'shape'");
    return header;
  }

 private:
  std::string Where(size_t pos) const {
    return name_ + ": at byte offset " + std::to_string(base_ + pos) + ": ";
  }
  Status Error(size_t pos, const std::string& what) const { return InvalidData(Where(pos) + what); }
  std::string Here() const { return DescribeChar(text_, pos_); }
  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool Consume(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }

  // A '...' or "..." literal without escapes (no valid key or dtype string needs one).
  Result<std::string> ParseString() {
    const size_t start = pos_;
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) {
      return Error(start, "unterminated string in header");
    }
    const std::string_view body = text_.substr(pos_, end - pos_);
    if (const size_t bs = body.find('\\'); bs != std::string_view::npos) {
      return Error(pos_ + bs, "backslash escapes are not supported in header strings");
    }
    if (body.find('\n') != std::string_view::npos) {
      return Error(start, "unterminated string in header");
    }
    pos_ = end + 1;
    return std::string(body);
  }

  Result<bool> ParseBool() {
    const size_t start = pos_;
    size_t end = pos_;
    while (end < text_.size() && IsIdentChar(text_[end])) ++end;
    const std::string_view word = text_.substr(start, end - start);
    if (word == "True" || word == "False") {
      pos_ = end;
      return word == "True";
    }
    return Error(start, "expected True or False for 'fortran_order', found " +
                            (word.empty() ? Here() : Quote(word)));
  }

  // One integer literal: optional '-', then decimal digits without redundant leading zeros.
  Result<int64_t> ParseDim() {
    const size_t start = pos_;
    const bool negative = Consume('-');
    const size_t digits_start = pos_;
    uint64_t value = 0;
    bool too_big = false;
    while (pos_ < text_.size() && IsDigit(text_[pos_])) {
      const uint64_t d = static_cast<uint64_t>(text_[pos_] - '0');
      if (value > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - d) / 10) {
        too_big = true;
      } else {
        value = value * 10 + d;
      }
      ++pos_;
    }
    const size_t ndigits = pos_ - digits_start;
    if (ndigits == 0) return Error(pos_, "expected an integer in 'shape', found " + Here());
    if (ndigits > 1 && text_[digits_start] == '0') {
      return Error(start, "invalid integer with leading zero in 'shape'");
    }
    if (pos_ < text_.size() && IsIdentChar(text_[pos_])) {
      return Error(pos_, "expected ',' or ')' after integer in 'shape', found " + Here());
    }
    const std::string_view literal = text_.substr(start, pos_ - start);
    if (negative && (value != 0 || too_big)) {
      return Error(start, "negative dimension " + std::string(literal) + " in 'shape'");
    }
    if (too_big) {
      return Error(start, "dimension " + std::string(literal.substr(0, 40)) +
                              " in 'shape' does not fit in int64");
    }
    return static_cast<int64_t>(value);
  }

  // A tuple of integers: "()", "(n,)", "(a, b)", "(a, b,)".
  Result<std::vector<int64_t>> ParseShape() {
    const size_t start = pos_;
    if (!Consume('(')) return Error(pos_, "expected a tuple '(' for 'shape', found " + Here());
    std::vector<int64_t> shape;
    bool trailing_comma = false;
    SkipSpace();
    while (!Peek(')')) {
      if (shape.size() == kMaxRank) {
        return Status(StatusCode::kUnsupported, Where(start) + "shape has rank above " +
                                                    std::to_string(kMaxRank) +
                                                    ", the most NumPy or owf allow");
      }
      OWF_ASSIGN_OR_RETURN(const int64_t dim, ParseDim());
      shape.push_back(dim);
      SkipSpace();
      trailing_comma = Consume(',');
      if (trailing_comma) {
        SkipSpace();
      } else if (!Peek(')')) {
        return Error(pos_, "expected ',' or ')' in 'shape', found " + Here());
      }
    }
    ++pos_;  // ')'
    if (shape.size() == 1 && !trailing_comma) {
      return Error(start, "'shape' (" + std::to_string(shape[0]) +
                              ") is not a tuple; a 1-D shape is written (" +
                              std::to_string(shape[0]) + ",)");
    }
    return shape;
  }

  std::string_view text_;
  size_t base_;
  const std::string& name_;
  size_t pos_ = 0;
};

enum class Dtype { kF16, kF32, kF64 };

const char* DtypeName(Dtype d) {
  switch (d) {
    case Dtype::kF16:
      return "float16";
    case Dtype::kF32:
      return "float32";
    case Dtype::kF64:
      return "float64";
  }
  return "?";
}

size_t ItemSize(Dtype d) {
  switch (d) {
    case Dtype::kF16:
      return 2;
    case Dtype::kF32:
      return 4;
    case Dtype::kF64:
      return 8;
  }
  return 0;
}

Result<Dtype> ParseDtype(const std::string& descr, const std::string& name) {
  constexpr const char* kSupported = "owf reads little-endian float16/float32/float64";
  auto unsupported = [&](const std::string& why) {
    return Unsupported(name + ": unsupported dtype " + Quote(descr) + why + "; " + kSupported);
  };
  if (descr.size() != 3 || descr[1] != 'f') return unsupported("");
  std::optional<Dtype> dtype;
  switch (descr[2]) {
    case '2':
      dtype = Dtype::kF16;
      break;
    case '4':
      dtype = Dtype::kF32;
      break;
    case '8':
      dtype = Dtype::kF64;
      break;
    default:
      return unsupported("");
  }
  constexpr bool kHostLittle = std::endian::native == std::endian::little;
  bool little;
  switch (descr[0]) {
    case '<':
      little = true;
      break;
    case '>':
      little = false;
      break;
    case '=':  // native
    case '|':  // "not applicable"; only meaningful for 1-byte types, treated as native
      little = kHostLittle;
      break;
    default:
      return unsupported("");
  }
  if (!little) return unsupported(" (big-endian)");
  return *dtype;
}

uint16_t LoadLe16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}
uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t LoadLe64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadLe32(p)) | (static_cast<uint64_t>(LoadLe32(p + 4)) << 32);
}

// double -> float with IEEE round-to-nearest-even and overflow to +-inf, written so that
// out-of-range values never reach the (formally undefined) out-of-range conversion.
float DoubleToFloat(double d) {
  constexpr double kMax = std::numeric_limits<float>::max();
  // Half an ulp above FLT_MAX: at or beyond it the correctly rounded result is infinity (the tie
  // goes to infinity because FLT_MAX has an odd significand).
  constexpr double kOverflow = kMax + 0x1p103;
  if (std::isfinite(d) && std::fabs(d) > kMax) {
    const float mag = std::fabs(d) >= kOverflow ? std::numeric_limits<float>::infinity()
                                                : std::numeric_limits<float>::max();
    return std::signbit(d) ? -mag : mag;
  }
  return static_cast<float>(d);
}

void Convert(Dtype dtype, const uint8_t* src, size_t n, float* dst) {
  switch (dtype) {
    case Dtype::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = FloatFromFp16(LoadLe16(src + 2 * i));
      break;
    case Dtype::kF32:
      if constexpr (std::endian::native == std::endian::little) {
        if (n) std::memcpy(dst, src, n * sizeof(float));
      } else {
        for (size_t i = 0; i < n; ++i) dst[i] = std::bit_cast<float>(LoadLe32(src + 4 * i));
      }
      break;
    case Dtype::kF64:
      for (size_t i = 0; i < n; ++i) {
        dst[i] = DoubleToFloat(std::bit_cast<double>(LoadLe64(src + 8 * i)));
      }
      break;
  }
}

}  // namespace

Result<Tensor> ParseNpy(std::span<const uint8_t> bytes, const std::string& name) {
  const size_t size = bytes.size();
  if (size < kHeaderLenOffset + 2) {
    return InvalidData(name + ": file is " + std::to_string(size) +
                       " bytes, too short for a .npy preamble (at least 10 bytes)");
  }
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    std::string found;
    static const char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < kMagic.size(); ++i) {
      if (i) found += ' ';
      found += kHex[bytes[i] >> 4];
      found += kHex[bytes[i] & 15];
    }
    return InvalidData(name + ": not a .npy file: magic at byte offset 0 is " + found +
                       ", expected 93 4e 55 4d 50 59 (\"\\x93NUMPY\")");
  }
  const int major = bytes[kVersionOffset];
  const int minor = bytes[kVersionOffset + 1];
  if (minor != 0 || major < 1 || major > 3) {
    return Unsupported(name + ": unsupported .npy format version " + std::to_string(major) + "." +
                       std::to_string(minor) + " at byte offset 6; owf reads 1.0, 2.0 and 3.0");
  }
  size_t header_start;
  uint64_t header_len;
  if (major == 1) {
    header_len = LoadLe16(bytes.data() + kHeaderLenOffset);
    header_start = kHeaderLenOffset + 2;
  } else {
    if (size < kHeaderLenOffset + 4) {
      return InvalidData(name + ": file is " + std::to_string(size) + " bytes, too short for a " +
                         "version " + std::to_string(major) + ".0 .npy preamble (12 bytes)");
    }
    header_len = LoadLe32(bytes.data() + kHeaderLenOffset);
    header_start = kHeaderLenOffset + 4;
  }
  if (header_len > size - header_start) {
    return InvalidData(name + ": header length " + std::to_string(header_len) +
                       " at byte offset 8 runs past the end of the file (header starts at byte " +
                       std::to_string(header_start) + ", file is " + std::to_string(size) +
                       " bytes)");
  }
  const size_t data_start = header_start + static_cast<size_t>(header_len);
  if (header_len == 0 || bytes[data_start - 1] != '\n') {
    return InvalidData(name + ": header (byte offsets " + std::to_string(header_start) + ".." +
                       std::to_string(data_start) + ") does not end with a newline '\\n'");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + header_start,
                              static_cast<size_t>(header_len) - 1);
  OWF_ASSIGN_OR_RETURN(const NpyHeader header, HeaderParser(text, header_start, name).Parse());
  OWF_ASSIGN_OR_RETURN(const Dtype dtype, ParseDtype(header.descr, name));
  if (header.fortran_order) {
    return Unsupported(name + ": fortran_order True (column-major data) is unsupported; owf " +
                       "reads C-order arrays only");
  }

  const std::string shape_str = ShapeRepr(header.shape);
  // Overflow-checked, left to right, so that Tensor::numel() on the result cannot overflow.
  int64_t numel = 1;
  for (const int64_t d : header.shape) {
    if (MulOverflows(numel, d, &numel)) {
      return InvalidData(name + ": shape " + shape_str + " has more elements than fit in int64");
    }
  }
  int64_t needed = 0;
  if (MulOverflows(numel, static_cast<int64_t>(ItemSize(dtype)), &needed)) {
    return InvalidData(name + ": shape " + shape_str + " " + DtypeName(dtype) +
                       " needs more bytes than fit in int64 (size overflow)");
  }
  const size_t have = size - data_start;
  if (have != static_cast<uint64_t>(needed)) {
    std::string msg = name + ": data at byte offset " + std::to_string(data_start) + " is " +
                      std::to_string(have) + " bytes, shape " + shape_str + " " + DtypeName(dtype) +
                      " needs " + std::to_string(needed);
    if (have > static_cast<uint64_t>(needed)) {
      msg += " (" + std::to_string(have - static_cast<uint64_t>(needed)) + " trailing bytes)";
    } else {
      msg += " (truncated)";
    }
    return InvalidData(msg);
  }

  Tensor t;
  try {
    t.shape = header.shape;
    t.data.resize(static_cast<size_t>(numel));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, name + ": out of memory allocating " +
                                             std::to_string(numel) + " floats for shape " +
                                             shape_str);
  }
  Convert(dtype, bytes.data() + data_start, static_cast<size_t>(numel), t.data.data());
  return t;
}

Result<Tensor> ReadNpy(const std::string& path) {
  OWF_ASSIGN_OR_RETURN(const std::vector<uint8_t> bytes, ReadFileBytes(path));
  return ParseNpy(bytes, path);
}

std::string SerializeNpy(const Tensor& t) {
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + ShapeRepr(t.shape) + ", }";
  // Header = dict + padding spaces + '\n', so that preamble + header is a multiple of 64.
  auto padded_len = [&](size_t preamble) {
    const size_t unpadded = preamble + dict.size() + 1;
    return (unpadded + kAlign - 1) / kAlign * kAlign - preamble;
  };
  size_t preamble = 10;
  size_t header_len = padded_len(preamble);
  int major = 1;
  if (header_len > 0xFFFF) {
    major = 2;
    preamble = 12;
    header_len = padded_len(preamble);
  }
  const size_t data_bytes = t.data.size() * sizeof(float);
  std::string out;
  out.reserve(preamble + header_len + data_bytes);
  out.append(kMagic);
  out.push_back(static_cast<char>(major));
  out.push_back('\0');
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) {
    out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xFF));
  }
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out.push_back('\n');
  if constexpr (std::endian::native == std::endian::little) {
    out.append(reinterpret_cast<const char*>(t.data.data()), data_bytes);
  } else {
    for (const float f : t.data) {
      const uint32_t b = std::bit_cast<uint32_t>(f);
      for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((b >> (8 * i)) & 0xFF));
    }
  }
  return out;
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  int64_t numel = 1;
  for (const int64_t d : t.shape) {
    if (d < 0 || MulOverflows(numel, d, &numel)) {
      return InvalidArgument("cannot write '" + path + "': invalid shape " + ShapeRepr(t.shape));
    }
  }
  if (static_cast<uint64_t>(numel) != t.data.size()) {
    return InvalidArgument("cannot write '" + path + "': shape " + ShapeRepr(t.shape) + " has " +
                           std::to_string(numel) + " elements but the tensor holds " +
                           std::to_string(t.data.size()));
  }
  std::string image;
  try {
    image = SerializeNpy(t);
  } catch (const std::bad_alloc&) {
    return IoError("cannot write '" + path + "': out of memory serialising " +
                   std::to_string(t.data.size()) + " floats");
  }
  return WriteFileAtomic(path, image);
}

}  // namespace owf
