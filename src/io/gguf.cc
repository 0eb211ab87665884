// GGUF v2/v3 reader, written from the format description (ggml docs/gguf.md): little-endian
// header, metadata key-value pairs, tensor infos, then the aligned tensor data section.
// Every count and length is checked against the bytes left before anything is allocated;
// tensors must lie inside the file, be aligned and not overlap. Messages name the file, the
// byte offset of the offending field and the key or tensor.
#include "owf/io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "owf/io/mapped_file.h"
#include "owf/io/model.h"

namespace owf {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF is read with memcpy: LE hosts only");

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;         // arrays of arrays, at most this deep
constexpr uint64_t kFullArrayLimit = 64;  // longer arrays are summarised in metadata()
constexpr uint32_t kDefaultAlignment = 32;
constexpr size_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, one-byte value
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

// Metadata value types.
enum : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
  kNumValueTypes = 13,
};

const char* ValueTypeName(uint32_t t) {
  static constexpr const char* kNames[kNumValueTypes] = {
      "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
      "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  return t < kNumValueTypes ? kNames[t] : "?";
}

// Bytes of one value of a fixed-size type; 0 for STRING and ARRAY.
size_t FixedSize(uint32_t t) {
  switch (t) {
    case kUint8:
    case kInt8:
    case kBool:
      return 1;
    case kUint16:
    case kInt16:
      return 2;
    case kUint32:
    case kInt32:
    case kFloat32:
      return 4;
    case kUint64:
    case kInt64:
    case kFloat64:
      return 8;
    default:
      return 0;
  }
}

// The smallest encoding of one value: bounds an element count before anything is allocated.
size_t MinSize(uint32_t t) {
  if (t == kString) return 8;     // length
  if (t == kArray) return 4 + 8;  // element type, count
  return FixedSize(t);
}

struct GgmlType {
  const char* name;  // nullptr: id not defined (or removed from GGUF)
  uint32_t block;    // elements per block
  uint32_t bytes;    // bytes per block
};

// Indexed by ggml type id.
constexpr GgmlType kGgmlTypes[] = {
    {"F32", 1, 4},        {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},
    {nullptr, 0, 0},      {nullptr, 0, 0},     {"Q5_0", 32, 22},     {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},     {"Q8_1", 32, 36},    {"Q2_K", 256, 84},    {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},   {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},   {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136},
    {"I8", 1, 1},         {"I16", 1, 2},       {"I32", 1, 4},        {"I64", 1, 8},
    {"F64", 1, 8},        {"IQ1_M", 256, 56},  {"BF16", 1, 2},       {nullptr, 0, 0},
    {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},   {"TQ2_0", 256, 66},
    {nullptr, 0, 0},      {nullptr, 0, 0},     {nullptr, 0, 0},      {"MXFP4", 32, 17},
};
constexpr uint32_t kNumGgmlTypes = sizeof(kGgmlTypes) / sizeof(kGgmlTypes[0]);

const GgmlType* FindGgmlType(uint32_t id) {
  return id < kNumGgmlTypes && kGgmlTypes[id].name != nullptr ? &kGgmlTypes[id] : nullptr;
}

// Plain (not block-quantised) types: F32, F16, BF16 and the integer / F64 types.
bool IsQuantised(uint32_t id) { return FindGgmlType(id) != nullptr && kGgmlTypes[id].block > 1; }

// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, so that
// metadata().dump() cannot throw on a hostile file.
std::string ValidUtf8(std::string_view s) {
  std::string out;
  size_t i = 0;
  bool changed = false;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool good = len > 0 && i + len <= s.size();
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; good && k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      good = (d & 0xC0) == 0x80;
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (good) good = cp >= kMinForLen[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    if (good) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      changed = true;
      ++i;
    }
  }
  return changed ? out : std::string(s);
}

// A bounds-checked little-endian reader over the file's bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  size_t pos() const { return pos_; }
  void Seek(size_t pos) { pos_ = std::min(pos, bytes_.size()); }
  size_t left() const { return bytes_.size() - pos_; }

  Status Error(size_t at, const std::string& message) const {
    return InvalidData(file_ + ": at byte " + std::to_string(at) + ": " + message);
  }

  template <typename T>
  Status Get(T* out, std::string_view what) {
    if (left() < sizeof(T)) {
      return Error(pos_, "truncated: " + std::string(what) + " needs " + std::to_string(sizeof(T)) +
                             " bytes, " + std::to_string(left()) + " left");
    }
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status Skip(uint64_t n, std::string_view what) {
    if (n > left()) {
      return Error(pos_, "truncated: " + std::string(what) + " needs " + std::to_string(n) +
                             " bytes, " + std::to_string(left()) + " left");
    }
    pos_ += static_cast<size_t>(n);
    return Status::Ok();
  }

  // A GGUF string (uint64 length, then the bytes); `out` may be null to skip it.
  Status GetString(std::string* out, std::string_view what) {
    const size_t at = pos_;
    uint64_t len = 0;
    OWF_RETURN_IF_ERROR(Get(&len, std::string("the string length of ") + std::string(what)));
    if (len > left()) {
      return Error(at, "string length " + std::to_string(len) + " exceeds the " +
                           std::to_string(left()) + " bytes left (" + std::string(what) + ")");
    }
    if (out != nullptr) out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& file_;
  size_t pos_ = 0;
};

class GgufReader final : public ModelReader {
 public:
  const char* format() const override { return "gguf"; }

  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    if (t.shard != 0 || t.offset > bytes_.size() || t.nbytes > bytes_.size() - t.offset) return {};
    return bytes_.subspan(static_cast<size_t>(t.offset), static_cast<size_t>(t.nbytes));
  }

  void Release(const TensorInfo& t) const override {
    if (map_) map_->Release(RawBytes(t));
  }

  // Parses bytes_; name_ appears in messages.
  Status Parse();

  std::shared_ptr<MappedFile> map_;  // OpenGguf: keeps the mapping alive
  std::vector<uint8_t> copy_;        // ParseGguf: the reader's own copy
  std::span<const uint8_t> bytes_;
  std::string name_;
  std::map<std::string, size_t> arrays_;  // array key -> byte offset of its element type

 private:
  Status ParseValue(Cursor& c, uint32_t type, int depth, const std::string& what,
                    nlohmann::json* out);
  Status ParseTensorInfos(Cursor& c, uint64_t count, uint32_t alignment);
};

// Reads one value of `type` (already known to be valid); `out` may be null to skip it.
// `depth` counts the arrays enclosing this value.
Status GgufReader::ParseValue(Cursor& c, uint32_t type, int depth, const std::string& what,
                              nlohmann::json* out) {
  const size_t at = c.pos();
  switch (type) {
    case kUint8: {
      uint8_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kInt8: {
      int8_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kUint16: {
      uint16_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kInt16: {
      int16_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kUint32: {
      uint32_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kInt32: {
      int32_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kFloat32: {
      float v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = static_cast<double>(v);
      return Status::Ok();
    }
    case kBool: {
      uint8_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (v > 1)
        return c.Error(at, "bool value " + std::to_string(v) + " is not 0 or 1 (" + what + ")");
      if (out) *out = v != 0;
      return Status::Ok();
    }
    case kString: {
      if (out == nullptr) return c.GetString(nullptr, what);
      std::string s;
      OWF_RETURN_IF_ERROR(c.GetString(&s, what));
      *out = ValidUtf8(s);
      return Status::Ok();
    }
    case kUint64: {
      uint64_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kInt64: {
      int64_t v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kFloat64: {
      double v;
      OWF_RETURN_IF_ERROR(c.Get(&v, what));
      if (out) *out = v;
      return Status::Ok();
    }
    case kArray:
      break;
    default:
      return Internal("GGUF value type " + std::to_string(type) + " reached ParseValue");
  }
  if (depth + 1 > kMaxArrayDepth) {
    return c.Error(at, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels (" +
                           what + ")");
  }
  uint32_t elem = 0;
  OWF_RETURN_IF_ERROR(c.Get(&elem, "the array element type of " + what));
  if (elem >= kNumValueTypes) {
    return c.Error(at, "unknown array element type " + std::to_string(elem) + " (" + what + ")");
  }
  const size_t count_at = c.pos();
  uint64_t count = 0;
  OWF_RETURN_IF_ERROR(c.Get(&count, "the array count of " + what));
  if (count > c.left() / MinSize(elem)) {
    return c.Error(count_at, "array count " + std::to_string(count) + " of " + ValueTypeName(elem) +
                                 " exceeds what the " + std::to_string(c.left()) +
                                 " bytes left can hold (" + what + ")");
  }
  const bool full = out != nullptr && count <= kFullArrayLimit;
  if (out != nullptr && !full) {
    *out = nlohmann::json{{"type", ValueTypeName(elem)}, {"length", count}};
  }
  if (!full && FixedSize(elem) > 0) {
    // Checked above: count * size <= left.
    if (elem == kBool) {
      for (uint64_t i = 0; i < count; ++i)
        OWF_RETURN_IF_ERROR(ParseValue(c, elem, depth + 1, what, nullptr));
      return Status::Ok();
    }
    return c.Skip(count * FixedSize(elem), what);
  }
  if (full) *out = nlohmann::json::array();
  for (uint64_t i = 0; i < count; ++i) {
    nlohmann::json value;
    OWF_RETURN_IF_ERROR(ParseValue(c, elem, depth + 1, what, full ? &value : nullptr));
    if (full) out->push_back(std::move(value));
  }
  return Status::Ok();
}

Status GgufReader::Parse() {
  Cursor c(bytes_, name_);
  if (bytes_.size() < 4)
    return c.Error(0, "truncated: " + std::to_string(bytes_.size()) + " bytes, not a GGUF file");
  if (std::memcmp(bytes_.data(), "GGUF", 4) != 0)
    return c.Error(0, "bad magic: not a GGUF file (no \"GGUF\")");
  c.Seek(4);
  uint32_t version = 0;
  OWF_RETURN_IF_ERROR(c.Get(&version, "the version"));
  if (version == 1) return c.Error(4, "GGUF version 1 is not supported (only versions 2 and 3)");
  if (version != 2 && version != 3) {
    if ((version & 0xFFFF) == 0 && version != 0) {
      return c.Error(4, "GGUF version " + std::to_string(version) +
                            " looks byte-swapped: big-endian GGUF files are not supported");
    }
    return c.Error(4, "unsupported GGUF version " + std::to_string(version) + " (only 2 and 3)");
  }
  uint64_t tensor_count = 0, kv_count = 0;
  const size_t tensor_count_at = c.pos();
  OWF_RETURN_IF_ERROR(c.Get(&tensor_count, "the tensor count"));
  const size_t kv_count_at = c.pos();
  OWF_RETURN_IF_ERROR(c.Get(&kv_count, "the metadata key-value count"));
  if (kv_count > c.left() / kMinKvBytes) {
    return c.Error(kv_count_at, "metadata key-value count " + std::to_string(kv_count) +
                                    " exceeds what the " + std::to_string(c.left()) +
                                    " bytes left can hold");
  }
  if (tensor_count > c.left() / kMinTensorInfoBytes) {
    return c.Error(tensor_count_at, "tensor count " + std::to_string(tensor_count) +
                                        " exceeds what the " + std::to_string(c.left()) +
                                        " bytes left can hold");
  }

  uint32_t alignment = kDefaultAlignment;
  metadata_ = nlohmann::json::object();
  for (uint64_t i = 0; i < kv_count; ++i) {
    const size_t key_at = c.pos();
    std::string key;
    OWF_RETURN_IF_ERROR(c.GetString(&key, "the name of key #" + std::to_string(i)));
    const std::string what = "key '" + ValidUtf8(key) + "'";
    const std::string json_key = ValidUtf8(key);
    if (metadata_.contains(json_key)) return c.Error(key_at, "duplicate " + what);
    const size_t type_at = c.pos();
    uint32_t type = 0;
    OWF_RETURN_IF_ERROR(c.Get(&type, "the value type of " + what));
    if (type >= kNumValueTypes) {
      return c.Error(type_at, "unknown value type " + std::to_string(type) + " (" + what + ")");
    }
    nlohmann::json value;
    OWF_RETURN_IF_ERROR(ParseValue(c, type, 0, what, &value));
    if (type == kArray) arrays_[key] = type_at + 4;
    if (key == "general.alignment") {
      if (type != kUint32) {
        return c.Error(type_at, "general.alignment has type " + std::string(ValueTypeName(type)) +
                                    ", expected UINT32");
      }
      alignment = value.get<uint32_t>();
      if (alignment == 0 || !std::has_single_bit(alignment)) {
        return c.Error(type_at + 4,
                       "general.alignment " + std::to_string(alignment) + " is not a power of two");
      }
    }
    metadata_[json_key] = std::move(value);
  }
  OWF_RETURN_IF_ERROR(ParseTensorInfos(c, tensor_count, alignment));
  metadata_["gguf.version"] = version;
  metadata_["gguf.alignment"] = alignment;
  files_ = {name_};
  return Status::Ok();
}

Status GgufReader::ParseTensorInfos(Cursor& c, uint64_t count, uint32_t alignment) {
  std::vector<size_t> offset_at;  // per tensor: byte offset of its offset field
  std::unordered_set<std::string> names;
  tensors_.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) {
    const size_t name_at = c.pos();
    TensorInfo t;
    OWF_RETURN_IF_ERROR(c.GetString(&t.name, "the name of tensor #" + std::to_string(i)));
    const std::string what = "tensor '" + ValidUtf8(t.name) + "'";
    if (!names.insert(t.name).second)
      return c.Error(name_at, "duplicate tensor name '" + ValidUtf8(t.name) + "'");
    const size_t dims_at = c.pos();
    uint32_t n_dims = 0;
    OWF_RETURN_IF_ERROR(c.Get(&n_dims, "n_dims of " + what));
    if (n_dims > kMaxDims) {
      return c.Error(dims_at, what + ": n_dims " + std::to_string(n_dims) +
                                  " exceeds the maximum of " + std::to_string(kMaxDims));
    }
    const size_t ne_at = c.pos();
    uint64_t ne[kMaxDims] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < n_dims; ++d) {
      OWF_RETURN_IF_ERROR(c.Get(&ne[d], "ne of " + what));
      if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Error(ne_at + 8 * d, what + ": ne[" + std::to_string(d) +
                                          "] = " + std::to_string(ne[d]) + " is negative as int64");
      }
    }
    const size_t type_at = c.pos();
    uint32_t type_id = 0;
    OWF_RETURN_IF_ERROR(c.Get(&type_id, "the type of " + what));
    const GgmlType* type = FindGgmlType(type_id);
    if (type == nullptr)
      return c.Error(type_at, what + ": unknown ggml type " + std::to_string(type_id));
    offset_at.push_back(c.pos());
    OWF_RETURN_IF_ERROR(c.Get(&t.offset, "the data offset of " + what));

    if (ne[0] % type->block != 0) {
      return c.Error(ne_at, what + " (" + type->name + "): ne[0] = " + std::to_string(ne[0]) +
                                " is not a multiple of the block size " +
                                std::to_string(type->block));
    }
    uint64_t numel = 1, nbytes = 0;
    bool overflow = __builtin_mul_overflow(ne[0] / type->block, uint64_t{type->bytes}, &nbytes);
    // Outermost first, as TensorInfo::numel() multiplies: every partial product must fit in int64.
    for (uint32_t d = kMaxDims; d-- > 0;)
      overflow |= __builtin_mul_overflow(numel, ne[d], &numel) ||
                  numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (uint32_t d = 1; d < kMaxDims; ++d)
      overflow |= __builtin_mul_overflow(nbytes, ne[d], &nbytes);
    if (overflow || numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      std::string dims;
      for (uint32_t d = 0; d < n_dims; ++d) dims += (d ? ", " : "") + std::to_string(ne[d]);
      return c.Error(ne_at, what + ": size overflows (ne = [" + dims + "], " + type->name + ")");
    }
    for (uint32_t d = n_dims; d-- > 0;) t.shape.push_back(static_cast<int64_t>(ne[d]));
    t.nbytes = nbytes;
    t.dtype_name = type->name;
    t.dtype = type_id == 0    ? DType::kF32
              : type_id == 1  ? DType::kF16
              : type_id == 30 ? DType::kBF16
                              : DType::kOther;
    t.quantised = IsQuantised(type_id);
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the first multiple of the alignment after the tensor infos.
  const uint64_t size = bytes_.size();
  const uint64_t data_start = (c.pos() + uint64_t{alignment} - 1) / alignment * alignment;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorInfo& t = tensors_[i];
    const std::string what = "tensor '" + ValidUtf8(t.name) + "'";
    if (t.offset % alignment != 0) {
      return c.Error(offset_at[i], what + ": offset " + std::to_string(t.offset) +
                                       " is not a multiple of the alignment " +
                                       std::to_string(alignment));
    }
    if (data_start > size || t.offset > size - data_start ||
        t.nbytes > size - data_start - t.offset) {
      return c.Error(offset_at[i],
                     what + ": data [" + std::to_string(t.offset) + ", +" +
                         std::to_string(t.nbytes) + " bytes) from the data section at byte " +
                         std::to_string(data_start) + " lies past the end of the file (" +
                         std::to_string(size) + " bytes)");
    }
    t.offset += data_start;
  }
  // No two tensors may share bytes.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  uint64_t end = 0;
  size_t last = 0;
  bool any = false;
  for (size_t i : order) {
    const TensorInfo& t = tensors_[i];
    if (t.nbytes == 0) continue;
    if (any && t.offset < end) {
      return c.Error(offset_at[i], "tensor '" + ValidUtf8(t.name) + "' (bytes " +
                                       std::to_string(t.offset) + " to " +
                                       std::to_string(t.offset + t.nbytes) + ") overlaps tensor '" +
                                       ValidUtf8(tensors_[last].name) + "' (ending at byte " +
                                       std::to_string(end) + ")");
    }
    if (!any || t.offset + t.nbytes > end) {
      end = t.offset + t.nbytes;
      last = i;
    }
    any = true;
  }
  return Status::Ok();
}

Result<std::unique_ptr<ModelReader>> Finish(std::unique_ptr<GgufReader> reader) {
  try {
    OWF_RETURN_IF_ERROR(reader->Parse());
  } catch (const std::bad_alloc&) {
    return Internal("out of memory parsing " + reader->name_);
  } catch (const std::exception& e) {
    return Internal(reader->name_ + ": " + e.what());
  }
  return std::unique_ptr<ModelReader>(std::move(reader));
}

// The element type, count and a cursor at the first element of array `key`.
struct ArrayView {
  uint32_t elem = 0;
  uint64_t count = 0;
  size_t begin = 0;
  const GgufReader* reader = nullptr;
};

Result<ArrayView> FindArray(const ModelReader& reader, const std::string& key) {
  const auto* g = dynamic_cast<const GgufReader*>(&reader);
  if (g == nullptr) {
    return InvalidArgument("GGUF array '" + key + "' requested from a " + reader.format() +
                           " reader");
  }
  const auto it = g->arrays_.find(key);
  if (it == g->arrays_.end()) {
    if (g->metadata().contains(key))
      return InvalidArgument(g->name_ + ": key '" + key + "' is not an array");
    return InvalidArgument(g->name_ + ": no key '" + key + "'");
  }
  Cursor c(g->bytes_, g->name_);
  c.Seek(it->second);
  ArrayView v;
  v.reader = g;
  OWF_RETURN_IF_ERROR(c.Get(&v.elem, "array element type"));
  OWF_RETURN_IF_ERROR(c.Get(&v.count, "array count"));
  v.begin = c.pos();
  return v;
}

Status WrongElementType(const ArrayView& v, const std::string& key, const char* wanted) {
  return InvalidArgument(v.reader->name_ + ": key '" + key + "' is an array of " +
                         ValueTypeName(v.elem) + ", not " + wanted);
}

}  // namespace

const char* GgmlTypeName(uint32_t type) {
  const GgmlType* t = FindGgmlType(type);
  return t ? t->name : nullptr;
}

Result<std::unique_ptr<ModelReader>> ParseGguf(std::span<const uint8_t> bytes,
                                               const std::string& name) {
  auto reader = std::make_unique<GgufReader>();
  reader->name_ = name;
  try {
    reader->copy_.assign(bytes.begin(), bytes.end());
  } catch (const std::bad_alloc&) {
    return Internal("out of memory copying " + name);
  }
  reader->bytes_ = reader->copy_;
  return Finish(std::move(reader));
}

Result<std::unique_ptr<ModelReader>> OpenGguf(const std::string& path) {
  OWF_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  auto reader = std::make_unique<GgufReader>();
  reader->name_ = path;
  reader->bytes_ = map->bytes();
  reader->map_ = std::move(map);
  return Finish(std::move(reader));
}

Result<std::vector<std::string>> GgufStringArray(const ModelReader& reader,
                                                 const std::string& key) {
  OWF_ASSIGN_OR_RETURN(ArrayView v, FindArray(reader, key));
  if (v.elem != kString) return WrongElementType(v, key, "STRING");
  Cursor c(v.reader->bytes_, v.reader->name_);
  c.Seek(v.begin);
  std::vector<std::string> out;
  try {
    out.resize(static_cast<size_t>(v.count));  // bounded by the file size when parsed
    for (auto& s : out) OWF_RETURN_IF_ERROR(c.GetString(&s, "key '" + key + "'"));
  } catch (const std::bad_alloc&) {
    return Internal("out of memory reading key '" + key + "'");
  }
  return out;
}

Result<std::vector<float>> GgufFloatArray(const ModelReader& reader, const std::string& key) {
  OWF_ASSIGN_OR_RETURN(ArrayView v, FindArray(reader, key));
  if (v.elem != kFloat32 && v.elem != kFloat64)
    return WrongElementType(v, key, "FLOAT32 or FLOAT64");
  Cursor c(v.reader->bytes_, v.reader->name_);
  c.Seek(v.begin);
  std::vector<float> out(static_cast<size_t>(v.count));
  for (float& x : out) {
    if (v.elem == kFloat32) {
      OWF_RETURN_IF_ERROR(c.Get(&x, "key '" + key + "'"));
    } else {
      double d;
      OWF_RETURN_IF_ERROR(c.Get(&d, "key '" + key + "'"));
      x = static_cast<float>(d);
    }
  }
  return out;
}

Result<std::vector<int32_t>> GgufIntArray(const ModelReader& reader, const std::string& key) {
  OWF_ASSIGN_OR_RETURN(ArrayView v, FindArray(reader, key));
  const size_t width = FixedSize(v.elem);
  if (width == 0 || v.elem == kFloat32 || v.elem == kFloat64)
    return WrongElementType(v, key, "integers");
  Cursor c(v.reader->bytes_, v.reader->name_);
  c.Seek(v.begin);
  std::vector<int32_t> out(static_cast<size_t>(v.count));
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t value = 0;
    bool fits = true;
    switch (v.elem) {
      case kUint8:
      case kBool: {
        uint8_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kInt8: {
        int8_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kUint16: {
        uint16_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kInt16: {
        int16_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kUint32: {
        uint32_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kInt32: {
        int32_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        value = x;
        break;
      }
      case kInt64: {
        OWF_RETURN_IF_ERROR(c.Get(&value, key));
        break;
      }
      case kUint64: {
        uint64_t x = 0;
        OWF_RETURN_IF_ERROR(c.Get(&x, key));
        fits = x <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
        value = fits ? static_cast<int64_t>(x) : 0;
        break;
      }
    }
    if (!fits || value < std::numeric_limits<int32_t>::min() ||
        value > std::numeric_limits<int32_t>::max()) {
      return InvalidData(v.reader->name_ + ": key '" + key + "' element " + std::to_string(i) +
                         " does not fit in int32");
    }
    out[i] = static_cast<int32_t>(value);
  }
  return out;
}

}  // namespace owf
