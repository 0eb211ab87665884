#include "owf/quantize/allocate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "owf/formats/quantise.h"
#include "owf/io/file.h"

namespace owf {
namespace {

bool IntegerBits(ElementFamily f) { return f == ElementFamily::kCrd; }

// Bits per element a spec spends besides its elements on a tensor of this shape.
double OverheadBits(const FormatSpec& spec, int64_t rows, int64_t cols) {
  double bits = 0;
  const double n = static_cast<double>(rows * cols);
  // grid(<b>) sizes its codes so that codes and scales together take b bits.
  if (spec.scaling && spec.element.family != ElementFamily::kGrid) {
    auto g = MakeGeometry(*spec.scaling, rows, cols);
    if (g.ok()) bits += static_cast<double>(g->num_blocks()) * ScaleFormatBits(spec.scaling->format) / n;
  }
  if (spec.outliers) {
    const double k = std::floor(spec.outliers->fraction * n);
    bits += k * ((spec.outliers->format == ElementFamily::kFp32 ? 32 : 16) + 32) / n;
  }
  return bits;
}

struct Item {
  size_t index;
  double n, overhead, ideal, bits;
  bool integer;
};

}  // namespace

Result<std::map<std::string, double>> ReadSensitivity(const std::string& path) {
  if (path.ends_with(".safetensors")) {
    // Per-element diagonal Fisher as the reference writes it: the mean of each tensor.
    OWF_ASSIGN_OR_RETURN(auto model, OpenModel(path));
    std::map<std::string, double> out;
    for (const TensorInfo& t : model->tensors()) {
      OWF_ASSIGN_OR_RETURN(Tensor f, model->Read(t));
      double sum = 0;
      for (float v : f.data) sum += v;
      const double mean = sum / std::max<double>(1, static_cast<double>(f.numel()));
      if (!(mean > 0)) return InvalidArgument(path + ": tensor '" + t.name + "' has no positive Fisher information");
      out[t.name] = mean;
    }
    return out;
  }
  OWF_ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(path));
  const auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.contains("tensors") || !j["tensors"].is_object())
    return InvalidArgument(path + ": expected {\"tensors\": {name: {\"fisher_mean\": F}}}");
  std::map<std::string, double> out;
  for (const auto& [name, v] : j["tensors"].items()) {
    if (!v.contains("fisher_mean") || !v["fisher_mean"].is_number() || !(v["fisher_mean"].get<double>() > 0))
      return InvalidArgument(path + ": tensor '" + name + "' has no positive fisher_mean");
    out[name] = v["fisher_mean"].get<double>();
  }
  return out;
}

Result<Allocation> AllocateBits(const ModelReader& model, std::vector<PlanEntry> plan, const AllocationOptions& o) {
  double total_n = 0, kept_bits = 0;
  std::vector<Item> items;
  std::vector<double> delta;
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorInfo& t = *plan[i].tensor;
    total_n += static_cast<double>(t.numel());
    if (!plan[i].spec) {
      kept_bits += static_cast<double>(t.nbytes) * 8;
      continue;
    }
    const ElementFamily f = plan[i].spec->element.family;
    if (f != ElementFamily::kInt && f != ElementFamily::kCrd && f != ElementFamily::kLloyd && f != ElementFamily::kGrid)
      return InvalidArgument("tensor '" + t.name + "': bit allocation needs a format whose bits can vary (int<b>, crd<b>, "
                             "lloyd<b>, grid(<b>)), not " + ToString(plan[i].spec->element));
    OWF_ASSIGN_OR_RETURN(Tensor x, model.Read(t));
    double sq = 0;
    for (float v : x.data) sq += static_cast<double>(v) * v;
    model.Release(t);
    const double rms = std::sqrt(sq / std::max<double>(1, static_cast<double>(x.numel())));
    double d = std::log2(std::max(rms, 1e-30));
    if (o.fisher) {
      auto it = o.fisher->find(t.name);
      if (it == o.fisher->end()) return InvalidArgument("no sensitivity for tensor '" + t.name + "'");
      d += 0.5 * std::log2(it->second);
    }
    delta.push_back(d);
    items.push_back({i, static_cast<double>(x.numel()), OverheadBits(*plan[i].spec, x.rows(), x.cols()), 0, 0,
                     IntegerBits(f)});
  }
  if (items.empty()) return InvalidArgument("no tensor to allocate bits to");
  double qn = 0, mean_delta = 0, overhead = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    qn += items[k].n;
    mean_delta += items[k].n * delta[k];
    overhead += items[k].n * items[k].overhead;
  }
  mean_delta /= qn;
  const double budget_bits = o.bits_per_param * total_n;  // all-in
  auto total_bits = [&] {
    double b = kept_bits;
    for (const Item& it : items) b += it.n * (it.bits + it.overhead);
    return b;
  };
  // Continuous optimum with a common offset found by bisection (clamps make it nonlinear).
  auto assign = [&](double offset) {
    for (size_t k = 0; k < items.size(); ++k) {
      items[k].ideal = std::clamp(offset + delta[k] - mean_delta, o.min_bits, o.max_bits);
      items[k].bits = items[k].integer ? std::round(items[k].ideal) : items[k].ideal;
    }
  };
  double lo = o.min_bits - 8, hi = o.max_bits + 8;
  for (int it = 0; it < 100; ++it) {
    const double mid = (lo + hi) / 2;
    assign(mid);
    for (Item& item : items) item.bits = item.ideal;  // continuous total for the bisection
    (total_bits() > budget_bits ? hi : lo) = mid;
  }
  assign(lo);
  // Whole-bit families: first take bits back where rounding gave the most beyond the continuous
  // optimum until the budget holds, then give bits where the optimum wants them most while they fit.
  auto pick = [&](bool down) -> Item* {
    Item* best = nullptr;
    for (Item& it : items) {
      if (!it.integer) continue;
      if (down ? it.bits - 1 < o.min_bits : it.bits + 1 > o.max_bits) continue;
      if (!down && total_bits() + it.n > budget_bits) continue;
      const double want = it.ideal - it.bits;  // > 0: wants more bits
      if (!best || (down ? want < best->ideal - best->bits : want > best->ideal - best->bits)) best = &it;
    }
    return best;
  };
  while (total_bits() > budget_bits) {
    Item* it = pick(true);
    if (!it) break;
    it->bits -= 1;
  }
  for (Item* it = pick(false); it; it = pick(false)) it->bits += 1;
  Allocation a;
  for (const Item& it : items) {
    FormatSpec& s = *plan[it.index].spec;
    s.element.bits = it.integer ? it.bits : std::round(it.bits * 1000) / 1000;
    plan[it.index].why += " (allocated " + FormatNumber(s.element.bits) + " bits)";
  }
  a.plan = std::move(plan);
  a.predicted_bits_per_param = total_bits() / total_n;
  return a;
}

}  // namespace owf
