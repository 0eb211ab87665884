// owf inspect: list a model's tensors with their shapes, dtypes and weight statistics (rms,
// absmax, excess kurtosis, fitted Student-t df), then totals per dtype.
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "owf/io/model.h"
#include "owf/stats/moments.h"
#include "table.h"

namespace owf::cli {
namespace {

struct Totals {
  int64_t tensors = 0;
  int64_t params = 0;
  uint64_t bytes = 0;
};

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Small weights need significant digits rather than fixed decimals.
std::string General(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

// NaN and inf become null (JSON has neither).
nlohmann::json Number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json TotalsJson(const Totals& t) {
  return {{"tensors", t.tensors}, {"params", t.params}, {"bytes", t.bytes}};
}

bool IsFloat(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

}  // namespace

int RunInspect(const std::string& model, bool json, int threads) {
  auto reader = OpenModel(model);
  if (!reader.ok()) {
    std::fprintf(stderr, "owf: error: %s\n", reader.status().message().c_str());
    return 1;
  }
  const ModelReader& r = **reader;

  nlohmann::json tensors = nlohmann::json::array();
  Table table({"tensor", "shape", "dtype", "params", "rms", "absmax", "kurtosis", "t df"});
  std::map<std::string, Totals> by_dtype;
  Totals all;
  for (const TensorInfo& info : r.tensors()) {
    const int64_t params = info.numel();
    Totals& d = by_dtype[info.dtype_name];
    for (Totals* t : {&d, &all}) {
      t->tensors += 1;
      t->params += params;
      t->bytes += info.nbytes;
    }
    nlohmann::json j{{"name", info.name},
                     {"shape", info.shape},
                     {"dtype", info.dtype_name},
                     {"params", params},
                     {"bytes", info.nbytes}};
    std::vector<std::string> row = {info.name, ShapeText(info.shape), info.dtype_name,
                                    std::to_string(params)};
    if (IsFloat(info.dtype)) {
      auto x = r.Read(info);
      if (!x.ok()) {
        std::fprintf(stderr, "owf: error: %s: %s\n", model.c_str(), x.status().message().c_str());
        return 1;
      }
      const std::span<const float> data(x->data.data(), x->data.size());
      const TensorStats s = ComputeStats(data, threads);
      const StudentTFit fit = FitStudentT(data, int64_t{1} << 20, threads);
      j.update({{"mean", Number(s.mean)},
                {"std", Number(s.std)},
                {"rms", Number(s.rms)},
                {"absmax", Number(s.absmax)},
                {"excess_kurtosis", Number(s.excess_kurtosis)},
                {"t_df", Number(fit.df)},
                {"t_scale", Number(fit.scale)}});
      row.insert(row.end(),
                 {General(s.rms), General(s.absmax), Fixed(s.excess_kurtosis, 2), General(fit.df)});
    } else {
      for (const char* key : {"mean", "std", "rms", "absmax", "excess_kurtosis", "t_df", "t_scale"})
        j[key] = nullptr;
      row.insert(row.end(), {"-", "-", "-", "-"});
    }
    tensors.push_back(std::move(j));
    table.AddRow(std::move(row));
  }

  if (json) {
    nlohmann::json totals = TotalsJson(all);
    totals["by_dtype"] = nlohmann::json::object();
    for (const auto& [name, t] : by_dtype) totals["by_dtype"][name] = TotalsJson(t);
    const nlohmann::json out{{"format", r.format()}, {"tensors", tensors}, {"totals", totals}};
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%s (%s), %zu tensors\n\n%s\n", model.c_str(), r.format(), r.tensors().size(),
              table.Render().c_str());
  Table totals({"dtype", "tensors", "params", "bytes"});
  for (const auto& [name, t] : by_dtype)
    totals.AddRow(
        {name, std::to_string(t.tensors), std::to_string(t.params), std::to_string(t.bytes)});
  totals.AddRow({"total", std::to_string(all.tensors), std::to_string(all.params),
                 std::to_string(all.bytes)});
  std::printf("%s", totals.Render().c_str());
  return 0;
}

}  // namespace owf::cli
