// Tokenizers for Llama-family models: text <-> token ids.
//
// SentencePiece-style (GGUF tokenizer.ggml.model = "llama": Llama 1/2, Mistral, TinyStories):
// pieces with scores and types. Encode: prepend "▁" (U+2581) and replace every space with "▁",
// split into UTF-8 characters (a character that is not a piece becomes its byte tokens <0xNN>),
// then repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
// (ties: leftmost). Decode: concatenate pieces with "▁" -> " ", byte tokens -> their bytes, and
// drop the leading space the encoder added.
//
// Byte-level BPE (Hugging Face tokenizer.json "BPE" + ByteLevel, GGUF "gpt2": Llama 3, Qwen2,
// GPT-2): text is split by the model's pre-tokenizer regex, each piece's bytes are mapped to
// printable characters (GPT-2's byte-to-unicode table) and merged by merge rank. The regexes of
// Llama 3, Qwen2 and GPT-2 are implemented as hand-written scanners, exact for ASCII text;
// Unicode categories elsewhere (\p{L}, \p{N}, \s) come from a table of ranges that is exact for
// whitespace and the common scripts' digits and punctuation but treats combining marks of
// Indic and other scripts as letters. Normalizers (Qwen2's NFC) are not applied: input is
// assumed to be NFC already. Added tokens are matched literally (their lstrip / rstrip / single
// word flags are ignored).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "owf/core/status.h"
#include "owf/io/model.h"

namespace owf {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Text -> token ids, with bos_id() first when add_bos (and the vocabulary has one).
  std::vector<int> Encode(std::string_view text, bool add_bos = false) const;
  // Token ids -> text. Control and special tokens (BOS, EOS, <|...|>) produce nothing; ids
  // outside the vocabulary are skipped.
  virtual std::string Decode(std::span<const int> ids) const = 0;
  // The text of `id` when it follows `prev` (-1 at the start): for streaming output.
  // Concatenating these for a sequence gives Decode of it.
  virtual std::string DecodeNext(int prev, int id) const = 0;

  // A token's string as stored ("▁the", "Ġthe", "<0x0A>"); "" outside the vocabulary.
  const std::string& Piece(int id) const;
  // The id of a piece, or -1.
  virtual int Find(std::string_view piece) const = 0;
  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  int bos_id() const { return bos_; }  // -1 when none
  int eos_id() const { return eos_; }  // -1 when none

 protected:
  virtual std::vector<int> EncodeText(std::string_view text) const = 0;
  std::vector<std::string> pieces_;
  int bos_ = -1, eos_ = -1;
};

// From a GGUF file's metadata (tokenizer.ggml.model "llama" or "gpt2").
Result<std::unique_ptr<Tokenizer>> LoadGgufTokenizer(const ModelReader& reader);
// From a Hugging Face tokenizer.json (model type "BPE" with a byte-level pre-tokenizer).
Result<std::unique_ptr<Tokenizer>> ParseHfTokenizer(const nlohmann::json& tokenizer_json);
Result<std::unique_ptr<Tokenizer>> LoadHfTokenizer(const std::string& path);
// GGUF metadata, or the tokenizer.json beside a Hugging Face model's files.
Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const ModelReader& reader);

}  // namespace owf
