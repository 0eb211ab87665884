// `owf eval`: what quantisation costs the model, as KL divergence between next-token
// distributions.
#include <cstdio>

#include "commands.h"
#include "owf/eval/evaluate.h"
#include "table.h"

namespace owf::cli {

int RunEval(const EvalArgs& a) {
  EvalOptions o;
  o.text_file = a.text;
  o.tokens_file = a.tokens;
  o.generate = a.generate;
  o.seed = a.seed;
  o.context = a.context;
  o.max_sequences = a.max_sequences;
  o.threads = a.threads;
  auto r = Evaluate(a.reference, a.candidate, o);
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
  return 0;
}

}  // namespace owf::cli
