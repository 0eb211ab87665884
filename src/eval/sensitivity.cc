#include "owf/eval/sensitivity.h"

#include <cmath>
#include <cstring>
#include <random>

#include "owf/io/model.h"
#include "owf/model/tokenizer.h"
#include "owf/model/transformer.h"

namespace owf {
namespace {

// The model with one tensor replaced by fp32 values.
class PatchedReader : public ModelReader {
 public:
  PatchedReader(const ModelReader& inner, const std::string& name, const Tensor& values) : inner_(inner) {
    tensors_ = inner.tensors();
    metadata_ = inner.metadata();
    files_ = inner.files();
    bytes_.resize(values.data.size() * 4);
    std::memcpy(bytes_.data(), values.data.data(), bytes_.size());
    for (TensorInfo& t : tensors_) {
      if (t.name != name) continue;
      t.dtype = DType::kF32;
      t.dtype_name = "F32";
      t.nbytes = bytes_.size();
      patched_ = t.name;
    }
  }
  const char* format() const override { return inner_.format(); }
  std::span<const uint8_t> RawBytes(const TensorInfo& t) const override {
    if (t.name == patched_) return bytes_;
    return inner_.RawBytes(*inner_.Find(t.name));
  }

 private:
  const ModelReader& inner_;
  std::string patched_;
  std::vector<uint8_t> bytes_;
};

Result<std::vector<std::vector<float>>> Logits(const ModelReader& reader, const std::vector<std::vector<int>>& seqs,
                                               int threads) {
  OWF_ASSIGN_OR_RETURN(auto t, LoadTransformer(reader, threads));
  std::vector<std::vector<float>> all;
  for (const auto& seq : seqs) {
    OWF_ASSIGN_OR_RETURN(auto logits, t->ForwardSequence(seq));
    for (auto& l : logits) all.push_back(std::move(l));
  }
  return all;
}

}  // namespace

Result<std::vector<TensorSensitivity>> EstimateSensitivity(const std::string& path, const SensitivityOptions& o) {
  OWF_ASSIGN_OR_RETURN(auto model, OpenModel(path));
  // Sequences sampled from the model itself (SampleSequences, as owf eval --generate).
  std::vector<std::vector<int>> seqs;
  {
    OWF_ASSIGN_OR_RETURN(auto t, LoadTransformer(*model, o.sequences.threads));
    auto tok = LoadTokenizer(*model);
    const int n = o.sequences.generate > 0 ? o.sequences.generate : 4;
    seqs = SampleSequences(*t, tok.ok() ? (*tok)->bos_id() : 1, n, o.sequences.context, o.sequences.seed);
  }
  OWF_ASSIGN_OR_RETURN(auto reference, Logits(*model, seqs, o.sequences.threads));
  std::vector<TensorSensitivity> out;
  for (const TensorInfo& info : model->tensors()) {
    if (info.shape.size() != 2 || info.dtype == DType::kOther) continue;
    OWF_ASSIGN_OR_RETURN(Tensor x, model->Read(info));
    TensorSensitivity s;
    s.name = info.name;
    s.elements = x.numel();
    double sq = 0;
    for (float v : x.data) sq += static_cast<double>(v) * v;
    s.rms = std::sqrt(sq / static_cast<double>(x.numel()));
    for (int level = 0; level < 2; ++level) {
      s.noise[level] = level == 0 ? o.noise_low : o.noise_high;
      const double sigma = s.noise[level] * s.rms;
      if (!(sigma > 0)) continue;  // an all-zero tensor (or no noise): nothing to measure
      std::mt19937_64 rng(o.noise_seed);  // the same direction at both levels: a clean quadratic check
      std::normal_distribution<double> nd(0.0, sigma);
      Tensor noisy = x;
      for (float& v : noisy.data) v = static_cast<float>(v + nd(rng));
      PatchedReader patched(*model, info.name, noisy);
      OWF_ASSIGN_OR_RETURN(auto logits, Logits(patched, seqs, o.sequences.threads));
      double kl = 0;
      for (size_t p = 0; p < logits.size(); ++p) kl += ComparePosition(reference[p], logits[p], -1).kl_full;
      kl /= static_cast<double>(logits.size());
      s.kl[level] = kl;
      s.fisher_mean[level] = 2 * kl / (sigma * sigma * static_cast<double>(s.elements));
    }
    out.push_back(std::move(s));
  }
  return out;
}

nlohmann::json SensitivityJson(const std::vector<TensorSensitivity>& all) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& s : all) {
    tensors[s.name] = {{"elements", s.elements},
                       {"rms", s.rms},
                       {"fisher_mean", s.fisher_mean_value()},
                       {"fisher_sum", s.fisher_mean_value() * static_cast<double>(s.elements)},
                       {"levels", {{{"noise", s.noise[0]}, {"kl", s.kl[0]}, {"fisher_mean", s.fisher_mean[0]}},
                                   {{"noise", s.noise[1]}, {"kl", s.kl[1]}, {"fisher_mean", s.fisher_mean[1]}}}},
                       {"agreement", s.agreement()}};
  }
  return {{"method", "KL ~ 0.5 sigma^2 sum F_ii under iid Gaussian noise sigma = s * rms"}, {"tensors", tensors}};
}

}  // namespace owf
