#include "owf/eval/evaluate.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "owf/io/file.h"
#include "owf/io/model.h"
#include "owf/io/packed.h"
#include "owf/model/tokenizer.h"
#include "owf/model/transformer.h"
#include "owf/quantize/driver.h"

namespace owf {
namespace {

namespace fs = std::filesystem;

// A model ready to run; owf packed files are dequantised to a temporary file first.
struct LoadedModel {
  std::unique_ptr<ModelReader> reader;
  std::unique_ptr<Transformer> transformer;
  std::string temp;
  ~LoadedModel() {
    reader.reset();
    std::error_code ec;
    if (!temp.empty()) fs::remove_all(temp, ec);
  }
};

Result<std::unique_ptr<LoadedModel>> Load(const std::string& path, int threads) {
  auto m = std::make_unique<LoadedModel>();
  OWF_ASSIGN_OR_RETURN(m->reader, OpenModel(path));
  if (m->reader->metadata().contains(kPackedMetadataKey)) {
    m->temp = (fs::temp_directory_path() / ("owf-eval-" + std::to_string(getpid()) + "-" +
                                            fs::path(path).filename().string()))
                  .string();
    m->reader.reset();
    OWF_RETURN_IF_ERROR(DequantiseModel(path, m->temp).WithContext(path));
    OWF_ASSIGN_OR_RETURN(m->reader, OpenModel(m->temp));
  }
  auto t = LoadTransformer(*m->reader, threads);
  if (!t.ok()) return t.status().WithContext(path);
  m->transformer = std::move(*t);
  return m;
}

Result<std::vector<std::vector<int>>> ParseTokens(const std::string& path, int vocab) {
  OWF_ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(path));
  const auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_array()) return InvalidArgument(path + ": expected a JSON list of token-id lists");
  std::vector<std::vector<int>> seqs;
  for (size_t s = 0; s < j.size(); ++s) {
    if (!j[s].is_array()) return InvalidArgument(path + ": sequence " + std::to_string(s) + " is not a list");
    std::vector<int> seq;
    for (size_t i = 0; i < j[s].size(); ++i) {
      const auto& v = j[s][i];
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab)
        return InvalidArgument(path + ": sequence " + std::to_string(s) + ", position " + std::to_string(i) +
                               ": not a token id in [0, " + std::to_string(vocab) + ")");
      seq.push_back(v.get<int>());
    }
    if (seq.size() >= 2) seqs.push_back(std::move(seq));
  }
  return seqs;
}

// One sequence at temperature 1, from BOS.
std::vector<int> Sample(Transformer& t, int bos, int length, std::mt19937_64& rng) {
  std::vector<int> seq = {std::max(bos, 0)};
  t.Reset();
  while (static_cast<int>(seq.size()) < length) {
    const std::vector<float> logits = t.Forward(seq.back(), static_cast<int>(seq.size()) - 1);
    seq.push_back(SampleToken(logits, static_cast<double>(rng() >> 11) * 0x1p-53));
  }
  return seq;
}

}  // namespace

std::vector<std::vector<int>> SampleSequences(Transformer& model, int bos, int count, int length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int>> seqs;
  for (int s = 0; s < count; ++s) seqs.push_back(Sample(model, bos, length, rng));
  return seqs;
}

int SampleToken(std::span<const float> logits, double u) {
  if (logits.empty()) return 0;
  const float mx = *std::max_element(logits.begin(), logits.end());
  double total = 0;
  for (float v : logits) total += std::exp(static_cast<double>(v - mx));
  double r = u * total;
  size_t pick = 0;
  for (; pick + 1 < logits.size(); ++pick) {
    r -= std::exp(static_cast<double>(logits[pick] - mx));
    if (r < 0) break;
  }
  return static_cast<int>(pick);
}

Result<std::vector<std::vector<int>>> ReadSequences(const EvalOptions& opt, const Tokenizer* tokenizer, int vocab) {
  if (opt.context < 2) return InvalidArgument("--ctx must be at least 2");
  if (!opt.tokens_file.empty()) return ParseTokens(opt.tokens_file, vocab);
  std::vector<std::vector<int>> seqs;
  if (opt.text_file.empty()) return seqs;
  if (tokenizer == nullptr) return InvalidArgument("tokenizing --text: the reference model has no tokenizer");
  OWF_ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(opt.text_file));
  const std::vector<int> ids = tokenizer->Encode(std::string(bytes.begin(), bytes.end()), false);
  const size_t body = static_cast<size_t>(opt.context - 1);
  for (size_t i = 0; i + 1 < ids.size(); i += body) {
    std::vector<int> seq = {std::max(tokenizer->bos_id(), 0)};
    seq.insert(seq.end(), ids.begin() + static_cast<std::ptrdiff_t>(i),
               ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + body)));
    if (seq.size() >= 2) seqs.push_back(std::move(seq));
  }
  return seqs;
}

Result<std::vector<std::vector<int>>> MakeSequences(const ModelReader& reader, Transformer& model,
                                                    const EvalOptions& opt) {
  if (opt.context < 2) return InvalidArgument("--ctx must be at least 2");
  const int vocab = model.vocab_size();
  auto tokenizer = LoadTokenizer(reader);
  if (!opt.text_file.empty() && !tokenizer.ok()) return tokenizer.status().WithContext("tokenizing --text");
  OWF_ASSIGN_OR_RETURN(std::vector<std::vector<int>> seqs,
                       ReadSequences(opt, tokenizer.ok() ? tokenizer->get() : nullptr, vocab));
  if (opt.tokens_file.empty() && opt.text_file.empty()) {
    const int n = opt.generate > 0 ? opt.generate : 8;
    const int bos = tokenizer.ok() ? (*tokenizer)->bos_id() : 1;
    seqs = SampleSequences(model, bos, n, opt.context, opt.seed);
  }
  if (opt.max_sequences > 0 && static_cast<int>(seqs.size()) > opt.max_sequences) seqs.resize(static_cast<size_t>(opt.max_sequences));
  if (seqs.empty()) return InvalidArgument("no sequences of at least 2 tokens to evaluate");
  return seqs;
}

Result<EvalResult> Evaluate(const std::string& reference, const std::string& candidate, const EvalOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  if (opt.device != "cpu")
    return InvalidArgument("Evaluate runs on the CPU; device '" + opt.device +
                           "' is owf::cuda::EvaluateOnGpu (owf/cuda/evaluate.h)");
  OWF_ASSIGN_OR_RETURN(auto ref, Load(reference, opt.threads));
  OWF_ASSIGN_OR_RETURN(auto cand, Load(candidate, opt.threads));
  const int vocab = ref->transformer->vocab_size();
  if (cand->transformer->vocab_size() != vocab)
    return InvalidArgument("the models' vocabularies differ (" + std::to_string(vocab) + " vs " +
                           std::to_string(cand->transformer->vocab_size()) + ")");
  OWF_ASSIGN_OR_RETURN(auto seqs, MakeSequences(*ref->reader, *ref->transformer, opt));

  std::vector<PositionStats> positions;
  std::vector<bool> has_target;
  int64_t forwards = 0;
  for (const auto& seq : seqs) {
    OWF_ASSIGN_OR_RETURN(auto ref_logits, ref->transformer->ForwardSequence(seq));
    OWF_ASSIGN_OR_RETURN(auto cand_logits, cand->transformer->ForwardSequence(seq));
    for (size_t i = 0; i < seq.size(); ++i) {
      const int target = i + 1 < seq.size() ? seq[i + 1] : -1;
      positions.push_back(ComparePosition(ref_logits[i], cand_logits[i], target));
      has_target.push_back(target >= 0);
    }
    forwards += 2 * static_cast<int64_t>(seq.size());
  }
  EvalResult r;
  r.report = Aggregate(positions, has_target);
  r.sequences = static_cast<int64_t>(seqs.size());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_second = static_cast<double>(forwards) / std::max(r.seconds, 1e-9);
  if (auto tokenizer = LoadTokenizer(*ref->reader); tokenizer.ok()) r.sample_text = (*tokenizer)->Decode(seqs.front());
  return r;
}

}  // namespace owf
