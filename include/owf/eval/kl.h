// How much a quantised model's next-token distributions differ from the reference's.
// Per position: the KL divergence as the paper defines it (the reference's top-128 tokens plus
// one lumped tail bucket) and over the full vocabulary, whether the top token agrees, and the
// change in the probability of the reference's top token; per text: both models' perplexity.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

namespace owf {

struct PositionStats {
  double kl_top128 = 0;   // sum_{i in top128(p)} p_i log(p_i/q_i) + p_tail log(p_tail/q_tail)
  double kl_full = 0;     // sum_i p_i log(p_i/q_i)
  bool same_top1 = false;
  double delta_p_top = 0;  // q(argmax p) - p(argmax p)
  double ref_nll = 0;      // -log p(target), when a target exists
  double cand_nll = 0;
};

// Natural-log KL statistics for one position. `target` < 0: no next token (nll fields 0).
PositionStats ComparePosition(std::span<const float> ref_logits, std::span<const float> cand_logits, int target,
                              int top_k = 128);

struct Summary {
  double mean = 0, stderr_ = 0, median = 0, p90 = 0, p99 = 0, p999 = 0;
  int64_t count = 0;
};
Summary Summarise(std::vector<double> values);

struct KlReport {
  Summary kl_top128, kl_full;
  double same_top1_rate = 0;
  double delta_p_mean = 0, delta_p_rms = 0;
  double ref_perplexity = 0, cand_perplexity = 0;
  int64_t positions = 0, targets = 0;
};

// Aggregates positions (targets counted where the position had a next token).
KlReport Aggregate(std::span<const PositionStats> positions, const std::vector<bool>& has_target);

nlohmann::json ToJson(const KlReport& r);

}  // namespace owf
