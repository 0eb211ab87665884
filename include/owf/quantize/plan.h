// Which spec each tensor of a model gets. Policy is data: a default spec plus glob rules, never
// code that looks at tensor names.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/formats/spec.h"
#include "owf/io/model.h"

namespace owf {

struct Rule {
  std::string pattern;              // fnmatch(3) glob on the full tensor name ('*' crosses '.')
  std::optional<FormatSpec> spec;   // absent = "keep" (store as is)
  std::string text;                 // as written, for messages
};

struct Rules {
  std::optional<FormatSpec> default_spec;  // for selected tensors no rule matches; absent = keep
  std::vector<Rule> rules;                 // first match in file order wins
  // Name components that are never quantised by default (the reference's DEFAULT_IGNORE).
  std::vector<std::string> ignore = {"vision_model", "multi_modal_projector"};
};

// Rules from a JSON object {"default": SPEC, "<glob>": SPEC | "keep", ...}; `format` (from
// --format) is the default when the file has none. Errors name the rule and the spec error.
Result<Rules> ParseRules(const std::string& json_text, const std::string& source_name,
                         const std::optional<std::string>& format);
Result<Rules> RulesFromFormat(const std::string& format);

struct PlanEntry {
  const TensorInfo* tensor = nullptr;
  std::optional<FormatSpec> spec;  // absent: stored unchanged
  std::string why;                 // "default", "rule '<glob>'", "1-D", "ignored", "dtype I64"
};

// One entry per tensor, in file order. Selected by default: every 2-D float tensor whose dotted
// name has no ignored component (embeddings and lm_head included); a rule can select or keep any
// float tensor. Errors if a rule asks to quantise a non-float tensor.
Result<std::vector<PlanEntry>> MakePlan(const ModelReader& model, const Rules& rules);

}  // namespace owf
