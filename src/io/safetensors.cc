// safetensors reader, written from the format description:
//
//   offset 0: N, uint64 little-endian, the header size
//   offset 8: N bytes of UTF-8 JSON, possibly padded with trailing spaces:
//             {"name": {"dtype": "F16", "shape": [1, 16], "data_offsets": [BEGIN, END]}, ...,
//              "__metadata__": {"key": "value", ...}}
//   offset 8 + N: the data buffer; BEGIN/END are relative to it.
//
// Validation follows the safetensors project: header size capped at 100 MB and inside the file,
// the header a JSON object starting with '{', every entry exactly {dtype, shape, data_offsets},
// known dtypes only, overflow-checked sizes equal to END - BEGIN, and the tensors sorted by
// offset tiling the data buffer exactly (no gap, no overlap, no trailing bytes). Duplicate JSON
// keys, which nlohmann::json would silently merge, are detected while parsing.
//
// Sharded models (model.safetensors.index.json: {"metadata": {...}, "weight_map": {"tensor":
// "shard file"}}) open every shard named; shard names must be plain file names in the index's
// directory, every mapped tensor must be in its shard and every shard tensor in the map.
// The reader's metadata() is the union of the shards' "__metadata__" (first shard wins on a
// conflicting key) plus, when the index has one, its "metadata" object under "index".

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "owf/io/mapped_file.h"
#include "owf/io/model.h"
#include "owf/io/json_integer.h"
#include "safetensors_internal.h"

namespace owf {

namespace safetensors_internal {

const DTypeEntry* FindDType(std::string_view name) {
  static constexpr DTypeEntry kTable[] = {
      {"F64", 64, DType::kOther},    {"F32", 32, DType::kF32},      {"F16", 16, DType::kF16},
      {"BF16", 16, DType::kBF16},    {"I64", 64, DType::kOther},    {"I32", 32, DType::kOther},
      {"I16", 16, DType::kOther},    {"I8", 8, DType::kOther},      {"U64", 64, DType::kOther},
      {"U32", 32, DType::kOther},    {"U16", 16, DType::kOther},    {"U8", 8, DType::kOther},
      {"BOOL", 8, DType::kOther},    {"F8_E4M3", 8, DType::kOther}, {"F8_E5M2", 8, DType::kOther},
      {"F8_E8M0", 8, DType::kOther}, {"F6_E2M3", 6, DType::kOther}, {"F6_E3M2", 6, DType::kOther},
      {"F4", 4, DType::kOther},      {"C64", 64, DType::kOther},
  };
  for (const DTypeEntry& e : kTable) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

bool ByteSize(const std::vector<int64_t>& shape, int bits, uint64_t* bytes, std::string* why) {
  uint64_t numel = 1;
  for (const int64_t d : shape) {
    if (d < 0) {
      *why = "shape " + ShapeText(shape) + " has a negative dimension";
      return false;
    }
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel) ||
        numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *why = "shape " + ShapeText(shape) + " has more elements than fit in 64 bits";
      return false;
    }
  }
  uint64_t nbits = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(bits), &nbits)) {
    *why = "shape " + ShapeText(shape) + " needs more bytes than fit in 64 bits";
    return false;
  }
  if (nbits % 8 != 0) {
    *why = "shape " + ShapeText(shape) + " of " + std::to_string(bits) +
           "-bit elements is not a whole number of bytes";
    return false;
  }
  *bytes = nbits / 8;
  return true;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace safetensors_internal

namespace {

using nlohmann::ordered_json;
using safetensors_internal::ByteSize;
using safetensors_internal::FindDType;
using safetensors_internal::kMaxHeaderSize;
using safetensors_internal::ShapeText;

// Headers nest three levels ({name: {shape: [...]}}); deeper input is refused before it can
// make the parser allocate a value per byte.
constexpr int kMaxJsonDepth = 16;

// Quotes untrusted text for a message, truncating long values.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  std::string out = "'";
  out.append(s.substr(0, kMaxShown));
  if (s.size() > kMaxShown) out.append("...");
  out.push_back('\'');
  return out;
}

std::string OffsetsText(uint64_t begin, uint64_t end) {
  return "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// Thrown from the parser callback to stop parsing; never leaves this file.
struct JsonAbort {
  std::string message;
};

// Parses JSON text, rejecting duplicate object keys and nesting deeper than kMaxJsonDepth.
// `what` prefixes messages ("model.safetensors: header"); `base` is the file offset of text[0].
Result<ordered_json> ParseStrictJson(std::string_view text, const std::string& what,
                                     uint64_t base) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto callback = [&](int depth, ordered_json::parse_event_t event, ordered_json& parsed) {
    using Event = ordered_json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxJsonDepth) {
      throw JsonAbort{what + " nests JSON deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels"};
    }
    if (event == Event::object_start) {
      keys.emplace_back();
    } else if (event == Event::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == Event::key && !keys.empty() && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(key).second) {
        throw JsonAbort{what + ": duplicate key " + Quote(key) +
                        (keys.size() == 1 ? " at the top level" : " in a nested object")};
      }
    }
    return true;
  };
  try {
    return ordered_json::parse(text.begin(), text.end(), callback);
  } catch (const JsonAbort& e) {
    return InvalidData(e.message);
  } catch (const ordered_json::parse_error& e) {
    return InvalidData(what + " is not valid JSON (error at file offset " +
                       std::to_string(base + (e.byte > 0 ? e.byte - 1 : 0)) + "): " + e.what());
  } catch (const ordered_json::exception& e) {
    return InvalidData(what + " is not valid JSON: " + e.what());
  } catch (const std::bad_alloc&) {
    return InvalidData(what + ": out of memory parsing JSON");
  }
}

std::string Describe(const ordered_json& v) {
  try {
    return Quote(v.dump());
  } catch (const ordered_json::exception&) {
    return std::string("a JSON ") + v.type_name();
  }
}

struct ParsedHeader {
  std::vector<TensorInfo> tensors;  // sorted by offset
  nlohmann::json metadata = nlohmann::json::object();
};

// Validates one header entry and fills `t` (offset still relative to the data buffer).
Status ParseEntry(const std::string& where, const ordered_json& entry, uint64_t data_len,
                  TensorInfo* t) {
  if (!entry.is_object()) return InvalidData(where + ": entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) return InvalidData(where + ": missing '" + key + "'");
  }
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return InvalidData(where + ": unexpected key " + Quote(key));
    }
  }
  const ordered_json& dtype = entry["dtype"];
  if (!dtype.is_string()) return InvalidData(where + ": dtype is not a string");
  const std::string& dtype_name = dtype.get_ref<const std::string&>();
  const auto* dt = FindDType(dtype_name);
  if (dt == nullptr) return InvalidData(where + ": unknown dtype " + Quote(dtype_name));
  t->dtype = dt->dtype;
  t->dtype_name = dt->name;

  const ordered_json& shape = entry["shape"];
  if (!shape.is_array()) return InvalidData(where + ": shape is not a JSON array");
  t->shape.reserve(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    const std::optional<int64_t> d = JsonIntegerIf<int64_t>(shape[i]);
    if (!d || *d < 0) {
      return InvalidData(where + ": shape entry " + std::to_string(i) + " is " +
                         Describe(shape[i]) +
                         (d ? ", a negative dimension" : ", not an integer in [0, 2^63)"));
    }
    t->shape.push_back(*d);
  }

  const ordered_json& offsets = entry["data_offsets"];
  const bool pair = offsets.is_array() && offsets.size() == 2;
  const std::optional<uint64_t> begin_if =
      pair ? JsonIntegerIf<uint64_t>(offsets[0]) : std::nullopt;
  const std::optional<uint64_t> end_if = pair ? JsonIntegerIf<uint64_t>(offsets[1]) : std::nullopt;
  if (!begin_if || !end_if) {
    return InvalidData(where + ": data_offsets " + Describe(offsets) +
                       " is not a pair of non-negative integers");
  }
  const uint64_t begin = *begin_if, end = *end_if;
  if (begin > end) {
    return InvalidData(where + ": " + OffsetsText(begin, end) + " has begin > end");
  }
  if (end > data_len) {
    return InvalidData(where + ": " + OffsetsText(begin, end) +
                       " run past the end of the data buffer (" + std::to_string(data_len) +
                       " bytes)");
  }
  uint64_t need = 0;
  std::string why;
  if (!ByteSize(t->shape, dt->bits, &need, &why)) {
    return InvalidData(where + ": " + why + " (dtype " + dt->name + ")");
  }
  if (end - begin != need) {
    return InvalidData(where + ": " + OffsetsText(begin, end) + " but shape " +
                       ShapeText(t->shape) + " " + dt->name + " needs " + std::to_string(need) +
                       " bytes");
  }
  t->offset = begin;
  t->nbytes = need;
  return Status::Ok();
}

// Parses and validates a whole safetensors image. Tensor offsets come back absolute.
Result<ParsedHeader> ParseImage(std::span<const uint8_t> bytes, const std::string& name,
                                int shard) {
  if (bytes.size() < 8) {
    return InvalidData(name + ": file is " + std::to_string(bytes.size()) +
                       " bytes, too short for the 8-byte header size");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[static_cast<size_t>(i)];
  if (n > kMaxHeaderSize) {
    return InvalidData(name + ": header size " + std::to_string(n) + " exceeds the limit of " +
                       std::to_string(kMaxHeaderSize) + " bytes");
  }
  const uint64_t after = bytes.size() - 8;
  if (n > after) {
    return InvalidData(name + ": header size " + std::to_string(n) + " but only " +
                       std::to_string(after) + " bytes follow the size field (file is truncated)");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, n);
  if (text.empty() || text[0] != '{') {
    std::string first = "nothing";
    if (!text.empty()) {
      const unsigned char c = static_cast<unsigned char>(text[0]);
      first =
          (c >= 0x21 && c <= 0x7e) ? std::string("'") + text[0] + "'" : "byte " + std::to_string(c);
    }
    return InvalidData(name + ": header is not a JSON object: it starts with " + first +
                       " at offset 8");
  }
  OWF_ASSIGN_OR_RETURN(ordered_json header, ParseStrictJson(text, name + ": header", 8));
  if (!header.is_object()) return InvalidData(name + ": header is not a JSON object");

  const uint64_t data_start = 8 + n;
  const uint64_t data_len = bytes.size() - data_start;
  ParsedHeader out;
  try {
    out.tensors.reserve(header.size());
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        if (!value.is_object()) {
          return InvalidData(name + ": __metadata__ is not a JSON object");
        }
        uint64_t total = 0;
        for (const auto& [mk, mv] : value.items()) {
          if (!mv.is_string()) {
            return InvalidData(name + ": __metadata__ value for key " + Quote(mk) + " is " +
                               Describe(mv) + ", not a string");
          }
          total += mk.size() + mv.get_ref<const std::string&>().size();
          if (total > n) {
            return InvalidData(name + ": __metadata__ holds more text than the header (" +
                               std::to_string(n) + " bytes)");
          }
          out.metadata[mk] = mv.get<std::string>();
        }
        continue;
      }
      TensorInfo t;
      t.name = key;
      t.shard = shard;
      OWF_RETURN_IF_ERROR(ParseEntry(name + ": tensor " + Quote(key), value, data_len, &t));
      out.tensors.push_back(std::move(t));
    }
  } catch (const std::bad_alloc&) {
    return InvalidData(name + ": out of memory reading the header");
  } catch (const ordered_json::exception& e) {
    return InvalidData(name + ": malformed header: " + e.what());
  }

  // The tensors, ordered by offset, must tile the data buffer exactly.
  std::stable_sort(out.tensors.begin(), out.tensors.end(),
                   [](const TensorInfo& a, const TensorInfo& b) {
                     return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
                   });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : out.tensors) {
    const uint64_t begin = t.offset, end = t.offset + t.nbytes;
    if (begin < covered) {
      return InvalidData(name + ": tensor " + Quote(t.name) + ": " + OffsetsText(begin, end) +
                         " overlaps tensor " + Quote(prev->name) + " which ends at " +
                         std::to_string(covered));
    }
    if (begin > covered) {
      return InvalidData(
          name + ": tensor " + Quote(t.name) + ": " + OffsetsText(begin, end) +
          " leaves a gap of " + std::to_string(begin - covered) + " bytes after " +
          (prev ? "tensor " + Quote(prev->name) : std::string("the start of the data buffer")) +
          " (expected begin " + std::to_string(covered) + ")");
    }
    covered = end;
    prev = &t;
  }
  if (covered != data_len) {
    return InvalidData(name + ": data buffer is " + std::to_string(data_len) +
                       " bytes but the tensors cover " + std::to_string(covered) + " (" +
                       std::to_string(data_len - covered) + " trailing bytes at file offset " +
                       std::to_string(data_start + covered) + ")");
  }
  for (TensorInfo& t : out.tensors) t.offset += data_start;
  return out;
}

class SafetensorsReader : public ModelReader {
 public:
  const char* format() const override { return "safetensors"; }

  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    if (t.shard < 0 || static_cast<size_t>(t.shard) >= shards_.size()) return {};
    const std::span<const uint8_t> b = shards_[static_cast<size_t>(t.shard)];
    if (t.offset > b.size() || t.nbytes > b.size() - t.offset) return {};
    return b.subspan(t.offset, t.nbytes);
  }

  void Release(const TensorInfo& t) const override {
    if (t.shard >= 0 && static_cast<size_t>(t.shard) < maps_.size() && maps_[static_cast<size_t>(t.shard)])
      maps_[static_cast<size_t>(t.shard)]->Release(RawBytes(t));
  }

  // Adds a shard's bytes (kept alive by `map` or by owned_) and its parsed header.
  void AddShard(std::span<const uint8_t> bytes, std::shared_ptr<MappedFile> map,
                const std::string& path, ParsedHeader header) {
    shards_.push_back(bytes);
    maps_.push_back(std::move(map));  // null for in-memory images
    files_.push_back(path);
    for (auto& t : header.tensors) tensors_.push_back(std::move(t));
    for (auto& [k, v] : header.metadata.items()) {
      if (!metadata_.contains(k)) metadata_[k] = v;
    }
  }
  std::vector<uint8_t>& owned() { return owned_; }
  nlohmann::json& metadata_ref() { return metadata_; }

 private:
  std::vector<std::span<const uint8_t>> shards_;
  std::vector<std::shared_ptr<MappedFile>> maps_;  // one per shard, may be null
  std::vector<uint8_t> owned_;
};

// A shard name from an index must be a plain file name: no directories, no "..".
bool IsPlainFileName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

}  // namespace

Result<std::unique_ptr<ModelReader>> ParseSafetensors(std::span<const uint8_t> bytes,
                                                      const std::string& name) {
  auto reader = std::make_unique<SafetensorsReader>();
  try {
    reader->owned().assign(bytes.begin(), bytes.end());
  } catch (const std::bad_alloc&) {
    return Internal(name + ": out of memory copying " + std::to_string(bytes.size()) + " bytes");
  }
  const std::span<const uint8_t> copy(reader->owned());
  OWF_ASSIGN_OR_RETURN(ParsedHeader header, ParseImage(copy, name, 0));
  reader->AddShard(copy, nullptr, name, std::move(header));
  return std::unique_ptr<ModelReader>(std::move(reader));
}

Result<std::unique_ptr<ModelReader>> OpenSafetensors(const std::string& path) {
  OWF_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  OWF_ASSIGN_OR_RETURN(ParsedHeader header, ParseImage(map->bytes(), path, 0));
  auto reader = std::make_unique<SafetensorsReader>();
  const auto bytes = map->bytes();
  reader->AddShard(bytes, std::move(map), path, std::move(header));
  return std::unique_ptr<ModelReader>(std::move(reader));
}

Result<std::unique_ptr<ModelReader>> OpenSafetensorsIndex(const std::string& index) {
  namespace fs = std::filesystem;
  OWF_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> index_map, MappedFile::Open(index));
  const auto index_bytes = index_map->bytes();
  if (index_bytes.size() > kMaxHeaderSize) {
    return InvalidData(index + ": index is " + std::to_string(index_bytes.size()) +
                       " bytes, over the limit of " + std::to_string(kMaxHeaderSize));
  }
  const std::string_view text(reinterpret_cast<const char*>(index_bytes.data()),
                              index_bytes.size());
  OWF_ASSIGN_OR_RETURN(ordered_json doc, ParseStrictJson(text, index, 0));
  if (!doc.is_object()) return InvalidData(index + ": index is not a JSON object");
  if (!doc.contains("weight_map")) return InvalidData(index + ": missing 'weight_map'");
  const ordered_json& weight_map = doc["weight_map"];
  if (!weight_map.is_object()) return InvalidData(index + ": 'weight_map' is not a JSON object");
  if (weight_map.empty()) return InvalidData(index + ": 'weight_map' is empty");
  if (doc.contains("metadata") && !doc["metadata"].is_object()) {
    return InvalidData(index + ": 'metadata' is not a JSON object");
  }

  // Shard names, sorted (model-00001-of-00003.safetensors, ...), and each tensor's shard.
  std::map<std::string, int> shard_ids;
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (!shard.is_string()) {
      return InvalidData(index + ": weight_map entry for tensor " + Quote(tensor) + " is " +
                         Describe(shard) + ", not a file name");
    }
    const std::string& file = shard.get_ref<const std::string&>();
    if (!IsPlainFileName(file)) {
      return InvalidData(index + ": weight_map maps tensor " + Quote(tensor) + " to " +
                         Quote(file) + ", which is not a plain file name in the index's directory");
    }
    shard_ids.emplace(file, 0);
  }
  std::vector<std::string> shard_names;
  for (auto& [file, id] : shard_ids) {
    id = static_cast<int>(shard_names.size());
    shard_names.push_back(file);
  }
  std::unordered_map<std::string, int> expected;  // tensor -> shard id
  for (const auto& [tensor, shard] : weight_map.items()) {
    expected.emplace(tensor, shard_ids.at(shard.get_ref<const std::string&>()));
  }

  const fs::path dir = fs::path(index).parent_path();
  auto reader = std::make_unique<SafetensorsReader>();
  std::set<std::string> seen;  // tensors the shards supplied
  for (size_t s = 0; s < shard_names.size(); ++s) {
    const std::string path = dir.empty() ? shard_names[s] : (dir / shard_names[s]).string();
    auto map = MappedFile::Open(path);
    if (!map.ok()) return map.status().WithContext(index + ": shard " + Quote(shard_names[s]));
    OWF_ASSIGN_OR_RETURN(ParsedHeader header,
                         ParseImage((*map)->bytes(), path, static_cast<int>(s)));
    for (const TensorInfo& t : header.tensors) {
      const auto it = expected.find(t.name);
      if (it == expected.end()) {
        return InvalidData(index + ": shard " + Quote(shard_names[s]) + " holds tensor " +
                           Quote(t.name) + ", which the weight_map does not list");
      }
      if (it->second != static_cast<int>(s)) {
        return InvalidData(index + ": shard " + Quote(shard_names[s]) + " holds tensor " +
                           Quote(t.name) + ", which the weight_map puts in " +
                           Quote(shard_names[static_cast<size_t>(it->second)]));
      }
      seen.insert(t.name);
    }
    const auto bytes = (*map)->bytes();
    reader->AddShard(bytes, std::move(*map), path, std::move(header));
  }
  if (seen.size() != expected.size()) {
    // Name the first missing tensor in weight_map order, for a stable message.
    for (const auto& [tensor, shard] : weight_map.items()) {
      if (!seen.count(tensor)) {
        return InvalidData(index + ": weight_map puts tensor " + Quote(tensor) + " in " +
                           Quote(shard.get_ref<const std::string&>()) +
                           ", but that shard has no such tensor (" +
                           std::to_string(expected.size() - seen.size()) + " missing in all)");
      }
    }
  }
  if (doc.contains("metadata")) {
    try {
      reader->metadata_ref()["index"] = nlohmann::json::parse(doc["metadata"].dump());
    } catch (const nlohmann::json::exception& e) {
      return InvalidData(index + ": 'metadata' cannot be copied: " + e.what());
    }
  }
  return std::unique_ptr<ModelReader>(std::move(reader));
}

}  // namespace owf
