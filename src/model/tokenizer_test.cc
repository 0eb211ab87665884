#include "owf/model/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "owf/io/model.h"
#include "tokenizer_internal.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
using internal::PreTokenize;
using internal::PreTokenizer;

std::string ModelPath() { return std::string(OWF_SHARED_DIR) + "/models/stories260K.gguf"; }

std::unique_ptr<Tokenizer> StoriesTokenizer() {
  auto reader = OpenModel(ModelPath());
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return nullptr;
  auto tok = LoadTokenizer(**reader);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

#define SKIP_WITHOUT_MODEL() \
  if (!fs::exists(ModelPath())) GTEST_SKIP() << "no model at " << ModelPath()

// ---- SentencePiece-style vocabulary of stories260K.gguf.

TEST(SentencePiece, StoriesVocabulary) {
  SKIP_WITHOUT_MODEL();
  auto tok = StoriesTokenizer();
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->Piece(1), "<s>");
  EXPECT_EQ(tok->Piece(13), "<0x0A>");
  EXPECT_EQ(tok->Piece(-1), "");
  EXPECT_EQ(tok->Piece(512), "");
}

TEST(SentencePiece, KnownIdsForOnceUponATime) {
  SKIP_WITHOUT_MODEL();
  auto tok = StoriesTokenizer();
  ASSERT_NE(tok, nullptr);
  // The text becomes "▁Once▁upon▁a▁time": four whole-word pieces of the vocabulary.
  const std::vector<int> expected = {tok->Find("▁Once"), tok->Find("▁upon"), tok->Find("▁a"),
                                     tok->Find("▁time")};
  EXPECT_EQ(expected, (std::vector<int>{403, 407, 261, 378}));
  EXPECT_EQ(tok->Encode("Once upon a time"), expected);
  EXPECT_EQ(tok->Encode("Once upon a time", /*add_bos=*/true),
            (std::vector<int>{1, 403, 407, 261, 378}));
  // " Once upon a time": the leading space is one more "▁" (a piece of its own here).
  const std::vector<int> spaced = tok->Encode(" Once upon a time");
  ASSERT_EQ(spaced.size(), 5u);
  EXPECT_EQ(tok->Piece(spaced[0]), "▁");
  EXPECT_EQ(std::vector<int>(spaced.begin() + 1, spaced.end()), expected);
  EXPECT_EQ(tok->Decode(spaced), " Once upon a time");
  EXPECT_EQ(tok->Encode("Lily"), std::vector<int>{tok->Find("▁Lily")});
  EXPECT_TRUE(tok->Encode("").empty());
}

TEST(SentencePiece, RoundTrips) {
  SKIP_WITHOUT_MODEL();
  auto tok = StoriesTokenizer();
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> texts = {
      "Once upon a time, there was a little girl named Lily.",
      "She loved to play outside in the park with her friends.",
      "Tom said, \"Let's go to the store!\" and they ran home.",
      "One day,  two spaces.\nA new line, and a tab\there.",
      "  leading and trailing spaces  ",
      "The sun was hot. The dog was happy: 123 + 45 = 168?",
  };
  for (const std::string& text : texts) {
    const std::vector<int> ids = tok->Encode(text);
    EXPECT_EQ(tok->Decode(ids), text);
    // With BOS in front the leading space is dropped the same way.
    EXPECT_EQ(tok->Decode(tok->Encode(text, true)), text);
    // Multi-character pieces are used: far fewer tokens than bytes.
    EXPECT_LT(ids.size() * 10, text.size() * 7) << text;
    // Streaming decode agrees with Decode.
    std::string streamed;
    int prev = tok->bos_id();
    for (int id : ids) {
      streamed += tok->DecodeNext(prev, id);
      prev = id;
    }
    EXPECT_EQ(streamed, text);
  }
}

TEST(SentencePiece, ByteFallbackForNonAscii) {
  SKIP_WITHOUT_MODEL();
  auto tok = StoriesTokenizer();
  ASSERT_NE(tok, nullptr);
  const std::string text = "Café naïve — 日本語 🙂 done";
  const std::vector<int> ids = tok->Encode(text);
  EXPECT_EQ(tok->Decode(ids), text);
  int byte_tokens = 0;
  for (int id : ids) byte_tokens += tok->Piece(id).rfind("<0x", 0) == 0;
  EXPECT_GE(byte_tokens, 3 * 3 + 4);  // at least the three CJK characters and the emoji
  // "🙂" is F0 9F 99 82: its byte tokens appear in order.
  const std::vector<int> smile = {tok->Find("<0xF0>"), tok->Find("<0x9F>"), tok->Find("<0x99>"),
                                  tok->Find("<0x82>")};
  EXPECT_NE(std::search(ids.begin(), ids.end(), smile.begin(), smile.end()), ids.end());
}

TEST(SentencePiece, MergesByScore) {
  // Pieces: a, b, c, "ab" and "bc"; "abc" merges into whichever of ab / bc scores higher.
  const std::vector<std::string> pieces = {"<unk>", "<s>", "</s>", "▁",  "a",     "b",
                                           "c",     "ab",  "bc",   "▁a", "<0x78>"};
  const std::vector<int32_t> types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6};
  std::vector<float> scores = {0, 0, 0, -1, -2, -2, -2, -5, -4, -9, 0};
  auto tok = internal::MakeSentencePiece(pieces, scores, types, 1, 2, 0, true);
  EXPECT_EQ(tok->Encode("abc"), (std::vector<int>{9, 8}));  // bc first, then ▁a
  scores[7] = -3;                                           // now "ab" beats "bc": ▁ ab c
  tok = internal::MakeSentencePiece(pieces, scores, types, 1, 2, 0, true);
  EXPECT_EQ(tok->Encode("abc"), (std::vector<int>{3, 7, 6}));
  // A character that is no piece: its bytes, or <unk> for a byte with no token.
  EXPECT_EQ(tok->Encode("x"), (std::vector<int>{3, 10}));
  EXPECT_EQ(tok->Encode("y"), (std::vector<int>{3, 0}));
  EXPECT_EQ(tok->Decode(tok->Encode("abc x")), "abc x");
}

// ---- Byte-level BPE.

// GPT-2's byte -> character table, written out again from its definition: printable Latin-1
// bytes stand for themselves, the other 68 take U+0100, U+0101, ... in byte order.
std::string ByteChar(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int next = 0x100;
    for (int x = 0; x < 256; ++x) {
      const bool keep = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE);
      const int c = keep ? x : next++;
      std::string s;
      if (c < 0x80) {
        s += static_cast<char>(c);
      } else {
        s += static_cast<char>(0xC0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3F));
      }
      t[x] = s;
    }
    return t;
  }();
  return table[b];
}

constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A small Llama-3-style tokenizer.json: the 256 byte characters (ids 0..255), a few merges,
// and a special BOS that the post-processor puts first.
nlohmann::json SmallTokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"},   {"Ġ", "c"}, {"a", "t"}, {"t", "he"}, {"Ġc", "at"}, {"Ġ", "t"},
      {"Ġt", "he"}, {"b", "c"}, {"a", "b"}, {"Ċ", "Ċ"},  {"Ã", "©"}};
  nlohmann::json merge_list = nlohmann::json::array();
  int next = 256;
  for (const auto& [l, r] : merges) {
    if (!vocab.contains(l + r)) vocab[l + r] = next++;
    merge_list.push_back(l + " " + r);
  }
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 300}, {"content", "<|begin_of_text|>"}, {"special", true}},
        {{"id", 301}, {"content", "<|end_of_text|>"}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", kLlama3Regex}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens",
         {{"<|begin_of_text|>",
           {{"id", "<|begin_of_text|>"}, {"ids", {300}}, {"tokens", {"<|begin_of_text|>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"ignore_merges", true}, {"vocab", vocab}, {"merges", merge_list}}},
  };
}

std::vector<std::string> Split(std::string_view text, PreTokenizer pre) {
  std::vector<std::string> out;
  for (std::string_view s : PreTokenize(text, pre)) out.emplace_back(s);
  return out;
}

TEST(PreTokenizer, Llama3Qwen2AndGpt2Patterns) {
  using V = std::vector<std::string>;
  const std::string text = "Hello world's 12345 numbers!!\n\n  end  ";
  EXPECT_EQ(Split(text, PreTokenizer::kLlama3), (V{"Hello", " world", "'s", " ", "123", "45",
                                                   " numbers", "!!\n\n", " ", " end", "  "}));
  EXPECT_EQ(Split(text, PreTokenizer::kQwen2), (V{"Hello", " world", "'s", " ", "1", "2", "3", "4",
                                                  "5", " numbers", "!!\n\n", " ", " end", "  "}));
  EXPECT_EQ(Split(text, PreTokenizer::kGpt2),
            (V{"Hello", " world", "'s", " 12345", " numbers", "!!", "\n\n ", " end", "  "}));
  EXPECT_EQ(Split("x  \n  y", PreTokenizer::kLlama3), (V{"x", "  \n", " ", " y"}));
  EXPECT_EQ(Split("I'M fine", PreTokenizer::kLlama3), (V{"I", "'M", " fine"}));
  EXPECT_EQ(Split("I'M fine", PreTokenizer::kGpt2), (V{"I", "'", "M", " fine"}));
  EXPECT_EQ(Split("café 日本語 — ok\t(x)", PreTokenizer::kLlama3),
            (V{"café", " 日本語", " —", " ok", "\t", "(x", ")"}));
  EXPECT_EQ(Split("a\r\nb", PreTokenizer::kLlama3), (V{"a", "\r\n", "b"}));
  EXPECT_TRUE(Split("", PreTokenizer::kLlama3).empty());
  // Invalid UTF-8 bytes stay in the output, each on its own.
  EXPECT_EQ(Split("a\xff\xfe", PreTokenizer::kLlama3), (V{"a", "\xff\xfe"}));
}

TEST(ByteLevelBpe, EncodesDecodesSmallTokenizerJson) {
  auto tok = ParseHfTokenizer(SmallTokenizerJson());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const Tokenizer& t = **tok;
  EXPECT_EQ(t.bos_id(), 300);
  const int the = t.Find("the"), cat = t.Find("Ġcat"), space_the = t.Find("Ġthe");
  ASSERT_GE(the, 256);
  ASSERT_GE(cat, 256);
  EXPECT_EQ(t.Encode("the cat"), (std::vector<int>{the, cat}));
  EXPECT_EQ(t.Encode("the cat", /*add_bos=*/true), (std::vector<int>{300, the, cat}));
  EXPECT_EQ(t.Encode("cat the"), (std::vector<int>{'c', t.Find("at"), space_the}));
  // Ranks decide: "b c" comes before "a b", so "abc" is a + bc.
  EXPECT_EQ(t.Encode("abc"), (std::vector<int>{'a', t.Find("bc")}));
  // Added tokens are matched in the text; special ones decode to nothing.
  EXPECT_EQ(t.Encode("<|begin_of_text|>the<|end_of_text|>"), (std::vector<int>{300, the, 301}));
  EXPECT_EQ(t.Decode(std::vector<int>{300, the, cat, 301}), "the cat");
  // Any text round-trips, non-ASCII and control bytes included.
  for (const std::string text :
       {"the cat sat on the mat.\n\nThe end!", "  spaced   out  ",
        "Café naïve — 日本語 🙂", "tab\there\r\nCRLF", "1234567 + 89"}) {
    const std::vector<int> ids = t.Encode(text);
    EXPECT_EQ(t.Decode(ids), text);
    std::string streamed;
    for (int id : ids) streamed += t.DecodeNext(-1, id);
    EXPECT_EQ(streamed, text);
  }
  // "é" is the bytes C3 A9, whose characters "Ã" "©" merge.
  EXPECT_EQ(t.Encode("é"), std::vector<int>{t.Find("Ã©")});
  EXPECT_EQ(t.Encode("\n\n"), std::vector<int>{t.Find("ĊĊ")});
}

TEST(ByteLevelBpe, LoadsFromFileAndReportsProblems) {
  const fs::path path =
      fs::temp_directory_path() / ("owf_tokenizer_test_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << SmallTokenizerJson().dump();
  auto tok = LoadHfTokenizer(path.string());
  fs::remove(path);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("the cat")), "the cat");

  auto odd_regex = SmallTokenizerJson();
  odd_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  auto r = ParseHfTokenizer(odd_regex);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("\\w+"), std::string::npos) << r.status().message();

  auto no_byte = SmallTokenizerJson();
  no_byte["model"]["vocab"].erase("Ġ");
  no_byte["model"]["merges"] = nlohmann::json::array();
  r = ParseHfTokenizer(no_byte);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("byte 32"), std::string::npos) << r.status().message();

  auto bad_merge = SmallTokenizerJson();
  bad_merge["model"]["merges"].push_back("q zz");
  r = ParseHfTokenizer(bad_merge);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'q zz'"), std::string::npos) << r.status().message();

  auto wordpiece = SmallTokenizerJson();
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_EQ(ParseHfTokenizer(wordpiece).status().code(), StatusCode::kUnsupported);
  EXPECT_FALSE(ParseHfTokenizer(nlohmann::json::array()).ok());
  EXPECT_FALSE(LoadHfTokenizer("/nonexistent/tokenizer.json").ok());
}

TEST(MergeAdjacent, LowestPriorityFirstLeftmostOnTies) {
  // Symbols 1 1 1: pair (1,1) -> 2 at priority 0; (2,1) -> 3 at priority 1; (1,2) never.
  const internal::MergeFn merge = [](int a, int b) -> std::optional<internal::Merge> {
    if (a == 1 && b == 1) return internal::Merge{0, 2};
    if (a == 2 && b == 1) return internal::Merge{1, 3};
    return std::nullopt;
  };
  EXPECT_EQ(internal::MergeAdjacent({1, 1, 1}, merge), (std::vector<int>{3}));
  EXPECT_EQ(internal::MergeAdjacent({1, 1, 1, 1}, merge), (std::vector<int>{2, 2}));
  EXPECT_EQ(internal::MergeAdjacent({}, merge), std::vector<int>{});
  EXPECT_EQ(internal::MergeAdjacent({5}, merge), std::vector<int>{5});
}

}  // namespace
}  // namespace owf
