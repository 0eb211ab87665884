// Byte-level BPE (Hugging Face tokenizer.json "BPE" with a ByteLevel pre-tokenizer, GGUF
// "gpt2"): pre-tokenizer regexes as hand-written scanners, GPT-2's byte-to-unicode mapping, and
// rank-ordered merges. See include/owf/model/tokenizer.h for what is approximated.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "owf/model/tokenizer.h"
#include "tokenizer_internal.h"

namespace owf {
namespace internal {
namespace {

// ---- Unicode categories, as far as the pre-tokenizer regexes look at them.

enum class Cat : uint8_t { kLetter, kNumber, kSpace, kOther };

struct CatRange {
  char32_t lo, hi;
  Cat cat;
};

// Non-ASCII code points that are not letters (\p{L}): digits and other numbers (\p{N}), and
// punctuation, symbols, combining marks, format and private-use characters (kOther). Sorted.
// Everything else outside ASCII counts as a letter. Whitespace is handled separately.
constexpr CatRange kNonLetters[] = {
    {0x0080, 0x009F, Cat::kOther},   {0x00A1, 0x00A9, Cat::kOther},
    {0x00AB, 0x00B1, Cat::kOther},   {0x00B2, 0x00B3, Cat::kNumber},
    {0x00B4, 0x00B4, Cat::kOther},   {0x00B6, 0x00B8, Cat::kOther},
    {0x00B9, 0x00B9, Cat::kNumber},  {0x00BB, 0x00BB, Cat::kOther},
    {0x00BC, 0x00BE, Cat::kNumber},  {0x00BF, 0x00BF, Cat::kOther},
    {0x00D7, 0x00D7, Cat::kOther},   {0x00F7, 0x00F7, Cat::kOther},
    {0x02C2, 0x02C5, Cat::kOther},   {0x02D2, 0x02DF, Cat::kOther},
    {0x02E5, 0x02EB, Cat::kOther},   {0x02ED, 0x02ED, Cat::kOther},
    {0x02EF, 0x036F, Cat::kOther},   {0x0375, 0x0375, Cat::kOther},
    {0x037E, 0x037E, Cat::kOther},   {0x0384, 0x0385, Cat::kOther},
    {0x0387, 0x0387, Cat::kOther},   {0x03F6, 0x03F6, Cat::kOther},
    {0x0482, 0x0489, Cat::kOther},   {0x055A, 0x055F, Cat::kOther},
    {0x0589, 0x058A, Cat::kOther},   {0x058D, 0x058F, Cat::kOther},
    {0x0591, 0x05C7, Cat::kOther},   {0x05F3, 0x05F4, Cat::kOther},
    {0x0600, 0x061F, Cat::kOther},   {0x064B, 0x065F, Cat::kOther},
    {0x0660, 0x0669, Cat::kNumber},  {0x066A, 0x066D, Cat::kOther},
    {0x0670, 0x0670, Cat::kOther},   {0x06D4, 0x06D4, Cat::kOther},
    {0x06D6, 0x06ED, Cat::kOther},   {0x06F0, 0x06F9, Cat::kNumber},
    {0x0964, 0x0965, Cat::kOther},   {0x0966, 0x096F, Cat::kNumber},
    {0x0970, 0x0970, Cat::kOther},   {0x09E6, 0x09EF, Cat::kNumber},
    {0x0A66, 0x0A6F, Cat::kNumber},  {0x0AE6, 0x0AEF, Cat::kNumber},
    {0x0B66, 0x0B6F, Cat::kNumber},  {0x0BE6, 0x0BEF, Cat::kNumber},
    {0x0C66, 0x0C6F, Cat::kNumber},  {0x0CE6, 0x0CEF, Cat::kNumber},
    {0x0D66, 0x0D6F, Cat::kNumber},  {0x0E31, 0x0E31, Cat::kOther},
    {0x0E34, 0x0E3A, Cat::kOther},   {0x0E3F, 0x0E3F, Cat::kOther},
    {0x0E47, 0x0E4F, Cat::kOther},   {0x0E50, 0x0E59, Cat::kNumber},
    {0x0E5A, 0x0E5B, Cat::kOther},   {0x0ED0, 0x0ED9, Cat::kNumber},
    {0x0F20, 0x0F29, Cat::kNumber},  {0x1040, 0x1049, Cat::kNumber},
    {0x10FB, 0x10FB, Cat::kOther},   {0x1360, 0x1368, Cat::kOther},
    {0x1369, 0x137C, Cat::kNumber},  {0x166D, 0x166E, Cat::kOther},
    {0x16EB, 0x16ED, Cat::kOther},   {0x16EE, 0x16F0, Cat::kNumber},
    {0x17D4, 0x17D6, Cat::kOther},   {0x17D8, 0x17DB, Cat::kOther},
    {0x17E0, 0x17E9, Cat::kNumber},  {0x1800, 0x180F, Cat::kOther},
    {0x1810, 0x1819, Cat::kNumber},  {0x1AB0, 0x1AFF, Cat::kOther},
    {0x1DC0, 0x1DFF, Cat::kOther},   {0x1FBD, 0x1FBD, Cat::kOther},
    {0x1FBF, 0x1FC1, Cat::kOther},   {0x1FCD, 0x1FCF, Cat::kOther},
    {0x1FDD, 0x1FDF, Cat::kOther},   {0x1FED, 0x1FEF, Cat::kOther},
    {0x1FFD, 0x1FFE, Cat::kOther},   {0x2000, 0x206F, Cat::kOther},
    {0x2070, 0x2070, Cat::kNumber},  {0x2074, 0x2079, Cat::kNumber},
    {0x207A, 0x207E, Cat::kOther},   {0x2080, 0x2089, Cat::kNumber},
    {0x208A, 0x208E, Cat::kOther},   {0x20A0, 0x214F, Cat::kOther},
    {0x2150, 0x2182, Cat::kNumber},  {0x2185, 0x2189, Cat::kNumber},
    {0x218A, 0x245F, Cat::kOther},   {0x2460, 0x249B, Cat::kNumber},
    {0x249C, 0x24E9, Cat::kOther},   {0x24EA, 0x24FF, Cat::kNumber},
    {0x2500, 0x2775, Cat::kOther},   {0x2776, 0x2793, Cat::kNumber},
    {0x2794, 0x2BFF, Cat::kOther},   {0x2CE5, 0x2CEA, Cat::kOther},
    {0x2CF9, 0x2CFF, Cat::kOther},   {0x2E00, 0x2FFF, Cat::kOther},
    {0x3000, 0x3004, Cat::kOther},   {0x3007, 0x3007, Cat::kNumber},
    {0x3008, 0x3020, Cat::kOther},   {0x3021, 0x3029, Cat::kNumber},
    {0x302A, 0x3030, Cat::kOther},   {0x3036, 0x3037, Cat::kOther},
    {0x3038, 0x303A, Cat::kNumber},  {0x303D, 0x303F, Cat::kOther},
    {0x3099, 0x309C, Cat::kOther},   {0x30A0, 0x30A0, Cat::kOther},
    {0x30FB, 0x30FB, Cat::kOther},   {0x3200, 0x33FF, Cat::kOther},
    {0x4DC0, 0x4DFF, Cat::kOther},   {0xA490, 0xA4C6, Cat::kOther},
    {0xA4FE, 0xA4FF, Cat::kOther},   {0xA60D, 0xA60F, Cat::kOther},
    {0xA620, 0xA629, Cat::kNumber},  {0xA700, 0xA716, Cat::kOther},
    {0xA720, 0xA721, Cat::kOther},   {0xA789, 0xA78A, Cat::kOther},
    {0xA8CE, 0xA8CF, Cat::kOther},   {0xA8D0, 0xA8D9, Cat::kNumber},
    {0xA900, 0xA909, Cat::kNumber},  {0xA9D0, 0xA9D9, Cat::kNumber},
    {0xAA50, 0xAA59, Cat::kNumber},  {0xABF0, 0xABF9, Cat::kNumber},
    {0xD800, 0xF8FF, Cat::kOther},   {0xFB29, 0xFB29, Cat::kOther},
    {0xFD3E, 0xFD3F, Cat::kOther},   {0xFDFC, 0xFDFF, Cat::kOther},
    {0xFE00, 0xFE6F, Cat::kOther},   {0xFEFF, 0xFEFF, Cat::kOther},
    {0xFF01, 0xFF0F, Cat::kOther},   {0xFF10, 0xFF19, Cat::kNumber},
    {0xFF1A, 0xFF20, Cat::kOther},   {0xFF3B, 0xFF40, Cat::kOther},
    {0xFF5B, 0xFF65, Cat::kOther},   {0xFFE0, 0xFFFF, Cat::kOther},
    {0x1D000, 0x1D24F, Cat::kOther}, {0x1D7CE, 0x1D7FF, Cat::kNumber},
    {0x1F000, 0x1FBEF, Cat::kOther}, {0x1FBF0, 0x1FBF9, Cat::kNumber},
    {0xE0000, 0xE01EF, Cat::kOther}, {0xF0000, 0x10FFFF, Cat::kOther},
};

// Unicode White_Space (what \s matches).
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

Cat Classify(char32_t c) {
  if (IsWhiteSpace(c)) return Cat::kSpace;
  if (c < 0x80) {
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return Cat::kLetter;
    if (c >= '0' && c <= '9') return Cat::kNumber;
    return Cat::kOther;
  }
  const auto* end = std::end(kNonLetters);
  const auto* it = std::upper_bound(std::begin(kNonLetters), end, c,
                                    [](char32_t v, const CatRange& r) { return v < r.lo; });
  if (it != std::begin(kNonLetters) && c <= (it - 1)->hi) return (it - 1)->cat;
  return Cat::kLetter;
}

// A decoded code point with its byte range in the text. Bytes that are not valid UTF-8 are
// code points of their own (category kOther).
struct CodePoint {
  char32_t c;
  Cat cat;
  size_t begin, end;
};

std::vector<CodePoint> DecodeUtf8(std::string_view s) {
  std::vector<CodePoint> out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    bool valid = len > 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      valid = (cont & 0xC0) == 0x80;
      c = (c << 6) | (cont & 0x3F);
    }
    if (!valid) {
      out.push_back({0xFFFFFFFF, Cat::kOther, i, i + 1});
      ++i;
      continue;
    }
    out.push_back({c, Classify(c), i, i + len});
    i += len;
  }
  return out;
}

// ---- Pre-tokenizer scanners. Each returns the end (in code points) of the match at i.

class Scanner {
 public:
  explicit Scanner(std::string_view text) : cps_(DecodeUtf8(text)) {}
  size_t size() const { return cps_.size(); }
  const CodePoint& operator[](size_t i) const { return cps_[i]; }

  Cat cat(size_t i) const { return i < cps_.size() ? cps_[i].cat : Cat::kSpace; }
  char32_t at(size_t i) const { return i < cps_.size() ? cps_[i].c : 0; }
  bool IsCrLf(size_t i) const { return at(i) == '\r' || at(i) == '\n'; }
  size_t RunOf(Cat c, size_t i) const {
    while (i < cps_.size() && cps_[i].cat == c) ++i;
    return i;
  }
  // Length after the apostrophe of 's|'t|'re|'ve|'m|'ll|'d at i, or 0.
  size_t Contraction(size_t i, bool ignore_case) const {
    const auto lower = [&](size_t k) -> char32_t {
      const char32_t c = at(k);
      return ignore_case && c >= 'A' && c <= 'Z' ? c + 32 : c;
    };
    const char32_t a = lower(i), b = lower(i + 1);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 2;
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 1;
    return 0;
  }
  // \s+(?!\S)|\s+ at i (a whitespace character): all of the run when it ends the text or is a
  // single character, else all but its last character (which then starts the next match).
  size_t TrailingSpace(size_t i) const {
    const size_t end = RunOf(Cat::kSpace, i);
    return end == size() || end - i == 1 ? end : end - 1;
  }

 private:
  std::vector<CodePoint> cps_;
};

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t MatchLlama3(const Scanner& s, size_t i, size_t max_digits) {
  if (s.at(i) == '\'') {
    if (const size_t n = s.Contraction(i + 1, /*ignore_case=*/true)) return i + 1 + n;
  }
  if (s.cat(i) == Cat::kLetter) return s.RunOf(Cat::kLetter, i);
  if (!s.IsCrLf(i) && s.cat(i) != Cat::kNumber && s.cat(i + 1) == Cat::kLetter &&
      i + 1 < s.size()) {
    return s.RunOf(Cat::kLetter, i + 1);
  }
  if (s.cat(i) == Cat::kNumber) {
    size_t j = i;
    while (j < s.size() && s.cat(j) == Cat::kNumber && j - i < max_digits) ++j;
    return j;
  }
  const size_t start =
      s.at(i) == ' ' && i + 1 < s.size() && s.cat(i + 1) == Cat::kOther ? i + 1 : i;
  if (s.cat(start) == Cat::kOther) {
    size_t j = s.RunOf(Cat::kOther, start);
    while (j < s.size() && s.IsCrLf(j)) ++j;
    return j;
  }
  // Whitespace: up to the last line break of the run, else as \s+(?!\S)|\s+.
  const size_t end = s.RunOf(Cat::kSpace, i);
  for (size_t k = end; k > i; --k) {
    if (s.IsCrLf(k - 1)) return k;
  }
  return s.TrailingSpace(i);
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t MatchGpt2(const Scanner& s, size_t i) {
  if (s.at(i) == '\'') {
    if (const size_t n = s.Contraction(i + 1, /*ignore_case=*/false)) return i + 1 + n;
  }
  const size_t start =
      s.at(i) == ' ' && i + 1 < s.size() && s.cat(i + 1) != Cat::kSpace ? i + 1 : i;
  if (s.cat(start) != Cat::kSpace) return s.RunOf(s.cat(start), start);
  return s.TrailingSpace(i);
}

// ---- GPT-2's byte <-> printable character mapping.

struct ByteMap {
  std::array<std::string, 256> to_char;              // UTF-8 of the character for each byte
  std::unordered_map<std::string, uint8_t> to_byte;  // and back
};

const ByteMap& Bytes() {
  static const ByteMap map = [] {
    ByteMap m;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes stand for themselves; the rest take code points from U+0100.
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int c = printable ? b : next++;
      std::string utf8;
      if (c < 0x80) {
        utf8 += static_cast<char>(c);
      } else {
        utf8 += static_cast<char>(0xC0 | (c >> 6));
        utf8 += static_cast<char>(0x80 | (c & 0x3F));
      }
      m.to_char[b] = utf8;
      m.to_byte[utf8] = static_cast<uint8_t>(b);
    }
    return m;
  }();
  return map;
}

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  explicit ByteLevelBpeTokenizer(ByteLevelBpeSpec spec)
      : special_(std::move(spec.special)),
        pre_(spec.pre),
        add_prefix_space_(spec.add_prefix_space),
        ignore_merges_(spec.ignore_merges) {
    pieces_ = std::move(spec.tokens);
    special_.resize(pieces_.size(), false);
    bos_ = spec.bos;
    eos_ = spec.eos;
    for (int id = 0; id < vocab_size(); ++id) {
      if (!pieces_[id].empty()) vocab_.emplace(pieces_[id], id);
    }
    for (const int id : spec.added) {
      if (id >= 0 && id < vocab_size() && !pieces_[id].empty()) {
        added_.push_back(id);
        is_added_.insert(id);
        added_first_[static_cast<unsigned char>(pieces_[id][0])] = true;
      }
    }
    // Longest first, so that the longest added token at a position wins.
    std::stable_sort(added_.begin(), added_.end(),
                     [&](int a, int b) { return pieces_[a].size() > pieces_[b].size(); });
  }

  // Checks the vocabulary covers every byte and every merge; builds the tables.
  Status Init(const std::vector<std::pair<std::string, std::string>>& merges) {
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab_.find(Bytes().to_char[b]);
      if (it == vocab_.end()) {
        return InvalidData("byte-level vocabulary has no token for byte " + std::to_string(b) +
                           " ('" + Bytes().to_char[b] + "')");
      }
      byte_token_[b] = it->second;
    }
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [left, right] = merges[rank];
      const auto l = vocab_.find(left), r = vocab_.find(right), m = vocab_.find(left + right);
      if (l == vocab_.end() || r == vocab_.end() || m == vocab_.end()) {
        return InvalidData("merge " + std::to_string(rank) + " '" + left + " " + right +
                           "' uses or makes a token that is not in the vocabulary");
      }
      // The first (lowest) rank of a pair counts.
      merges_.emplace(Key(l->second, r->second), Merge{static_cast<double>(rank), m->second});
    }
    return Status::Ok();
  }

  int Find(std::string_view piece) const override {
    const auto it = vocab_.find(std::string(piece));
    return it == vocab_.end() ? -1 : it->second;
  }

  std::string Decode(std::span<const int> ids) const override {
    std::string text;
    for (const int id : ids) text += DecodeNext(-1, id);
    return text;
  }

  std::string DecodeNext(int, int id) const override {
    if (id < 0 || id >= vocab_size() || special_[id]) return "";
    const std::string& p = pieces_[id];
    if (is_added_.count(id)) return p;  // added text is stored as is
    std::string bytes;
    for (size_t i = 0; i < p.size();) {
      const size_t len = static_cast<unsigned char>(p[i]) >= 0xC0 && i + 1 < p.size() ? 2 : 1;
      const auto it = Bytes().to_byte.find(p.substr(i, len));
      if (it != Bytes().to_byte.end()) {
        bytes += static_cast<char>(it->second);
        i += len;
      } else {
        bytes += p[i++];  // not a mapped character: keep its bytes
      }
    }
    return bytes;
  }

 protected:
  std::vector<int> EncodeText(std::string_view text) const override {
    std::vector<int> ids;
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      const int added = AddedAt(text, i);
      if (added < 0) {
        ++i;
        continue;
      }
      EncodeChunk(text.substr(start, i - start), ids);
      ids.push_back(added);
      i += pieces_[added].size();
      start = i;
    }
    EncodeChunk(text.substr(start), ids);
    return ids;
  }

 private:
  static uint64_t Key(int left, int right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  // The longest added token starting at text[i], or -1.
  int AddedAt(std::string_view text, size_t i) const {
    if (!added_first_[static_cast<unsigned char>(text[i])]) return -1;
    for (const int id : added_) {
      if (text.compare(i, pieces_[id].size(), pieces_[id]) == 0) return id;
    }
    return -1;
  }

  void EncodeChunk(std::string_view chunk, std::vector<int>& ids) const {
    if (chunk.empty()) return;
    std::string prefixed;
    if (add_prefix_space_ && chunk[0] != ' ') {
      prefixed = std::string(" ").append(chunk);
      chunk = prefixed;
    }
    for (const std::string_view piece : PreTokenize(chunk, pre_)) {
      if (ignore_merges_) {
        std::string mapped;
        for (const char c : piece) mapped += Bytes().to_char[static_cast<unsigned char>(c)];
        if (const auto it = vocab_.find(mapped); it != vocab_.end()) {
          ids.push_back(it->second);
          continue;
        }
      }
      std::vector<int> symbols;
      for (const char c : piece) symbols.push_back(byte_token_[static_cast<unsigned char>(c)]);
      const std::vector<int> merged =
          MergeAdjacent(std::move(symbols), [&](int a, int b) -> std::optional<Merge> {
            const auto it = merges_.find(Key(a, b));
            if (it == merges_.end()) return std::nullopt;
            return it->second;
          });
      ids.insert(ids.end(), merged.begin(), merged.end());
    }
  }

  std::vector<bool> special_;
  PreTokenizer pre_;
  bool add_prefix_space_, ignore_merges_;
  std::unordered_map<std::string, int> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left, right) -> rank, merged id
  std::array<int, 256> byte_token_{};
  std::vector<int> added_;               // longest first
  std::array<bool, 256> added_first_{};  // whether an added token starts with this byte
  std::unordered_set<int> is_added_;
};

}  // namespace

std::vector<std::string_view> PreTokenize(std::string_view text, PreTokenizer pre) {
  const Scanner s(text);
  std::vector<std::string_view> out;
  for (size_t i = 0; i < s.size();) {
    const size_t j = pre == PreTokenizer::kGpt2    ? MatchGpt2(s, i)
                     : pre == PreTokenizer::kQwen2 ? MatchLlama3(s, i, 1)
                                                   : MatchLlama3(s, i, 3);
    out.push_back(text.substr(s[i].begin, s[j - 1].end - s[i].begin));
    i = j;
  }
  return out;
}

Result<PreTokenizer> PreTokenizerFromRegex(const std::string& pattern) {
  static const char kGpt2Pattern[] =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static const char kLlama3Pattern[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const char kQwen2Pattern[] =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (pattern == kGpt2Pattern) return PreTokenizer::kGpt2;
  if (pattern == kLlama3Pattern) return PreTokenizer::kLlama3;
  if (pattern == kQwen2Pattern) return PreTokenizer::kQwen2;
  return Unsupported("pre-tokenizer regex '" + pattern +
                     "' is not supported (GPT-2, Llama 3 and Qwen2 patterns)");
}

Result<PreTokenizer> PreTokenizerFromGgufName(const std::string& name) {
  if (name == "gpt-2" || name == "gpt2") return PreTokenizer::kGpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "smaug-bpe") return PreTokenizer::kLlama3;
  if (name == "qwen2") return PreTokenizer::kQwen2;
  return Unsupported("GGUF tokenizer.ggml.pre '" + name +
                     "' is not supported (gpt-2, llama-bpe, smaug-bpe, qwen2)");
}

Result<std::unique_ptr<Tokenizer>> MakeByteLevelBpe(ByteLevelBpeSpec spec) {
  const auto merges = std::move(spec.merges);
  auto t = std::make_unique<ByteLevelBpeTokenizer>(std::move(spec));
  OWF_RETURN_IF_ERROR(t->Init(merges));
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace internal

namespace {

using nlohmann::json;

// The first TemplateProcessing in a post_processor (possibly inside a Sequence), or nullptr.
const json* FindTemplate(const json& pp) {
  if (!pp.is_object()) return nullptr;
  const std::string type = pp.value("type", "");
  if (type == "TemplateProcessing") return &pp;
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const json& p : pp["processors"]) {
      if (const json* t = FindTemplate(p)) return t;
    }
  }
  return nullptr;
}

// The special token a TemplateProcessing puts before a single sequence, or -1.
int TemplateBos(const json& j, const std::unordered_map<std::string, int>& ids) {
  const json* t = j.contains("post_processor") ? FindTemplate(j["post_processor"]) : nullptr;
  if (t == nullptr || !t->contains("single") || !(*t)["single"].is_array() ||
      (*t)["single"].empty()) {
    return -1;
  }
  const json& first = (*t)["single"][0];
  if (!first.contains("SpecialToken")) return -1;
  const std::string name = first["SpecialToken"].value("id", "");
  if (t->contains("special_tokens") && (*t)["special_tokens"].contains(name)) {
    const json& list = (*t)["special_tokens"][name]["ids"];
    if (list.is_array() && list.size() == 1 && list[0].is_number_integer()) {
      return list[0].get<int>();
    }
  }
  const auto it = ids.find(name);
  return it == ids.end() ? -1 : it->second;
}

Result<std::unique_ptr<Tokenizer>> ParseHfTokenizerOrThrow(const json& j) {
  if (!j.is_object()) return InvalidData("tokenizer.json is not a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) {
    return InvalidData("tokenizer.json has no 'model' object");
  }
  const json& model = j["model"];
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") {
    return Unsupported("tokenizer.json model type '" + type + "' is not supported (BPE)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return InvalidData("tokenizer.json has no 'model.vocab' object");
  }
  // Vocabulary and added tokens, by id.
  constexpr int64_t kMaxVocab = int64_t{1} << 24;
  std::unordered_map<std::string, int> ids;
  std::vector<std::string> tokens;
  std::vector<bool> special, added;
  const auto put = [&](const std::string& text, const json& id, bool is_special,
                       bool is_added) -> Status {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocab) {
      return InvalidData("tokenizer.json: token '" + text + "' has a bad id " + id.dump());
    }
    const size_t i = id.get<size_t>();
    if (i >= tokens.size()) {
      tokens.resize(i + 1);
      special.resize(i + 1, false);
      added.resize(i + 1, false);
    }
    tokens[i] = text;
    special[i] = special[i] || is_special;
    added[i] = added[i] || is_added;
    ids.emplace(text, static_cast<int>(i));
    return Status::Ok();
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    OWF_RETURN_IF_ERROR(put(text, id, false, false));
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      OWF_RETURN_IF_ERROR(
          put(a.at("content").get<std::string>(), a.at("id"), a.value("special", false), true));
    }
  }
  // Merges: "left right" strings or [left, right] pairs, in rank order.
  std::vector<std::pair<std::string, std::string>> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) {
          return InvalidData("tokenizer.json: merge '" + s + "' is not two tokens");
        }
        merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2) {
        merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return InvalidData("tokenizer.json: merge " + m.dump() + " is not two tokens");
      }
    }
  }
  int bos = TemplateBos(j, ids);

  // The pre-tokenizer: a ByteLevel step, with the regex of a Split step or its own.
  const json pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
  std::vector<json> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
    for (const json& p : pre["pretokenizers"]) steps.push_back(p);
  } else if (pre.is_object()) {
    steps.push_back(pre);
  }
  bool byte_level = false, metaspace = false, add_prefix_space = false, byte_level_regex = false;
  std::optional<internal::PreTokenizer> split;
  for (const json& step : steps) {
    const std::string step_type = step.value("type", "");
    if (step_type == "ByteLevel") {
      byte_level = true;
      add_prefix_space = step.value("add_prefix_space", true);
      byte_level_regex = step.value("use_regex", true);
    } else if (step_type == "Split") {
      if (step.value("behavior", "Isolated") != "Isolated" || step.value("invert", false) ||
          !step.contains("pattern") || !step["pattern"].contains("Regex")) {
        return Unsupported(
            "tokenizer.json: only an isolating regex Split pre-tokenizer is "
            "supported: " +
            step.dump());
      }
      OWF_ASSIGN_OR_RETURN(split, internal::PreTokenizerFromRegex(step["pattern"]["Regex"]));
    } else if (step_type == "Metaspace") {
      metaspace = true;
      add_prefix_space =
          step.value("prepend_scheme", "always") != "never" && step.value("add_prefix_space", true);
    } else {
      return Unsupported("tokenizer.json pre-tokenizer type '" + step_type +
                         "' is not supported (ByteLevel, Split, Metaspace)");
    }
  }

  if (byte_level) {
    if (split && byte_level_regex) {
      return Unsupported(
          "tokenizer.json: a Split pre-tokenizer and a ByteLevel one with "
          "use_regex are not supported together");
    }
    if (!split && !byte_level_regex) {
      return Unsupported("tokenizer.json: ByteLevel pre-tokenizer without a regex");
    }
    internal::ByteLevelBpeSpec spec;
    spec.pre = split ? *split : internal::PreTokenizer::kGpt2;
    spec.add_prefix_space = add_prefix_space;
    spec.ignore_merges = model.value("ignore_merges", false);
    spec.merges = std::move(merges);
    spec.special = special;
    for (size_t i = 0; i < added.size(); ++i) {
      if (added[i]) spec.added.push_back(static_cast<int>(i));
    }
    spec.tokens = std::move(tokens);
    spec.bos = bos;
    return internal::MakeByteLevelBpe(std::move(spec));
  }

  // SentencePiece converted to tokenizer.json (Llama 2, Mistral): "▁" for spaces, byte
  // fallback, merges ordered by the pieces' scores: score = -rank of the merge making it.
  if (model.value("byte_fallback", false) && (metaspace || steps.empty())) {
    if (!metaspace) add_prefix_space = true;  // the normalizer prepends "▁" (Llama 2)
    std::vector<float> scores(tokens.size(), 0.0f);
    std::vector<bool> scored(tokens.size(), false);
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto it = ids.find(merges[rank].first + merges[rank].second);
      if (it != ids.end() && !scored[it->second]) {
        scores[it->second] = -static_cast<float>(rank);
        scored[it->second] = true;
      }
    }
    std::vector<int32_t> types(tokens.size(), internal::kNormal);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (special[i]) types[i] = internal::kControl;
      if (tokens[i].size() == 6 && tokens[i].compare(0, 3, "<0x") == 0) types[i] = internal::kByte;
    }
    int unk = -1;
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      const auto it = ids.find(model["unk_token"].get<std::string>());
      if (it != ids.end()) {
        unk = it->second;
        types[unk] = internal::kUnknown;
      }
    }
    const auto find = [&](const char* s) {
      const auto it = ids.find(s);
      return it == ids.end() ? -1 : it->second;
    };
    if (bos < 0) bos = find("<s>");
    return internal::MakeSentencePiece(std::move(tokens), std::move(scores), std::move(types), bos,
                                       find("</s>"), unk, add_prefix_space);
  }
  return Unsupported(
      "tokenizer.json: neither byte-level BPE (a ByteLevel pre-tokenizer) nor "
      "SentencePiece BPE (byte_fallback with Metaspace)");
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> ParseHfTokenizer(const nlohmann::json& tokenizer_json) {
  try {
    return ParseHfTokenizerOrThrow(tokenizer_json);
  } catch (const nlohmann::json::exception& e) {
    return InvalidData(std::string("tokenizer.json: ") + e.what());
  }
}

}  // namespace owf
