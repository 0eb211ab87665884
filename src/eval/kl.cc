#include "owf/eval/kl.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace owf {
namespace {

// log-softmax in double.
std::vector<double> LogSoftmax(std::span<const float> logits) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
  return out;
}

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(sorted.size() - 1, lo + 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace

PositionStats ComparePosition(std::span<const float> ref_logits, std::span<const float> cand_logits, int target,
                              int top_k) {
  PositionStats s;
  const std::vector<double> lp = LogSoftmax(ref_logits), lq = LogSoftmax(cand_logits);
  const size_t v = lp.size();
  for (size_t i = 0; i < v; ++i) s.kl_full += std::exp(lp[i]) * (lp[i] - lq[i]);
  std::vector<size_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min(v, static_cast<size_t>(std::max(top_k, 1)));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](size_t a, size_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
  double p_top = 0, q_top = 0;
  for (size_t j = 0; j < k; ++j) {
    const size_t i = order[j];
    const double p = std::exp(lp[i]);
    s.kl_top128 += p * (lp[i] - lq[i]);
    p_top += p;
    q_top += std::exp(lq[i]);
  }
  const double p_tail = std::max(1.0 - p_top, 1e-6), q_tail = std::max(1.0 - q_top, 1e-6);
  s.kl_top128 += p_tail * (std::log(p_tail) - std::log(q_tail));
  const size_t top = order[0];
  const size_t cand_top = static_cast<size_t>(std::max_element(lq.begin(), lq.end()) - lq.begin());
  s.same_top1 = top == cand_top;
  s.delta_p_top = std::exp(lq[top]) - std::exp(lp[top]);
  if (target >= 0 && static_cast<size_t>(target) < v) {
    s.ref_nll = -lp[static_cast<size_t>(target)];
    s.cand_nll = -lq[static_cast<size_t>(target)];
  }
  return s;
}

Summary Summarise(std::vector<double> v) {
  Summary s;
  s.count = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  const double n = static_cast<double>(v.size());
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / n;
  double var = 0;
  for (double x : v) var += (x - s.mean) * (x - s.mean);
  s.stderr_ = v.size() > 1 ? std::sqrt(var / (n - 1) / n) : 0;
  std::sort(v.begin(), v.end());
  s.median = Quantile(v, 0.5);
  s.p90 = Quantile(v, 0.9);
  s.p99 = Quantile(v, 0.99);
  s.p999 = Quantile(v, 0.999);
  return s;
}

KlReport Aggregate(std::span<const PositionStats> pos, const std::vector<bool>& has_target) {
  KlReport r;
  std::vector<double> top, full;
  double same = 0, dp = 0, dp2 = 0, ref_nll = 0, cand_nll = 0;
  for (size_t i = 0; i < pos.size(); ++i) {
    top.push_back(pos[i].kl_top128);
    full.push_back(pos[i].kl_full);
    same += pos[i].same_top1;
    dp += pos[i].delta_p_top;
    dp2 += pos[i].delta_p_top * pos[i].delta_p_top;
    if (i < has_target.size() && has_target[i]) {
      ref_nll += pos[i].ref_nll;
      cand_nll += pos[i].cand_nll;
      ++r.targets;
    }
  }
  r.positions = static_cast<int64_t>(pos.size());
  const double n = std::max<double>(1, static_cast<double>(pos.size()));
  r.kl_top128 = Summarise(std::move(top));
  r.kl_full = Summarise(std::move(full));
  r.same_top1_rate = same / n;
  r.delta_p_mean = dp / n;
  r.delta_p_rms = std::sqrt(dp2 / n);
  if (r.targets) {
    r.ref_perplexity = std::exp(ref_nll / static_cast<double>(r.targets));
    r.cand_perplexity = std::exp(cand_nll / static_cast<double>(r.targets));
  }
  return r;
}

nlohmann::json ToJson(const KlReport& r) {
  auto sum = [](const Summary& s) {
    return nlohmann::json{{"mean", s.mean}, {"stderr", s.stderr_}, {"median", s.median},
                          {"p90", s.p90}, {"p99", s.p99}, {"p99.9", s.p999}, {"count", s.count}};
  };
  return {{"kl_top128", sum(r.kl_top128)}, {"kl_full", sum(r.kl_full)}, {"same_top1_rate", r.same_top1_rate},
          {"delta_p_top_mean", r.delta_p_mean}, {"delta_p_top_rms", r.delta_p_rms},
          {"reference_perplexity", r.ref_perplexity}, {"candidate_perplexity", r.cand_perplexity},
          {"positions", r.positions}, {"targets", r.targets}};
}

}  // namespace owf
