#include "cli_util.h"
#include "commands.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "owf/formats/quantise.h"
#include "owf/io/model.h"
#include "owf/io/npy.h"
#include "owf/stats/metrics.h"
#include "owf/stats/synthetic.h"
#include "table.h"

namespace owf::cli {
namespace {

void Print(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// Fixed bits per element a spec costs before seeing data (scale bits per block element for
// 1 x n / r x c blocks; per-tensor and per-channel scales depend on the shape).
double NominalBits(const FormatSpec& spec, const ElementFormat& element) {
  double bits = spec.element.family == ElementFamily::kGrid ? spec.element.bits : element.bits();
  if (spec.scaling) bits += ScaleBitsPerElement(*spec.scaling).value_or(0.0);
  if (spec.outliers) bits += spec.outliers->fraction * ((spec.outliers->format == ElementFamily::kFp32 ? 32 : 16) + 32);
  return bits;
}

}  // namespace

int RunFormats(bool json) {
  const std::pair<const char*, const std::vector<SyntaxEntry>*> groups[] = {
      {"elements", &ElementSyntax()}, {"scaling", &ScalingSyntax()}, {"modifiers", &ModifierSyntax()}};
  if (json) {
    nlohmann::json j;
    for (const auto& [name, rows] : groups)
      for (const auto& r : *rows) j[name].push_back({{"syntax", r.syntax}, {"description", r.description}});
    for (const Preset& p : Presets()) j["presets"].push_back({{"name", p.name}, {"spec", p.spec}, {"compare", p.compare}});
    Print(j);
    return 0;
  }
  std::printf("spec = element [@ block:kind[:scalefmt]] [+modifier ...]\n\n");
  for (const auto& [name, rows] : groups) {
    Table t({name, "description"});
    for (const auto& r : *rows) t.AddRow({r.syntax, r.description});
    std::printf("%s\n", t.Render().c_str());
  }
  Table presets({"preset", "full spec", "beats, at the same bits"});
  for (const Preset& p : Presets()) presets.AddRow({p.name, p.spec, p.compare});
  std::printf("%s\n", presets.Render().c_str());
  std::printf("examples: crd4(t,df=7)@64:absmax:bf16  crd4(t)@64:absmax+search  nf4@64:absmax\n"
              "          e2m1@32:absmax:e8m0  grid(3.5)@tensor:absmax+entropy(ideal)\n");
  return 0;
}

int RunFormat(const std::string& text, bool json) {
  auto spec = ParseSpec(text);
  if (!spec.ok()) return Fail(spec.status());
  auto element = DesignElement(*spec);
  const bool fitted = !element.ok() && spec->element.family == ElementFamily::kLloyd;
  if (fitted) {  // fitted to each tensor: no values to show, but the spec and its bits are known
    element = ElementFormat::Lut({-1.0f, 1.0f}, std::log2(std::round(std::exp2(spec->element.bits))));
  }
  if (!element.ok()) return Fail(element.status());
  const double bits = NominalBits(*spec, *element);
  const std::vector<float> values = fitted ? std::vector<float>{} : element->centroids();
  if (json) {
    nlohmann::json j{{"spec", ToString(*spec)}, {"bits_per_element", bits},
                     {"element_bits", element->bits()}, {"values", values}};
    if (spec->scaling) j["scale_bits_per_block"] = ScaleFormatBits(spec->scaling->format);
    Print(j);
    return 0;
  }
  std::printf("spec              %s\n", ToString(*spec).c_str());
  std::printf("bits per element  %s", FormatNumber(bits).c_str());
  if (spec->scaling && spec->scaling->block != BlockKind::kBlock)
    std::printf("  (+ %d bits per %s scale)", ScaleFormatBits(spec->scaling->format),
                spec->scaling->block == BlockKind::kTensor ? "tensor" : "row");
  std::printf("\n");
  if (fitted) {
    std::printf("values            fitted to each tensor (%lld levels)\n",
                static_cast<long long>(std::llround(std::exp2(spec->element.bits))));
    return 0;
  }
  if (values.empty()) {
    std::printf("values            (plain %s cast)\n", ToString(spec->element).c_str());
    return 0;
  }
  std::printf("values (%zu)%*s", values.size(), static_cast<int>(7 - std::to_string(values.size()).size()), "");
  for (size_t i = 0; i < values.size(); ++i) {
    if (i && i % 8 == 0) std::printf("\n                 ");
    std::printf(" %10.6g", values[i]);
  }
  std::printf("\n");
  return 0;
}

int RunMeasure(const MeasureArgs& a) {
  auto spec = ParseSpec(a.spec);
  if (!spec.ok()) return Fail(spec.status());
  Result<Tensor> x = LoadInputTensor(a.input, a.tensor);
  if (!x.ok()) return Fail(x.status());
  std::vector<float> importance;
  if (!a.importance.empty()) {
    auto w = ReadNpy(a.importance);
    if (!w.ok()) return Fail(w.status());
    if (w->shape != x->shape)
      return Fail(InvalidArgument(a.importance + ": importance shape " + w->ShapeString() + " differs from the tensor's " +
                                  x->ShapeString()));
    importance.assign(w->data.begin(), w->data.end());
  }
  auto q = QuantiseTensor(*spec, *x, QuantiseOptions{a.threads, importance.empty() ? nullptr : &importance});
  if (!q.ok()) return Fail(q.status().WithContext(a.input));
  if (!a.output.empty()) {
    Status st = WriteNpy(a.output, q->values);
    if (!st.ok()) return Fail(st);
  }
  const double bits = q->bits_per_element();
  const ErrorMetrics m = ComputeMetrics(q->error, bits);
  double weighted_rmse = 0;
  if (!importance.empty()) {
    double num = 0, den = 0;
    for (size_t i = 0; i < importance.size(); ++i) {
      num += importance[i] * std::pow(static_cast<double>(q->values.data[i]) - x->data[i], 2);
      den += importance[i] * std::pow(static_cast<double>(x->data[i]), 2);
    }
    weighted_rmse = den > 0 ? std::sqrt(num / den) : 0;
  }
  if (a.json) {
    nlohmann::json j{{"spec", ToString(*spec)},
                     {"rmse_norm", m.rmse_norm},
                     {"bits_per_element", bits},
                     {"elements", x->numel()},
                     {"seconds", q->seconds},
                     {"snr_db", m.snr_db},
                     {"efficiency", m.efficiency},
                     {"shannon_gap_bits", m.shannon_gap_bits},
                     {"shape", x->shape},
                     {"fitted", q->fitted}};
    if (!importance.empty()) j["weighted_rmse_norm"] = weighted_rmse;
    if (spec->entropy != EntropyCoding::kNone) {
      j["ideal_bits_per_element"] = (q->ideal_element_bits + q->scale_bits + q->outlier_bits) / static_cast<double>(x->numel());
    }
    Print(j);
    return 0;
  }
  std::printf("spec              %s\n", ToString(*spec).c_str());
  if (!q->fitted.empty()) std::printf("fitted            %s\n", q->fitted.c_str());
  std::printf("tensor            %s %s, %lld elements\n", a.input.c_str(), x->ShapeString().c_str(),
              static_cast<long long>(x->numel()));
  std::printf("bits per element  %.6g\n", bits);
  if (spec->entropy == EntropyCoding::kHuffman || spec->entropy == EntropyCoding::kRans) {
    const double ideal = (q->ideal_element_bits + q->scale_bits + q->outlier_bits) / static_cast<double>(x->numel());
    std::printf("  ideal coding    %.6g  (the %s stream, tables included, is %+.3f%%)\n", ideal,
                spec->entropy == EntropyCoding::kRans ? "rANS" : "Huffman", (bits / ideal - 1) * 100);
  }
  std::printf("rmse_norm         %.6g\n", m.rmse_norm);
  if (!importance.empty()) std::printf("weighted rmse     %.6g   (importance-weighted)\n", weighted_rmse);
  std::printf("SNR               %.2f dB\n", m.snr_db);
  std::printf("rmse * 2^bits     %.4f   (1 = Shannon bound for Gaussian data)\n", m.efficiency);
  std::printf("gap to Shannon    %+.3f bits per element\n", m.shannon_gap_bits);
  std::printf("seconds           %.4f\n", q->seconds);
  if (!a.output.empty()) std::printf("wrote             %s\n", a.output.c_str());
  return 0;
}

int RunSynth(const SynthArgs& a) {
  Distribution dist = Distribution::kNormal;
  int df = 0;
  if (a.dist == "laplace") {
    dist = Distribution::kLaplace;
  } else if (a.dist.size() > 1 && a.dist[0] == 't') {
    dist = Distribution::kStudentT;
    df = std::atoi(a.dist.c_str() + 1);
    if (df < 3 || df > 1000) return Fail(InvalidArgument("t<df> needs an integer df in [3, 1000], got '" + a.dist + "'"));
  } else if (a.dist != "normal") {
    return Fail(InvalidArgument("unknown distribution '" + a.dist + "': expected normal, laplace or t<df>"));
  }
  long long rows = 0, cols = 0;
  char extra = 0;
  if (std::sscanf(a.shape.c_str(), "%lldx%lld%c", &rows, &cols, &extra) != 2 || rows <= 0 || cols <= 0 ||
      rows * cols > (1LL << 32)) {
    return Fail(InvalidArgument("shape '" + a.shape + "': expected ROWSxCOLS with at most 2^32 elements"));
  }
  Status st = WriteNpy(a.output, SyntheticTensor(dist, df, rows, cols, a.seed, a.scale));
  return st.ok() ? 0 : Fail(st);
}

}  // namespace owf::cli
