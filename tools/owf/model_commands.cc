// `owf quantise` and `owf dequantise`: whole models.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "owf/io/file.h"
#include "owf/quantize/driver.h"
#include "table.h"

namespace owf::cli {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s.empty() ? "scalar" : s;
}

void ProgressBar(size_t done, size_t total, const std::string& name) {
  constexpr int kWidth = 30;
  const int filled = total ? static_cast<int>(kWidth * done / total) : kWidth;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40.40s", std::string(filled, '#').c_str(),
               std::string(kWidth - filled, ' ').c_str(), done, total, name.c_str());
  if (done == total) std::fprintf(stderr, "\r%*s\r", kWidth + 60, "");
  std::fflush(stderr);
}

}  // namespace

int RunQuantise(const QuantiseArgs& a) {
  Result<Rules> rules = Status(InvalidArgument("no rules"));
  if (!a.rules.empty()) {
    auto text = ReadFileBytes(a.rules);
    if (!text.ok()) return Fail(text.status());
    rules = ParseRules(std::string(text->begin(), text->end()), a.rules,
                       a.format.empty() ? std::nullopt : std::optional<std::string>(a.format));
  } else if (!a.format.empty()) {
    rules = RulesFromFormat(a.format);
  } else {
    return Fail(InvalidArgument("give --format SPEC (or a --rules file with a \"default\")"));
  }
  if (!rules.ok()) return Fail(rules.status());
  QuantiseModelOptions o;
  o.output = a.output;
  o.threads = a.threads;
  if (a.emit == "fake") {
    o.emit = Emit::kFake;
  } else if (a.emit != "packed") {
    return Fail(InvalidArgument("--emit must be 'packed' or 'fake', got '" + a.emit + "'"));
  }
  if (a.bits > 0) o.bits_per_param = a.bits;
  o.sensitivity = a.sensitivity;
  if (!a.sensitivity.empty() && a.bits <= 0) return Fail(InvalidArgument("--sensitivity is used with --bits"));
  o.importance = a.importance;
  if (isatty(STDERR_FILENO) && !a.json) o.progress = ProgressBar;
  auto report = QuantiseModel(a.model, *rules, o);
  if (!report.ok()) return Fail(report.status());
  for (const std::string& w : report->warnings) std::fprintf(stderr, "owf: warning: %s\n", w.c_str());
  const nlohmann::json j = ToJson(*report);
  if (!a.report.empty()) {
    Status st = WriteFileAtomic(a.report, j.dump(2) + "\n");
    if (!st.ok()) return Fail(st);
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  Table t({"tensor", "shape", "dtype", "spec", "bits/param", "rmse_norm", "seconds"});
  for (const auto& r : report->tensors) {
    const bool kept = r.spec == "keep";
    t.AddRow({r.name, ShapeText(r.shape), r.dtype, kept ? "keep (" + r.why + ")" : r.spec + (r.importance ? " [imatrix]" : ""),
              Fixed(r.elements ? r.bits / static_cast<double>(r.elements) : 0.0, 4), kept ? "-" : Fixed(r.rmse_norm, 5),
              kept ? "-" : Fixed(r.seconds, 3)});
  }
  std::printf("%s\n", t.Render().c_str());
  std::printf("parameters        %lld (%lld quantised)\n", static_cast<long long>(report->elements),
              static_cast<long long>(report->quantised_elements));
  std::printf("bits per param    %.4f  (all-in: elements, scales, outliers; kept tensors at their width)\n",
              report->bits_per_param());
  std::printf("wrote             %s: %.3f MB (%s)\n", report->output.c_str(), report->output_bytes / 1e6,
              a.emit.c_str());
  if (o.emit == Emit::kPacked) {
    std::printf("payload           %.3f MB = %.4f bits per param (the rest is headers and source metadata)\n",
                report->payload_bytes / 1e6, report->payload_bytes * 8.0 / static_cast<double>(report->elements));
  }
  std::printf("seconds           %.2f\n", report->seconds);
  return 0;
}

int RunDequantise(const std::string& packed, const std::string& output) {
  Status st = DequantiseModel(packed, output);
  if (!st.ok()) return Fail(st);
  std::printf("wrote %s\n", output.c_str());
  return 0;
}

}  // namespace owf::cli
