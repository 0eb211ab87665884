// The SentencePiece-style tokenizer of GGUF "llama" vocabularies, the pair-merging loop shared
// with byte-level BPE, and loading by source (GGUF metadata or tokenizer.json).
#include "owf/model/tokenizer.h"

#include <cmath>
#include <filesystem>
#include <queue>
#include <unordered_map>

#include "owf/io/file.h"
#include "owf/io/gguf.h"
#include "tokenizer_internal.h"

namespace owf {

std::vector<int> Tokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  const std::vector<int> body = EncodeText(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

const std::string& Tokenizer::Piece(int id) const {
  static const std::string kEmpty;
  return id >= 0 && id < vocab_size() ? pieces_[id] : kEmpty;
}

namespace internal {

std::vector<int> MergeAdjacent(std::vector<int> ids, const MergeFn& merge) {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return ids;
  // A doubly linked list over the symbols; a merged pair lives on in its left slot.
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    double priority;
    int left, right, left_id, right_id, merged;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    if (const std::optional<Merge> m = merge(ids[left], ids[right])) {
      queue.push({m->priority, left, right, ids[left], ids[right], m->merged});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale when either side has merged since the candidate was queued.
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || ids[c.left] != c.left_id ||
        ids[c.right] != c.right_id) {
      continue;
    }
    ids[c.left] = c.merged;
    alive[c.right] = 0;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  std::vector<int> out;
  for (int i = 0; i >= 0; i = next[i]) out.push_back(ids[i]);
  return out;
}

}  // namespace internal

namespace {

using internal::kByte;
using internal::kControl;
using internal::kNormal;
using internal::kUnused;
using internal::kUserDefined;

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // "▁" U+2581

// Length of the UTF-8 character starting at s[i]; 1 for a byte that does not start a valid one.
size_t Utf8CharLength(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return len;
}

// "<0x41>" -> 0x41, or -1.
int ByteOfPiece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  int value = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = piece[k];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                         std::vector<int32_t> types, int bos, int eos, int unk,
                         bool add_space_prefix)
      : scores_(std::move(scores)),
        types_(std::move(types)),
        unk_(unk),
        add_space_prefix_(add_space_prefix) {
    pieces_ = std::move(pieces);
    bos_ = bos;
    eos_ = eos;
    const bool typed = !types_.empty();
    if (!typed) types_.assign(pieces_.size(), kNormal);
    std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
    for (int id = 0; id < vocab_size(); ++id) {
      const std::string& p = pieces_[id];
      lookup_.emplace(p, id);
      const int byte = ByteOfPiece(p);
      if (byte >= 0 && (types_[id] == kByte || !typed)) {
        types_[id] = kByte;
        if (byte_ids_[byte] < 0) byte_ids_[byte] = id;
      } else if (!typed && (id == bos || id == eos)) {
        types_[id] = kControl;
      }
      if (Mergeable(id)) mergeable_.emplace(p, id);
    }
  }

  int Find(std::string_view piece) const override {
    const auto it = lookup_.find(std::string(piece));
    return it == lookup_.end() ? -1 : it->second;
  }

  std::string Decode(std::span<const int> ids) const override {
    std::string text;
    int prev = -1;
    for (const int id : ids) {
      text += DecodeNext(prev, id);
      prev = id;
    }
    return text;
  }

  std::string DecodeNext(int prev, int id) const override {
    if (id < 0 || id >= vocab_size()) return "";
    const int type = types_[id];
    if (type == kControl || type == kUnused) return "";
    if (type == kByte) return std::string(1, static_cast<char>(ByteOfPiece(pieces_[id])));
    std::string text;
    const std::string& p = pieces_[id];
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
        text += ' ';
        i += kSpaceMark.size();
      } else {
        text += p[i++];
      }
    }
    // The space the encoder put before the text.
    const bool at_start = prev < 0 || prev == bos_;
    if (add_space_prefix_ && at_start && !text.empty() && text[0] == ' ') text.erase(0, 1);
    return text;
  }

 protected:
  std::vector<int> EncodeText(std::string_view text) const override {
    if (text.empty()) return {};
    // Normalise: "▁" before the text and in place of every space.
    std::string norm(add_space_prefix_ ? kSpaceMark : "");
    for (const char c : text) {
      if (c == ' ') {
        norm += kSpaceMark;
      } else {
        norm += c;
      }
    }
    // One symbol per UTF-8 character, or its byte tokens when the character is not a piece.
    std::vector<int> symbols;
    for (size_t i = 0; i < norm.size();) {
      const size_t len = Utf8CharLength(norm, i);
      const auto it = mergeable_.find(norm.substr(i, len));
      if (it != mergeable_.end()) {
        symbols.push_back(it->second);
      } else {
        for (size_t k = i; k < i + len; ++k) {
          const int id = byte_ids_[static_cast<unsigned char>(norm[k])];
          if (id >= 0) {
            symbols.push_back(id);
          } else if (unk_ >= 0) {
            symbols.push_back(unk_);
          }
        }
      }
      i += len;
    }
    // Merge the adjacent pair forming the highest-scoring piece, until none does.
    return internal::MergeAdjacent(
        std::move(symbols), [&](int a, int b) -> std::optional<internal::Merge> {
          if (!Mergeable(a) || !Mergeable(b)) return std::nullopt;
          const auto it = mergeable_.find(pieces_[a] + pieces_[b]);
          if (it == mergeable_.end()) return std::nullopt;
          return internal::Merge{-static_cast<double>(scores_[it->second]), it->second};
        });
  }

 private:
  bool Mergeable(int id) const { return types_[id] == kNormal || types_[id] == kUserDefined; }

  std::vector<float> scores_;
  std::vector<int32_t> types_;
  std::unordered_map<std::string, int> lookup_;     // every piece (first id when repeated)
  std::unordered_map<std::string, int> mergeable_;  // normal and user-defined pieces
  int byte_ids_[256];                               // <0xNN> token of each byte, or -1
  int unk_ = -1;
  bool add_space_prefix_ = true;
};

// An optional token id from GGUF metadata: -1 when absent or outside [0, vocab).
int OptionalTokenId(const nlohmann::json& md, const std::string& key, size_t vocab) {
  const auto it = md.find(key);
  if (it == md.end() || !it->is_number_integer()) return -1;
  const int64_t v = it->get<int64_t>();
  return v >= 0 && static_cast<size_t>(v) < vocab ? static_cast<int>(v) : -1;
}

}  // namespace

std::unique_ptr<Tokenizer> internal::MakeSentencePiece(std::vector<std::string> pieces,
                                                       std::vector<float> scores,
                                                       std::vector<int32_t> types, int bos, int eos,
                                                       int unk, bool add_space_prefix) {
  return std::make_unique<SentencePieceTokenizer>(
      std::move(pieces), std::move(scores), std::move(types), bos, eos, unk, add_space_prefix);
}

Result<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const ModelReader& reader) {
  if (std::string(reader.format()) != "gguf") {
    return InvalidArgument(std::string("not a GGUF model (") + reader.format() + ")");
  }
  const nlohmann::json& md = reader.metadata();
  const auto model_it = md.find("tokenizer.ggml.model");
  if (model_it == md.end() || !model_it->is_string()) {
    return InvalidData("GGUF metadata has no string key 'tokenizer.ggml.model'");
  }
  const std::string model = *model_it;
  OWF_ASSIGN_OR_RETURN(std::vector<std::string> tokens,
                       GgufStringArray(reader, "tokenizer.ggml.tokens"));
  if (tokens.empty()) return InvalidData("GGUF key 'tokenizer.ggml.tokens' is empty");
  std::vector<int32_t> types;
  if (md.contains("tokenizer.ggml.token_type")) {
    OWF_ASSIGN_OR_RETURN(types, GgufIntArray(reader, "tokenizer.ggml.token_type"));
    if (types.size() != tokens.size()) {
      return InvalidData("GGUF key 'tokenizer.ggml.token_type' has " +
                         std::to_string(types.size()) + " entries for " +
                         std::to_string(tokens.size()) + " tokens");
    }
  }
  const int bos = OptionalTokenId(md, "tokenizer.ggml.bos_token_id", tokens.size());
  const int eos = OptionalTokenId(md, "tokenizer.ggml.eos_token_id", tokens.size());

  if (model == "llama") {
    OWF_ASSIGN_OR_RETURN(std::vector<float> scores,
                         GgufFloatArray(reader, "tokenizer.ggml.scores"));
    if (scores.size() != tokens.size()) {
      return InvalidData("GGUF key 'tokenizer.ggml.scores' has " + std::to_string(scores.size()) +
                         " entries for " + std::to_string(tokens.size()) + " tokens");
    }
    for (size_t i = 0; i < scores.size(); ++i) {
      if (!std::isfinite(scores[i])) {
        return InvalidData("GGUF key 'tokenizer.ggml.scores': score of token " + std::to_string(i) +
                           " is not finite");
      }
    }
    const int unk = OptionalTokenId(md, "tokenizer.ggml.unknown_token_id", tokens.size());
    const auto prefix_it = md.find("tokenizer.ggml.add_space_prefix");
    const bool add_space_prefix =
        prefix_it == md.end() || !prefix_it->is_boolean() || prefix_it->get<bool>();
    return internal::MakeSentencePiece(std::move(tokens), std::move(scores), std::move(types), bos,
                                       eos, unk, add_space_prefix);
  }
  if (model == "gpt2") {
    internal::ByteLevelBpeSpec spec;
    OWF_ASSIGN_OR_RETURN(const std::vector<std::string> merges,
                         GgufStringArray(reader, "tokenizer.ggml.merges"));
    for (const std::string& m : merges) {
      const size_t space = m.find(' ', 1);
      if (space == std::string::npos) {
        return InvalidData("GGUF key 'tokenizer.ggml.merges': merge '" + m +
                           "' is not two tokens separated by a space");
      }
      spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    const auto pre_it = md.find("tokenizer.ggml.pre");
    OWF_ASSIGN_OR_RETURN(
        spec.pre, internal::PreTokenizerFromGgufName(pre_it != md.end() && pre_it->is_string()
                                                         ? pre_it->get<std::string>()
                                                         : "default"));
    spec.special.assign(tokens.size(), false);
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] == kControl) spec.special[i] = true;
      if (types[i] == kControl || types[i] == kUserDefined)
        spec.added.push_back(static_cast<int>(i));
    }
    spec.tokens = std::move(tokens);
    spec.bos = bos;
    spec.eos = eos;
    return internal::MakeByteLevelBpe(std::move(spec));
  }
  return Unsupported("GGUF tokenizer model '" + model + "' is not supported (llama, gpt2)");
}

Result<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& path) {
  OWF_ASSIGN_OR_RETURN(const std::vector<uint8_t> bytes, ReadFileBytes(path));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    return InvalidData(path + ": not valid JSON: " + e.what());
  }
  Result<std::unique_ptr<Tokenizer>> t = ParseHfTokenizer(json);
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const ModelReader& reader) {
  if (std::string(reader.format()) == "gguf") return LoadGgufTokenizer(reader);
  if (reader.files().empty()) return InvalidArgument("the model has no files");
  const std::filesystem::path path =
      std::filesystem::path(reader.files()[0]).parent_path() / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return InvalidArgument("no tokenizer.json beside " + reader.files()[0]);
  }
  return LoadHfTokenizer(path.string());
}

}  // namespace owf
