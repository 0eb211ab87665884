// `owf eval`: what quantisation costs the model, as KL divergence between next-token
// distributions; `owf sensitivity` and `owf imatrix`, which measure the model for quantise.
#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "owf/eval/evaluate.h"
#ifdef OWF_HAVE_CUDA
#include "owf/cuda/evaluate.h"
#endif
#include "owf/eval/imatrix.h"
#include "owf/eval/sensitivity.h"
#include "owf/io/file.h"
#include "table.h"

namespace owf::cli {
namespace {

// Where the token sequences come from (eval and imatrix take the same options).
template <typename Args>
EvalOptions SequenceOptions(const Args& a) {
  EvalOptions o;
  o.text_file = a.text;
  o.tokens_file = a.tokens;
  o.generate = a.generate;
  o.seed = a.seed;
  o.context = a.context;
  o.max_sequences = a.max_sequences;
  o.threads = a.threads;
  return o;
}

}  // namespace

int RunEval(const EvalArgs& a) {
  EvalOptions o = SequenceOptions(a);
  o.device = a.device;
  Result<EvalResult> r = InvalidArgument("unknown --device '" + a.device + "' (cpu, cuda)");
  if (a.device == "cpu") {
    r = Evaluate(a.reference, a.candidate, o);
  } else if (a.device == "cuda") {
#ifdef OWF_HAVE_CUDA
    r = cuda::EvaluateOnGpu(a.reference, a.candidate, o);
#else
    r = Unsupported("--device cuda: this owf was built without CUDA; configure with -DOWF_CUDA=ON");
#endif
  }
  if (!r.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", r.status().message().c_str());
    return 1;
  }
  nlohmann::json j = ToJson(r->report);
  j["reference"] = a.reference;
  j["candidate"] = a.candidate;
  j["sequences"] = r->sequences;
  j["seconds"] = r->seconds;
  j["tokens_per_second"] = r->tokens_per_second;
  j["device"] = r->device;
  if (!r->phases.empty()) {
    j["phases"] = nlohmann::json::array();
    for (const EvalPhase& p : r->phases) j["phases"].push_back({{"name", p.name}, {"seconds", p.seconds}, {"tokens", p.tokens}});
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const KlReport& k = r->report;
  std::printf("reference   %s\ncandidate   %s\n%lld sequences, %lld positions (%.1f s, %.0f tokens/s)\n\n",
              a.reference.c_str(), a.candidate.c_str(), static_cast<long long>(r->sequences),
              static_cast<long long>(k.positions), r->seconds, r->tokens_per_second);
  Table t({"KL (nats)", "mean", "stderr", "median", "p90", "p99", "p99.9"});
  for (const auto& [name, s] : {std::pair{"top-128 + tail (paper)", &k.kl_top128}, std::pair{"full vocabulary", &k.kl_full}})
    t.AddRow({name, Fixed(s->mean, 5), Fixed(s->stderr_, 5), Fixed(s->median, 5), Fixed(s->p90, 5), Fixed(s->p99, 5),
              Fixed(s->p999, 5)});
  std::printf("%s\n", t.Render().c_str());
  std::printf("same top-1          %.2f%%\n", 100 * k.same_top1_rate);
  std::printf("delta p(top-1)      mean %+.5f, rms %.5f\n", k.delta_p_mean, k.delta_p_rms);
  std::printf("perplexity          reference %.4f, candidate %.4f\n", k.ref_perplexity, k.cand_perplexity);
  if (!r->phases.empty()) {
    Table p({"phase (" + r->device + ")", "seconds", "tokens", "tokens/s"});
    for (const EvalPhase& ph : r->phases)
      p.AddRow({ph.name, Fixed(ph.seconds, 2), ph.tokens ? std::to_string(ph.tokens) : "",
                ph.tokens ? Fixed(static_cast<double>(ph.tokens) / (ph.seconds > 0 ? ph.seconds : 1e-9), 0) : ""});
    std::printf("\n%s", p.Render().c_str());
  }
  for (const std::string& note : r->notes) std::printf("%s\n", note.c_str());
  return 0;
}

int RunImatrix(const ImatrixArgs& a) {
  const EvalOptions o = SequenceOptions(a);
  auto m = CollectImatrix(a.model, o);
  if (!m.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", m.status().message().c_str());
    return 1;
  }
  Status st = WriteImatrix(a.output, *m);
  if (!st.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", st.message().c_str());
    return 1;
  }
  if (a.json) {
    nlohmann::json j{{"model", a.model}, {"output", a.output}, {"tokens", m->tokens}, {"sequences", m->sequences}};
    nlohmann::json t = nlohmann::json::object();
    for (const auto& [name, col] : m->columns) {
      double sum = 0;
      for (float v : col) sum += v;
      t[name] = {{"columns", col.size()}, {"mean", col.empty() ? 0.0 : sum / static_cast<double>(col.size())}};
    }
    j["tensors"] = t;
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  Table t({"weight", "input columns", "mean", "min", "max"});
  for (const auto& [name, col] : m->columns) {
    double sum = 0, lo = col.empty() ? 0 : col[0], hi = lo;
    for (float v : col) sum += v, lo = std::min<double>(lo, v), hi = std::max<double>(hi, v);
    t.AddRow({name, std::to_string(col.size()), Fixed(col.empty() ? 0.0 : sum / static_cast<double>(col.size()), 5),
              Fixed(lo, 5), Fixed(hi, 5)});
  }
  std::printf("%s\nmean square of each input column's activation over %lld positions (%lld sequences)\nwrote %s\n",
              t.Render().c_str(), static_cast<long long>(m->tokens), static_cast<long long>(m->sequences),
              a.output.c_str());
  return 0;
}

int RunSensitivity(const SensitivityArgs& a) {
  SensitivityOptions o;
  o.sequences.generate = a.generate;
  o.sequences.context = a.context;
  o.sequences.threads = a.threads;
  auto s = EstimateSensitivity(a.model, o);
  if (!s.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", s.status().message().c_str());
    return 1;
  }
  const nlohmann::json j = SensitivityJson(*s);
  Status st = WriteFileAtomic(a.output, j.dump(2) + "\n");
  if (!st.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", st.message().c_str());
    return 1;
  }
  Table t({"tensor", "elements", "rms", "KL @ s=0.05", "KL @ s=0.1", "mean Fisher", "agreement"});
  for (const auto& x : *s) {
    char f[32];
    std::snprintf(f, sizeof(f), "%.4g", x.fisher_mean_value());
    t.AddRow({x.name, std::to_string(x.elements), Fixed(x.rms, 4), Fixed(x.kl[0], 6), Fixed(x.kl[1], 6), f,
              Fixed(x.agreement(), 3)});
  }
  std::printf("%s\nagreement = Fisher estimate at the low / high noise level (1 in the quadratic regime)\nwrote %s\n",
              t.Render().c_str(), a.output.c_str());
  return 0;
}

}  // namespace owf::cli
