// Pieces shared by the tokenizers (src/model/tokenizer.cc, bpe_tokenizer.cc) and their tests.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "owf/core/status.h"
#include "owf/model/tokenizer.h"

namespace owf::internal {

// What a merge of two adjacent symbols gives: its priority (lower merges first) and the id of
// the merged symbol.
struct Merge {
  double priority;
  int merged;
};
using MergeFn = std::function<std::optional<Merge>(int left, int right)>;

// Repeatedly merges the adjacent pair of lowest priority (ties: leftmost) until no adjacent pair
// merges. O(n log n) with a priority queue over candidate pairs.
std::vector<int> MergeAdjacent(std::vector<int> symbols, const MergeFn& merge);

// The pre-tokenizer regexes implemented (see tokenizer.h for what is approximated).
enum class PreTokenizer {
  kGpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
            //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,   // as kLlama3 with \p{N} (single digits)
};
// Identifies a tokenizer.json Split regex; Unsupported for any other.
Result<PreTokenizer> PreTokenizerFromRegex(const std::string& pattern);
// Identifies GGUF tokenizer.ggml.pre ("llama-bpe", "qwen2", "gpt-2", ...).
Result<PreTokenizer> PreTokenizerFromGgufName(const std::string& name);
// Splits text into pre-tokens (consecutive substrings covering the text).
std::vector<std::string_view> PreTokenize(std::string_view text, PreTokenizer pre);

// A byte-level BPE vocabulary. `merges` are "left right" pairs in rank order. `special[i]` marks
// added / control tokens: matched literally in text, and left out by Decode.
struct ByteLevelBpeSpec {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<bool> special;
  std::vector<int> added;  // ids matched literally in text before pre-tokenizing
  PreTokenizer pre = PreTokenizer::kLlama3;
  bool add_prefix_space = false;
  bool ignore_merges = false;  // a pre-token that is itself a token is not merged (Llama 3)
  int bos = -1, eos = -1;
};
Result<std::unique_ptr<Tokenizer>> MakeByteLevelBpe(ByteLevelBpeSpec spec);

// tokenizer.ggml.token_type values (SentencePiece piece types).
enum TokenType {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

// A SentencePiece-style vocabulary: pieces with scores and types (empty types: all normal,
// <0xNN> pieces are byte tokens). Ids bos / eos / unk are -1 when absent.
std::unique_ptr<Tokenizer> MakeSentencePiece(std::vector<std::string> pieces,
                                             std::vector<float> scores, std::vector<int32_t> types,
                                             int bos, int eos, int unk, bool add_space_prefix);

}  // namespace owf::internal
