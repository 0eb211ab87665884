#include "owf/quantize/plan.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

namespace owf {
namespace {

Result<std::optional<FormatSpec>> ParseRuleValue(const std::string& key, const std::string& value,
                                                 const std::string& source) {
  if (value == "keep") return std::optional<FormatSpec>();
  auto spec = ParseSpec(value);
  if (!spec.ok()) return spec.status().WithContext(source + ": rule '" + key + "'");
  return std::optional<FormatSpec>(*spec);
}

bool HasIgnoredComponent(const std::string& name, const std::vector<std::string>& ignore) {
  size_t start = 0;
  while (start <= name.size()) {
    const size_t dot = name.find('.', start);
    const std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    for (const auto& ig : ignore)
      if (part == ig) return true;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return false;
}

}  // namespace

Result<Rules> RulesFromFormat(const std::string& format) {
  Rules r;
  if (format != "keep") {
    auto spec = ParseSpec(format);
    if (!spec.ok()) return spec.status().WithContext("--format");
    r.default_spec = *spec;
  }
  return r;
}

Result<Rules> ParseRules(const std::string& text, const std::string& source, const std::optional<std::string>& format) {
  // ordered_json keeps the file's order: the first matching rule wins.
  const auto j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgument(source + ": rules must be a JSON object {\"default\": SPEC, \"<glob>\": SPEC | \"keep\"}");
  Rules r;
  if (format) {
    OWF_ASSIGN_OR_RETURN(r, RulesFromFormat(*format));
  }
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) return InvalidArgument(source + ": rule '" + key + "' must be a spec string or \"keep\"");
    OWF_ASSIGN_OR_RETURN(auto spec, ParseRuleValue(key, value.get<std::string>(), source));
    if (key == "default") {
      r.default_spec = spec;
    } else {
      r.rules.push_back(Rule{key, spec, value.get<std::string>()});
    }
  }
  return r;
}

Result<std::vector<PlanEntry>> MakePlan(const ModelReader& model, const Rules& rules) {
  std::vector<PlanEntry> plan;
  for (const TensorInfo& t : model.tensors()) {
    PlanEntry e;
    e.tensor = &t;
    const Rule* match = nullptr;
    for (const Rule& rule : rules.rules) {
      if (fnmatch(rule.pattern.c_str(), t.name.c_str(), 0) == 0) {
        match = &rule;
        break;
      }
    }
    const bool is_float = t.dtype != DType::kOther;
    if (match) {
      e.spec = match->spec;
      e.why = "rule '" + match->pattern + "'";
      if (e.spec && !is_float)
        return InvalidArgument("rule '" + match->pattern + "' asks to quantise '" + t.name + "', which has dtype " +
                               t.dtype_name + "; owf quantises F32, F16 and BF16 tensors");
    } else if (!is_float) {
      e.why = "dtype " + t.dtype_name;
    } else if (t.shape.size() != 2) {
      e.why = std::to_string(t.shape.size()) + "-D";
    } else if (HasIgnoredComponent(t.name, rules.ignore)) {
      e.why = "ignored";
    } else {
      e.spec = rules.default_spec;
      e.why = "default";
    }
    plan.push_back(std::move(e));
  }
  return plan;
}

}  // namespace owf
